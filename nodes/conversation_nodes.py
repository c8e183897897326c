"""Synthetic conversations with exact ground truth, as ComfyUI data."""

from __future__ import annotations

import numpy as np
from comfy_api.latest import io

from mit_annotator.core.pose_formats import tracks_to_pose_keypoint
from mit_annotator.synthetic import ConversationSpec, default_speech_source, synthesize_conversation
from mit_annotator.synthetic.speech import SAMPLE_RATE

from .comfy_bridge import audio_to_comfy, confined_path, frames_to_image, progress_callback
from .pack_types import PoseKeypoint, Speaking, Tracks


class SyntheticConversation(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="MITCovOG_SyntheticConversation", display_name="Synthetic Conversation (MIT-CovOG)",
            category="MIT-CovOG/examples",
            description=("Builds a short video of 2-4 drawn people taking turns with real speech (LibriSpeech or "
                         "espeak-ng), with exact ground truth: whole-body poses, who speaks when, per-person speaking "
                         "scores. For trying the pack's nodes and checking the annotator."),
            inputs=[
                io.Int.Input("num_people", default=2, min=2, max=4, tooltip="People on screen."),
                io.Float.Input("seconds", default=8.0, min=1.0, max=120.0, step=0.5,
                               tooltip="Length; every person gets a turn when there is room."),
                io.Int.Input("seed", default=0, min=0, max=2**31 - 1, control_after_generate=True,
                             tooltip="Decides voices, turns, looks and motion: the same seed, the same conversation."),
                io.Int.Input("width", default=640, min=64, max=2048, step=8),
                io.Int.Input("height", default=384, min=64, max=2048, step=8),
                io.Float.Input("fps", default=25.0, min=1.0, max=60.0, tooltip="25 is the MIT dataset's rate."),
                io.Float.Input("overlap_probability", default=0.0, min=0.0, max=1.0, step=0.05,
                               tooltip="Chance that a turn starts before the last one ends."),
                io.Boolean.Input("offscreen_voice", default=False,
                                 tooltip="Add a voice that belongs to no one on screen."),
                io.String.Input("speech_folder", default="", optional=True, tooltip=(
                    "A folder with one sub-folder of .flac/.wav utterances per speaker (LibriSpeech layout), in "
                    "ComfyUI/input/ or output/. Empty: $MIT_SPEECH_DIR, else the shared LibriSpeech sample beside "
                    "a development checkout, else espeak-ng voices (apt-get install espeak-ng).")),
            ],
            outputs=[io.Image.Output("images"), io.Audio.Output("audio"), Tracks.Output("tracks"),
                     Speaking.Output("speaking"), PoseKeypoint.Output("pose_keypoint"), io.Float.Output("fps")],
        )

    @classmethod
    def execute(cls, num_people, seconds, seed, width, height, fps, overlap_probability, offscreen_voice,
                speech_folder="") -> io.NodeOutput:
        spec = ConversationSpec(num_people=num_people, seconds=seconds, seed=seed, width=width, height=height,
                                fps=fps, overlap_probability=overlap_probability, offscreen_voice=offscreen_voice)
        folder = confined_path(speech_folder, "speech_folder") if speech_folder.strip() else None
        conversation = synthesize_conversation(spec, default_speech_source(folder))
        progress = progress_callback(spec.num_frames)
        frames = np.empty((spec.num_frames, height, width, 3), dtype=np.uint8)
        for k, frame in enumerate(conversation.frames()):
            frames[k] = frame
            progress(k + 1, spec.num_frames)
        return io.NodeOutput(frames_to_image(frames), audio_to_comfy(conversation.mix, SAMPLE_RATE),
                             conversation.tracks, conversation.speaking, tracks_to_pose_keypoint(conversation.tracks),
                             float(fps))


NODES = [SyntheticConversation]
