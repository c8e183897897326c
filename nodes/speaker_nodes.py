"""Who speaks: diarize the audio and bind each voice to the person on screen whose lips move with it."""

from __future__ import annotations

import numpy as np
from mit_annotator.diarization import DiarizationConfig, Diarizer, PyannoteDiarizer
from mit_annotator.timeline import speaking_timeline
from mit_annotator.assignment import assign_speakers
from mit_annotator.voice_activity import require_silero_vad
from mit_annotator.who_speaks import lip_activity

from .comfy_bridge import audio_to_mono_16k, frames_to_image, image_to_frames

# a missing silero-vad leaves these nodes out at load; checked without importing it (its import would set torch's CPU
# threads to 1 for all of ComfyUI)
require_silero_vad()

_diarizers: dict = {}  # loaded once per session


class AssignSpeakers:
    DESCRIPTION = ("Finds who speaks when in the audio (offline diarization) and gives each voice to the tracked "
                   "person whose lips move with it: per-person speaking scores and speak/listen segments, no "
                   "hand-painted masks. A voice that matches no one (off screen) stays unassigned.")
    CATEGORY = "MIT-CovOG/annotate"
    FUNCTION = "assign"
    RETURN_TYPES = ("MIT_SPEAKING", "IMAGE")
    RETURN_NAMES = ("speaking", "timeline")

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "tracks": ("MIT_TRACKS",),
                "audio": ("AUDIO",),
                "max_speakers": ("INT", {"default": 0, "min": 0, "max": 16, "tooltip": (
                    "Most voices to look for; 0: the number of people plus 2 (off-screen voices).")}),
                "diarizer": (["offline", "pyannote"], {"default": "offline", "tooltip": (
                    "offline: silero-vad + resemblyzer, nothing to download. pyannote: pyannote.audio's pipeline; "
                    "needs pyannote.audio installed and a Hugging Face token in the HF_TOKEN environment variable "
                    "(never stored in the workflow).")}),
            },
            "optional": {
                "images": ("IMAGE", {"tooltip": "The frames the tracks came from; used only for tracks that have "
                                                "face landmarks but no keypoints (lip motion is then measured "
                                                "around the mouth corners). Tracks from Track People have "
                                                "keypoints and do not need it."}),
            },
        }

    def assign(self, tracks, audio, max_speakers, diarizer="offline", images=None):
        samples = audio_to_mono_16k(audio)
        most = max_speakers or len(tracks.tracks) + 2
        diarization = get_diarizer(diarizer)(samples, DiarizationConfig(max_speakers=max(most, 1)))
        frames = image_to_frames(images) if images is not None else None
        speaking, _ = assign_speakers(diarization, lip_activity(tracks, frames), tracks.fps, tracks.num_frames)
        return speaking, frames_to_image(speaking_timeline(speaking)[None])


def get_diarizer(kind: str = "offline"):
    if kind not in _diarizers:
        _diarizers[kind] = PyannoteDiarizer() if kind == "pyannote" else Diarizer()
    return _diarizers[kind]


NODE_CLASS_MAPPINGS = {"MITCovOG_AssignSpeakers": AssignSpeakers}
NODE_DISPLAY_NAME_MAPPINGS = {"MITCovOG_AssignSpeakers": "Assign Speakers to People (MIT-CovOG)"}
