"""Who speaks: diarize the audio and bind each voice to the person on screen who speaks it."""

from __future__ import annotations

from mit_annotator.diarization import DiarizationConfig, Diarizer, PyannoteDiarizer
from mit_annotator.models import ACTIVE_SPEAKER_FOLDER, KNOWN_MODELS
from mit_annotator.timeline import speaking_timeline
from mit_annotator.voice_activity import require_silero_vad
from mit_annotator.who_speaks import SPEAKER_EVIDENCE, load_active_speaker, who_speaks

from .comfy_bridge import (audio_to_mono_16k, frames_to_image, image_to_frames, model_folder_files,
                           progress_callback)

# a missing silero-vad leaves these nodes out at load; checked without importing it (its import would set torch's CPU
# threads to 1 for all of ComfyUI)
require_silero_vad()

_diarizers: dict = {}  # loaded once per session
_active_speakers: dict = {}


def active_speaker_choices() -> list[str]:
    known = [KNOWN_MODELS["lr_asd"].filename, KNOWN_MODELS["lr_asd_talkset"].filename]
    return known + sorted(f for f in model_folder_files(ACTIVE_SPEAKER_FOLDER) if f not in known)


class AssignSpeakers:
    DESCRIPTION = ("Finds who speaks when in the audio (offline diarization) and gives each voice to the tracked "
                   "person who speaks it, judged by the active-speaker model (LR-ASD, weights in "
                   "ComfyUI/models/active_speaker/) or lip activity, and by how the mouth follows the voice's "
                   "loudness: per-person speaking scores and speak/listen segments, no hand-painted masks. A voice "
                   "that matches no one (off screen) stays unassigned.")
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
                "images": ("IMAGE", {"tooltip": "The frames the tracks came from: the active-speaker model reads "
                                                "the faces in them, and tracks without keypoints need them for lip "
                                                "motion. Without them only keypoint lips are used."}),
                "speaker_evidence": (list(SPEAKER_EVIDENCE), {"default": "auto", "tooltip": (
                    "asd: the active-speaker model (needs its weights and the images); lips: lip activity; auto: "
                    "asd when its weights are found and images are given. Both add the mouth's synchrony with the "
                    "audio.")}),
                "asd_model": (active_speaker_choices(), {"tooltip": (
                    "LR-ASD weights in ComfyUI/models/active_speaker/: pretrain_AVA.model (the default: tells a "
                    "speaker from a listener who moves their lips best) or finetuning_TalkSet.model, from "
                    "github.com/Junhua-Liao/LR-ASD (weight/).")}),
            },
        }

    def assign(self, tracks, audio, max_speakers, diarizer="offline", images=None, speaker_evidence="auto",
               asd_model=KNOWN_MODELS["lr_asd"].filename):
        samples = audio_to_mono_16k(audio)
        if images is None and speaker_evidence == "asd":
            raise ValueError("speaker_evidence 'asd' needs the images the tracks came from")
        most = max_speakers or len(tracks.tracks) + 2
        diarization = get_diarizer(diarizer)(samples, DiarizationConfig(max_speakers=max(most, 1)))
        model = get_active_speaker(speaker_evidence if images is not None else "lips", asd_model)
        frames = image_to_frames(images) if images is not None else None
        speaking, _ = who_speaks(None, tracks, diarization, active_speaker=model, audio=samples, frames=frames,
                                 progress=progress_callback(tracks.num_frames))
        return speaking, frames_to_image(speaking_timeline(speaking)[None])


def get_active_speaker(evidence: str, model: str):
    """The active-speaker model, loaded once per session (None for lip evidence or when auto finds no weights)."""
    if (evidence, model) not in _active_speakers:
        _active_speakers[(evidence, model)] = load_active_speaker(evidence, model)
    return _active_speakers[(evidence, model)]


def get_diarizer(kind: str = "offline"):
    if kind not in _diarizers:
        _diarizers[kind] = PyannoteDiarizer() if kind == "pyannote" else Diarizer()
    return _diarizers[kind]


NODE_CLASS_MAPPINGS = {"MITCovOG_AssignSpeakers": AssignSpeakers}
NODE_DISPLAY_NAME_MAPPINGS = {"MITCovOG_AssignSpeakers": "Assign Speakers to People (MIT-CovOG)"}
