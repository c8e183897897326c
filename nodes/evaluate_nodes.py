"""Evaluate a generated conversation (covog.evaluate) in the graph: who moves their lips to whose voice, in sync,
staying the same person, against the schedule the video was made from."""

from __future__ import annotations

import json
import logging
import tempfile
from pathlib import Path

from comfy_api.latest import io

from covog.evaluation.figure import report_figure
from covog.evaluation.observation import EvaluationSettings
from covog.evaluation.scoring import evaluate
from mit_annotator.core import media
from mit_annotator.core.records import SAMPLE_RATE, check_speaking_matches

from .comfy_bridge import (
    active_speaker_choices,
    audio_to_mono_16k,
    check_audio_covers,
    comfy_models_dir,
    frames_to_image,
    image_to_frames,
    progress_callback,
)
from .pack_types import Speaking, Tracks

log = logging.getLogger("MIT-CovOG")


class EvaluateConversation(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="MITCovOG_EvaluateConversation", display_name="Evaluate Conversation Video (MIT-CovOG)",
            category="MIT-CovOG/generate",
            description=("Scores a generated conversation video with the pack's own annotator (covog.evaluate): "
                         "speaker attribution (does each person speak when the schedule says: frame accuracy, F1, "
                         "kappa, whose lips move to whose voice), audio-visual sync per person, hand jitter and "
                         "finger flicker, face identity drift, and PSNR/SSIM against reference frames. Gives the "
                         "report as JSON text and its figure."),
            is_output_node=True,
            inputs=[
                io.Image.Input("images", tooltip="The generated frames."),
                io.Audio.Input("audio", tooltip="The audio the video was made with."),
                Speaking.Input("schedule", tooltip=(
                    "Who was meant to speak when (the speaking the video was generated from, e.g. Assign Speakers' "
                    "output).")),
                io.Float.Input("fps", default=25.0, min=1.0, max=120.0, step=0.01,
                               tooltip="The generated frames' rate."),
                io.Combo.Input("asd_model", options=active_speaker_choices(),
                               tooltip="LR-ASD weights in ComfyUI/models/active_speaker/."),
                io.Int.Input("sync_max_offset", default=8, min=1, max=25, tooltip=(
                    "Audio delays tried each way for the sync curve, in frames at 25 fps.")),
                Tracks.Input("tracks", optional=True, tooltip=(
                    "The poses the video was made from: each person's face is looked for where their pose puts "
                    "it.")),
                io.Image.Input("reference_images", optional=True, tooltip=(
                    "Real frames of the scene, at the same rate: PSNR and SSIM frame for frame.")),
            ],
            outputs=[io.String.Output("report_json"), io.Image.Output("report_image")],
        )

    @classmethod
    def execute(cls, images, audio, schedule, fps, asd_model, sync_max_offset, tracks=None,
                reference_images=None) -> io.NodeOutput:
        if not schedule.people:
            raise ValueError("the schedule has no people: connect the speaking the video was generated from")
        if tracks is not None:
            check_speaking_matches(schedule, tracks)
        samples = audio_to_mono_16k(audio)
        check_audio_covers(len(samples) / SAMPLE_RATE, images.shape[0], fps)
        progress = progress_callback(3)  # writing the video, annotating and scoring it, the figure
        progress(0, 3)
        settings = EvaluationSettings(models_dir=comfy_models_dir(), asd_model=asd_model,
                                      sync_max_offset=sync_max_offset)
        with tempfile.TemporaryDirectory() as work:
            video = media.write_video(Path(work) / "generated.mp4", image_to_frames(images), fps, samples,
                                      SAMPLE_RATE)
            reference = None
            if reference_images is not None:
                reference = media.write_video(Path(work) / "reference.mp4", image_to_frames(reference_images), fps)
            progress(1, 3)
            report = evaluate(video, schedule, tracks, reference_video=reference, settings=settings)
        progress(2, 3)
        figure = frames_to_image(report_figure(report)[None])
        progress(3, 3)
        a = report["attribution"]
        summary = (f"speaker attribution: frame accuracy {a['frame_accuracy']:.3f} (chance {a['chance']:.3f}), "
                   f"F1 {a['f1']:.3f}, kappa {a['kappa']:.3f}")
        log.info("[MIT-CovOG] %s", summary)
        for note in report["notes"]:
            log.info("[MIT-CovOG] note: %s", note)
        text = json.dumps(report)
        return io.NodeOutput(text, figure, ui={"text": [summary, *report["notes"]]})


NODES = [EvaluateConversation]
