"""One video through the whole annotator: the per-video function that the batch (plain loop, process pool or Ray)
runs.

Stages, each a function on records (nothing is written here; `export` and `batch` write at the edges):
1. probe: a video without an audio stream, or one that cannot be read, fails here with the reason;
2. vision, in one decode at 25 fps: shots, people, poses, faces and tracks (`people.annotate_frames`), and the
   background's motion (`motion`), from the same frames;
3. clip selection by the paper's rules (`clips`); a video without an accepted clip stops here (no audio work);
4. diarization of the whole recording (the voices keep one name across the video's clips);
5. who speaks, per accepted clip: the clip's tracks, audio, frames and voices go to `who_speaks` (active-speaker
   scores from LR-ASD where its weights are found, lip activity and the mouth's synchrony with the voice); people
   are matched to voices inside each clip, where track ids are those of one shot.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mit_annotator.core import media
from mit_annotator.core.progress import StageProgress, stage_hook
from mit_annotator.core.records import PROCESSING_FPS, SAMPLE_RATE, Diarization, VideoTracks
from mit_annotator.dataset.clips import Candidate, ClipAnnotation, SelectionConfig, select_clips
from mit_annotator.vision.detection_schedule import VisionSpeed
from mit_annotator.vision.faces import FacesAtScale
from mit_annotator.vision.motion import BackgroundFlow, background_motion

log = logging.getLogger("mit_annotator")

VISION_HEIGHT = 720  # sources taller than this are decoded at this height for the vision pass (`vision_size`)
STAGES = ("probe", "vision", "select", "diarize", "who_speaks", "export")



class VideoFailed(ValueError):
    """A video that cannot become clips (no audio, no people, unreadable), with the reason."""


@dataclass(frozen=True)
class AnnotateSettings:
    """Which models the annotator runs and how clips are chosen; picklable, so every worker builds its own models."""

    models_dir: str | None = None
    det_model: str = "yolox_l"
    pose_model: str = "dwpose"  # "none": boxes and faces only
    faces: str = "yunet"  # face detector for landmarks, and face boxes where keypoints give none: yunet, scrfd, none
    speakers: str = "auto"  # who-speaks evidence: auto (LR-ASD when its weights are found), asd, lips
    asd_model: str = "lr_asd"
    asd_precision: str = "auto"  # LR-ASD's face encoder on the CPU: int8, float32, or auto (int8 where it can run)
    diarizer: str = "auto"  # see diarizers.diarizer_choices(): overlap-aware when its model is found, else offline
    device: str = "auto"
    det_threshold: float = 0.5
    detect_every: int = 3  # person detection on every Nth frame, tracked between (1: every frame; BENCHMARKS.md)
    face_search: str = "heads"  # faces searched around each tracked head ("frame": the whole frame)
    faces_every: int = 2  # faces searched on every Nth frame, landmarks interpolated between (1: every frame)
    detector_input: str = "fit"  # the detector's letterbox cut to the frame's shape ("square": the model's input)
    encode_preset: str = "veryfast"  # x264's, for each clip's video.mp4 (crf 18); "medium" before 0.3
    selection: SelectionConfig = field(default_factory=SelectionConfig)

    def __post_init__(self):
        from mit_annotator.vision.detection import CANVASES

        self.vision_speed()  # a bad stride, face search or preset fails here, before any model loads
        if self.detector_input not in CANVASES:
            raise ValueError(f"detector_input must be one of {', '.join(CANVASES)}, got {self.detector_input!r}")
        media.check_x264_preset(self.encode_preset, "encode_preset")

    def vision_speed(self) -> VisionSpeed:
        return VisionSpeed(detect_every=self.detect_every, face_search=self.face_search, faces_every=self.faces_every)

    def to_dict(self) -> dict:
        from dataclasses import asdict

        out = asdict(self)
        out["selection"]["people"] = list(self.selection.people)
        return out


class Annotator:
    """The models of `settings`, loaded once (per worker process)."""

    def __init__(self, settings: AnnotateSettings):
        from mit_annotator.speakers.who_speaks import load_active_speaker
        from mit_annotator.vision.detection import PersonDetector
        from mit_annotator.vision.pose import WholeBodyPose

        self.settings = settings
        models = settings.models_dir
        self.detector = PersonDetector(settings.det_model, score_threshold=settings.det_threshold,
                                       device=settings.device, models_dir=models, canvas=settings.detector_input)
        self.pose = None if settings.pose_model == "none" else WholeBodyPose(settings.pose_model,
                                                                           device=settings.device, models_dir=models)
        if settings.faces == "yunet":
            from mit_annotator.vision.faces import YuNetFaceDetector

            self.faces = YuNetFaceDetector(models_dir=models)
        elif settings.faces == "scrfd":
            from mit_annotator.vision.faces import ScrfdFaceDetector

            self.faces = ScrfdFaceDetector(device=settings.device, models_dir=models)
        elif settings.faces == "none":
            self.faces = None
        else:
            raise ValueError(f"faces must be yunet, scrfd or none, got {settings.faces!r}")
        if self.faces is not None:
            self.faces = FacesAtScale(self.faces, settings.selection.min_face_px_1080p)
        self.active_speaker = load_active_speaker(settings.speakers, settings.asd_model, models,
                                                  "cpu" if settings.device == "cpu" else "auto",
                                                  precision=settings.asd_precision)
        self._diarizer = None

    @property
    def diarizer(self):
        if self._diarizer is None:
            from mit_annotator.audio.diarizers import make_diarizer

            self._diarizer = make_diarizer(self.settings.diarizer, self.settings.models_dir,
                                           "cpu" if self.settings.device == "cpu" else "auto", use="assign")
        return self._diarizer


@dataclass(eq=False)
class VideoAnnotation:
    path: str
    info: media.VideoInfo
    tracks: VideoTracks
    motion: np.ndarray  # (num_frames,) background motion, source pixels per frame
    candidates: list[Candidate]
    diarization: Diarization | None
    clips: list[ClipAnnotation]
    seconds: dict[str, float]  # per stage

    @property
    def duration(self) -> float:
        return self.tracks.num_frames / self.tracks.fps


def annotate_video(video: str | os.PathLike, annotator: Annotator,
                   report: StageProgress | None = None) -> VideoAnnotation:
    """All stages but the export for one video (see the module's doc). Raises VideoFailed or media.MediaError for a
    video that cannot become clips."""
    report = report or (lambda stage, done, total: None)
    seconds: dict[str, float] = {}
    clock = time.perf_counter()

    def lap(stage: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        seconds[stage] = seconds.get(stage, 0.0) + now - clock
        clock = now

    report("probe", 0, 1)
    info = media.probe(video)
    if not info.has_audio:
        raise VideoFailed(f"{video}: no audio stream (the clips need the conversation's audio)")
    lap("probe")

    tracks, motion = vision(video, info, annotator, stage_hook(report, "vision"))
    lap("vision")
    if not tracks.tracks:
        raise VideoFailed(f"{video}: no people found")

    report("select", 0, 1)
    candidates = select_clips(tracks, motion, annotator.settings.selection)
    accepted = [c for c in candidates if c.accepted]
    lap("select")
    if not accepted:
        return VideoAnnotation(str(video), info, tracks, motion, candidates, None, [], seconds)

    report("diarize", 0, 1)
    audio = media.read_audio(video, SAMPLE_RATE)
    from mit_annotator.audio.diarization import DiarizationConfig

    most = max(len(c.track_ids) for c in accepted)
    diarization = annotator.diarizer(audio, DiarizationConfig.for_people(most), uri=Path(video).stem)
    lap("diarize")

    clips = []
    for k, candidate in enumerate(accepted):
        clips.append(who_speaks_in_clip(video, tracks, diarization, audio, candidate, annotator,
                                        lambda done, total, k=k: report("who_speaks", k * total + done,
                                                                        len(accepted) * total)))
    lap("who_speaks")
    return VideoAnnotation(str(video), info, tracks, motion, candidates, diarization, clips, seconds)


def vision(video: str | os.PathLike, info: media.VideoInfo, annotator: Annotator,
           progress: Callable[[int, int], None] | None = None) -> tuple[VideoTracks, np.ndarray]:
    """Shots, people, poses, faces and tracks, and the background's motion (source pixels per frame), from one
    decode at the MIT rate. The decode and the flow run a few frames ahead in a thread of their own. Unless the
    settings are exact, a source taller than VISION_HEIGHT is decoded at that height (`vision_size`); the tracks
    come back in source pixels either way."""
    from contextlib import closing

    from mit_annotator.vision.people import annotate_frames, in_source_pixels

    flow = BackgroundFlow()
    expected = int(round(info.duration * PROCESSING_FPS))
    speed = annotator.settings.vision_speed()
    size = None if speed.exact else vision_size(info.width, info.height)
    decoded = media.iter_frames(video, fps=PROCESSING_FPS, size=size)
    with closing(media.prefetched(_observed(decoded, flow.add))) as frames:
        tracks = annotate_frames(frames, PROCESSING_FPS, annotator.detector, annotator.pose, annotator.faces,
                                 progress=progress, total=expected, speed=speed)
    motion = background_motion(flow.flows, flow.points, tracks) if flow.points is not None else np.zeros(0)
    if size is not None:
        motion = motion * (info.width / tracks.width)
        tracks = in_source_pixels(tracks, info.width, info.height)
    tracks.source = str(video)
    return tracks, motion


def vision_size(width: int, height: int) -> tuple[int, int] | None:
    """The size the vision pass decodes a source at: VISION_HEIGHT high (even width) for taller sources, else None
    (as it is). The detectors see no more: YOLOX looks at 416 or 640 px, faces are searched at 24 px for the
    smallest face a clip may have (64 px at 1080p), and DWPose at 288x384 per person."""
    if height <= VISION_HEIGHT:
        return None
    return 2 * round(width * VISION_HEIGHT / height / 2), VISION_HEIGHT


def who_speaks_in_clip(video: str | os.PathLike, tracks: VideoTracks, diarization: Diarization, audio: np.ndarray,
                       candidate: Candidate, annotator: Annotator,
                       progress: Callable[[int, int], None] | None = None) -> ClipAnnotation:
    """The clip's records (clip-local frames) and who speaks in it, from its own frames, audio and voices."""
    from mit_annotator.speakers.who_speaks import who_speaks

    local = tracks.clip(candidate.start, candidate.end, candidate.track_ids)
    first, last = (int(round(f / tracks.fps * SAMPLE_RATE)) for f in (candidate.start, candidate.end))
    clip_audio = audio[first:last]
    if len(clip_audio) < last - first:  # the recording ends early: silence
        clip_audio = np.concatenate([clip_audio, np.zeros(last - first - len(clip_audio), np.float32)])
    voices = diarization.clip(candidate.start / tracks.fps, candidate.end / tracks.fps)
    frames = media.iter_frames(video, candidate.start, candidate.end, fps=tracks.fps)
    speaking, _ = who_speaks(video, local, voices, active_speaker=annotator.active_speaker, audio=clip_audio,
                             frames=frames, progress=progress)
    return ClipAnnotation(candidate, local, speaking, voices, clip_audio)


def _observed(frames: Iterable[np.ndarray], observe: Callable[[np.ndarray], None]) -> Iterator[np.ndarray]:
    for frame in frames:
        observe(frame)
        yield frame
