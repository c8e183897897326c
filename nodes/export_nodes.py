"""Export in the MIT dataset's layout (mit_annotator.dataset.export, mit_annotator.pipeline.batch): one clip from the
graph's frames, audio and annotations, or a folder of videos annotated into a dataset. Files go under
ComfyUI/output/."""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

import numpy as np
from comfy_api.latest import io

from mit_annotator.core import media
from mit_annotator.core.models import COMFY_FOLDER
from mit_annotator.core.records import PROCESSING_FPS, SAMPLE_RATE, Diarization, check_speaking_matches
from mit_annotator.dataset.clips import Candidate, ClipAnnotation
from mit_annotator.dataset.export import write_clip
from mit_annotator.dataset.layout import clip_folder_name

from .comfy_bridge import (
    audio_to_mono_16k,
    check_audio_covers,
    check_images,
    check_people,
    comfy_models_dir,
    confined_path,
    image_to_frames,
    progress_callback,
    resolve_model_name,
)
from .pack_types import Diarization as DiarizationType
from .pack_types import Speaking, Tracks

log = logging.getLogger("MIT-CovOG")


def output_folder(prefix: str) -> Path:
    """ComfyUI/output/<prefix> (./output/<prefix> outside ComfyUI); the prefix may not leave the output folder."""
    try:
        import folder_paths

        root = Path(folder_paths.get_output_directory())
    except (ImportError, AttributeError):
        root = Path.cwd() / "output"
    folder = (root / prefix.strip().strip("/\\")).resolve()
    if root.resolve() not in (folder, *folder.parents):
        raise ValueError(f"the folder {prefix!r} would leave ComfyUI's output folder")
    return folder


def folder_name_error(source: str | None, video_name: str | None) -> str | None:
    """What is wrong with the names the clip folder is made of (None when nothing is, or for a value fed by a link,
    not known before the run)."""
    for name, value in (("source", source), ("video_name", video_name)):
        if value is not None and (not value or any(not (c.isalnum() or c == "-") for c in value)):
            return f"{name} {value!r}: use letters, digits and '-' (it names the clip folder)"
    return None


class ExportClip(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="MITCovOG_ExportClip", display_name="Export Clip, MIT layout (MIT-CovOG)",
            category="MIT-CovOG/annotate",
            description=("Writes the frames, audio and annotations as one clip folder in the MIT dataset's layout "
                         "(video.mp4 at 25 fps with 16 kHz audio, speaker_info*.json, meta.json, pose/*.json, "
                         "pose_frame/*.png, and our tracks.json, speaking.json, diarization.rttm, clip.json) under "
                         "ComfyUI/output/<folder>/; a video at another rate is re-counted at 25 fps, the MIT rate."),
            is_output_node=True,
            inputs=[
                io.Image.Input("images", tooltip="The frames the tracks came from."),
                io.Audio.Input("audio", tooltip="The video's audio."),
                Tracks.Input("tracks"),
                Speaking.Input("speaking", tooltip="From Assign Speakers."),
                io.String.Input("folder", default="mit-covog/dataset", tooltip="Under ComfyUI/output/."),
                io.String.Input("source", default="comfyui", tooltip=(
                    "The source's name in the clip folder's name (letters, digits, '-').")),
                io.String.Input("video_name", default="video", tooltip="The video's name in the folder's name."),
                io.Boolean.Input("write_frames", default=False, tooltip="Also write frames/*.png."),
                DiarizationType.Input("diarization", optional=True, tooltip="From Diarize (written as RTTM)."),
            ],
            outputs=[io.String.Output("clip_folder")],
        )

    @classmethod
    def validate_inputs(cls, source=None, video_name=None):
        return folder_name_error(source, video_name) or True

    @classmethod
    def execute(cls, images, audio, tracks, speaking, folder, source, video_name, write_frames,
                diarization=None) -> io.NodeOutput:
        check_people(tracks)
        check_speaking_matches(speaking, tracks)
        check_images(images, tracks)
        error = folder_name_error(source, video_name)
        if error:
            raise ValueError(error)
        samples = audio_to_mono_16k(audio)
        check_audio_covers(len(samples) / SAMPLE_RATE, tracks.num_frames, tracks.fps)
        local = tracks.at_rate(PROCESSING_FPS)
        count = local.num_frames
        length = int(round(count / PROCESSING_FPS * SAMPLE_RATE))
        clip_audio = np.pad(samples, (0, max(0, length - len(samples))))[:length]
        candidate = Candidate(0, count, tuple(t.track_id for t in local.tracks), 0)
        clip = ClipAnnotation(candidate, local, speaking.at_rate(PROCESSING_FPS, count),
                              diarization or Diarization([]), clip_audio)
        progress = progress_callback(count)
        out = output_folder(folder) / clip_folder_name(source, video_name, 0, count)
        with tempfile.TemporaryDirectory() as work:
            frames = media.frames_at_rate(image_to_frames(images), tracks.num_frames, tracks.fps,
                                          PROCESSING_FPS)
            counted = (progress(k + 1, count) or frame for k, frame in enumerate(frames))
            source_video = media.write_video(Path(work) / "source.mp4", counted, PROCESSING_FPS, clip_audio,
                                             SAMPLE_RATE)
            write_clip(out, source_video, clip, source, video_name, frames=write_frames,
                       provenance={"input": "ComfyUI graph"})
        log.info("[MIT-CovOG] clip written to %s", out)
        return io.NodeOutput(str(out), ui={"text": [str(out)]})


class ExportDataset(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="MITCovOG_ExportDataset", display_name="Export Dataset, MIT layout (MIT-CovOG)",
            category="MIT-CovOG/annotate",
            description=("Annotates a video, a folder of videos or a text file listing them into a dataset in the MIT "
                         "layout under ComfyUI/output/<folder>/: shots, people, faces, tracks, diarization, who "
                         "speaks, clip selection by the paper's rules (2-4 people, at least 5 s, faces large enough), "
                         "a clip folder per accepted clip and manifest.json. A rerun skips videos already done."),
            is_output_node=True,
            inputs=[
                io.String.Input("videos", default="", tooltip=(
                    "A video, a folder of videos, or a text file of paths, in ComfyUI/input/ or output/ (a relative "
                    "path is taken from input/).")),
                io.String.Input("folder", default="mit-covog/dataset", tooltip="Under ComfyUI/output/."),
                io.String.Input("detector", default="yolox_l", tooltip=(
                    "Person detector: a known name (yolox_l, yolox_nano) or a file name in ComfyUI/models/dwpose/.")),
                io.String.Input("pose_model", default="dwpose", tooltip=(
                    "A known name (dwpose), a file name in ComfyUI/models/dwpose/, or none.")),
                io.Combo.Input("speakers", options=["auto", "asd", "lips"], default="auto"),
                io.Float.Input("min_seconds", default=5.0, min=0.5, max=60.0, step=0.5,
                               tooltip="Shortest clip (the paper: 5 s)."),
            ],
            outputs=[io.String.Output("summary")],
        )

    @classmethod
    def execute(cls, videos, folder, detector, pose_model, speakers, min_seconds) -> io.NodeOutput:
        from mit_annotator.dataset.clips import SelectionConfig
        from mit_annotator.pipeline.annotate import AnnotateSettings
        from mit_annotator.pipeline.batch import BatchOptions, find_videos, run_batch, summary_lines

        if not videos.strip():
            raise ValueError("give a video, a folder of videos or a text file listing them")
        jobs = find_videos(confined_path(videos, "videos"))
        for job in jobs:  # a list may not name files elsewhere either
            confined_path(job.path, f"videos: the listed video of {videos.strip()!r}")
        models = comfy_models_dir()
        settings = AnnotateSettings(models_dir=models, det_model=resolve_model_name(detector, COMFY_FOLDER, "detector"),
                                    pose_model=resolve_model_name(pose_model, COMFY_FOLDER, "pose_model", ("none",)),
                                    speakers=speakers,
                                    selection=SelectionConfig(min_seconds=min_seconds,
                                                              max_seconds=max(15.0, 2 * min_seconds)))
        out = output_folder(folder)
        progress = progress_callback(len(jobs))
        lines = []
        for k, job in enumerate(jobs):  # one video at a time: progress and Cancel between videos
            summary = run_batch([job], out, BatchOptions(settings=settings, progress=False))
            lines = list(summary_lines(summary, out))
            progress(k + 1, len(jobs))
        text = "\n".join(lines)
        return io.NodeOutput(text, ui={"text": [text]})


NODES = [ExportClip, ExportDataset]
