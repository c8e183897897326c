"""Synthetic conversations with exact ground truth, as ComfyUI data."""

from __future__ import annotations

import numpy as np

from mit_annotator.core.pose_formats import tracks_to_pose_keypoint
from mit_annotator.synthetic import ConversationSpec, default_speech_source, synthesize_conversation
from mit_annotator.synthetic.speech import SAMPLE_RATE

from .comfy_bridge import audio_to_comfy, confined_path, frames_to_image, progress_callback


class SyntheticConversation:
    DESCRIPTION = ("Builds a short video of 2-4 drawn people taking turns with real speech (LibriSpeech or "
                   "espeak-ng), with exact ground truth: whole-body poses, who speaks when, per-person speaking "
                   "scores. For trying the pack's nodes and checking the annotator.")
    CATEGORY = "MIT-CovOG/examples"
    FUNCTION = "build"
    RETURN_TYPES = ("IMAGE", "AUDIO", "MIT_TRACKS", "MIT_SPEAKING", "POSE_KEYPOINT", "FLOAT")
    RETURN_NAMES = ("images", "audio", "tracks", "speaking", "pose_keypoint", "fps")

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "num_people": ("INT", {"default": 2, "min": 2, "max": 4, "tooltip": "People on screen."}),
                "seconds": ("FLOAT", {"default": 8.0, "min": 1.0, "max": 120.0, "step": 0.5,
                                     "tooltip": "Length; every person gets a turn when there is room."}),
                "seed": ("INT", {"default": 0, "min": 0, "max": 2**31 - 1, "control_after_generate": True,
                                 "tooltip": "Decides voices, turns, looks and motion: the same seed, the same "
                                            "conversation."}),
                "width": ("INT", {"default": 640, "min": 64, "max": 2048, "step": 8}),
                "height": ("INT", {"default": 384, "min": 64, "max": 2048, "step": 8}),
                "fps": ("FLOAT", {"default": 25.0, "min": 1.0, "max": 60.0, "tooltip": "25 is the MIT dataset's rate."}),
                "overlap_probability": ("FLOAT", {"default": 0.0, "min": 0.0, "max": 1.0, "step": 0.05,
                                                  "tooltip": "Chance that a turn starts before the last one ends."}),
                "offscreen_voice": ("BOOLEAN", {"default": False,
                                                "tooltip": "Add a voice that belongs to no one on screen."}),
            },
            "optional": {
                "speech_folder": ("STRING", {"default": "", "tooltip": (
                    "A folder with one sub-folder of .flac/.wav utterances per speaker (LibriSpeech layout), in "
                    "ComfyUI/input/ or output/. Empty: $MIT_SPEECH_DIR, else the shared LibriSpeech sample beside "
                    "a development checkout, else espeak-ng voices (apt-get install espeak-ng).")}),
            },
        }

    def build(self, num_people, seconds, seed, width, height, fps, overlap_probability, offscreen_voice,
              speech_folder=""):
        spec = ConversationSpec(num_people=num_people, seconds=seconds, seed=seed, width=width, height=height,
                                fps=fps, overlap_probability=overlap_probability, offscreen_voice=offscreen_voice)
        folder = confined_path(speech_folder, "speech_folder") if speech_folder.strip() else None
        conversation = synthesize_conversation(spec, default_speech_source(folder))
        progress = progress_callback(spec.num_frames)
        frames = np.empty((spec.num_frames, height, width, 3), dtype=np.uint8)
        for k, frame in enumerate(conversation.frames()):
            frames[k] = frame
            progress(k + 1, spec.num_frames)
        return (frames_to_image(frames), audio_to_comfy(conversation.mix, SAMPLE_RATE), conversation.tracks,
                conversation.speaking, tracks_to_pose_keypoint(conversation.tracks), float(fps))


NODE_CLASS_MAPPINGS = {"MITCovOG_SyntheticConversation": SyntheticConversation}
NODE_DISPLAY_NAME_MAPPINGS = {"MITCovOG_SyntheticConversation": "Synthetic Conversation (MIT-CovOG)"}
