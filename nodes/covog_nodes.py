"""CovOG in ComfyUI: load a model folder, and make a conversation video from a reference frame, the people's tracks,
the audio and who speaks when."""

from __future__ import annotations

import diffusers  # noqa: F401  (imported here so that a missing diffusers leaves these nodes out at load)
import numpy as np
import torch
import torch.nn.functional as F
from comfy_api.latest import io

from covog.models.model import DTYPES, CovOGModel, pick_dtype
from covog.pipeline.conditioning import build_conditions
from covog.pipeline.sampler import SIZE_MULTIPLE, SamplerSettings, generate, window_starts
from mit_annotator.core.records import SAMPLE_RATE, check_speaking_matches

from .comfy_bridge import (
    audio_to_mono_16k,
    check_audio_covers,
    check_people,
    free_memory,
    model_folders,
    progress_callback,
    resolve_model_folder,
    torch_devices,
)
from .pack_types import CovOGModel as CovOGModelType
from .pack_types import Speaking, Tracks

COMFY_FOLDER = "covog"  # ComfyUI/models/covog/<model folder>/ (python -m covog.convert writes one)
MAX_PEOPLE = 4
MAX_WINDOW = 32  # frames: the motion modules' position encodings of AnimateDiff v2 reach 32


def window_inputs() -> list[io.Int.Input]:
    return [io.Int.Input("window", default=25, min=1, max=MAX_WINDOW, tooltip="Frames per window."),
            io.Int.Input("overlap", default=10, min=0, max=MAX_WINDOW - 1,
                         tooltip="Frames each window shares with the previous one.")]


def size_inputs() -> list[io.Int.Input]:
    size = {"min": SIZE_MULTIPLE, "max": 2048, "step": SIZE_MULTIPLE}
    return [io.Int.Input("width", default=640, **size), io.Int.Input("height", default=384, **size)]


def person_audio_inputs() -> list[io.Audio.Input]:
    return [io.Audio.Input(f"person_{k}_audio", optional=True, tooltip=(
        f"Person {k}'s own voice (in the tracks' order); give all people's or none."))
        for k in range(1, MAX_PEOPLE + 1)]


def own_voices(person_audio: dict, tracks) -> list[dict] | None:
    """The person_k_audio inputs, one per person in the tracks' order; None when none is given."""
    own = [person_audio.get(f"person_{k}_audio") for k in range(1, MAX_PEOPLE + 1)]
    given = [k + 1 for k, a in enumerate(own) if a is not None]
    if given and given != list(range(1, len(tracks.tracks) + 1)):
        raise ValueError(f"per-person audio given for people {given}; the tracks hold {len(tracks.tracks)} "
                         "people: give every person's own audio, in the tracks' order, or none")
    return own[:len(tracks.tracks)] if given else None


def validate_window(window, overlap):
    """ComfyUI's input check (validate_inputs) for window and overlap (it then leaves their ranges to us): overlap <
    window, both in range. A value fed by a link is not known yet (None) and is checked when the node runs."""
    if window is None or overlap is None:
        return True
    if not 1 <= window <= MAX_WINDOW:
        return f"window {window} must be between 1 and {MAX_WINDOW} frames"
    if not 0 <= overlap < window:
        return (f"overlap {overlap} must be at least 0 and less than the window ({window}): each window shares its "
                "first `overlap` frames with the previous one")
    return True


class LoadCovOG(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="MITCovOG_LoadCovOG", display_name="Load CovOG Model (MIT-CovOG)", category="MIT-CovOG/generate",
            description=("Loads a CovOG model folder from ComfyUI/models/covog/ (write one with `python -m "
                         "covog.convert`). It waits on the offload device and moves to the GPU only while a video is "
                         "made."),
            inputs=[
                io.Combo.Input("model", options=model_folders(COMFY_FOLDER, "model_index.json"),
                               tooltip="A folder under ComfyUI/models/covog/ holding model_index.json."),
                io.Combo.Input("dtype", options=["auto", *DTYPES], default="auto",
                               tooltip="auto: fp16 on a GPU, fp32 on the CPU."),
            ],
            outputs=[CovOGModelType.Output("model")],
        )

    @classmethod
    def execute(cls, model, dtype) -> io.NodeOutput:
        compute, offload = torch_devices()
        return io.NodeOutput(CovOGModel.load(resolve_model_folder(COMFY_FOLDER, model), offload,
                                             pick_dtype(dtype, compute)))


class GenerateConversation(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="MITCovOG_GenerateConversation", display_name="Generate Conversation Video (MIT-CovOG)",
            category="MIT-CovOG/generate",
            description=("Makes a video of the tracked people talking: each person moves with their poses, and the "
                         "audio drives the face of whoever the speaking scores say speaks (from Assign Speakers). "
                         "Long videos are made in overlapping windows. Optional per-person audio gives each face its "
                         "own voice."),
            inputs=[
                CovOGModelType.Input("model"),
                io.Image.Input("reference", tooltip="One frame showing every person (the first image is used)."),
                Tracks.Input("tracks", tooltip="The people's poses, from Track People."),
                io.Audio.Input("audio", tooltip="The conversation's audio (muxed into the output)."),
                Speaking.Input("speaking", tooltip="Who speaks when, from Assign Speakers."),
                io.Int.Input("steps", default=30, min=1, max=200),
                io.Float.Input("cfg", default=3.5, min=1.0, max=20.0, step=0.1,
                               tooltip="Guidance on appearance (reference and CLIP); 1 turns it off."),
                io.Int.Input("seed", default=0, min=0, max=2 ** 63 - 1, control_after_generate=True),
                *window_inputs(),
                *size_inputs(),
                *person_audio_inputs(),
            ],
            outputs=[io.Image.Output("frames"), io.Audio.Output("audio"), io.Float.Output("fps")],
        )

    @classmethod
    def validate_inputs(cls, window=None, overlap=None):
        return validate_window(window, overlap)

    @classmethod
    def execute(cls, model, reference, tracks, audio, speaking, steps, cfg, seed, window, overlap, width, height,
                **person_audio) -> io.NodeOutput:
        settings = SamplerSettings(steps=steps, guidance=cfg, window=window, overlap=overlap, seed=seed)
        settings.check()
        check_people(tracks)
        check_speaking_matches(speaking, tracks)
        own = own_voices(person_audio, tracks)
        voices = [audio_to_mono_16k(a) for a in own] if own else audio_to_mono_16k(audio)
        for samples in voices if own else [voices]:
            check_audio_covers(len(samples) / SAMPLE_RATE, tracks.num_frames, tracks.fps)
        image = reference_image(reference, (width, height))
        compute, offload = torch_devices()
        try:
            model.to(compute)
            conditions = build_conditions(model, tracks, image, voices, speaking, (width, height))
            total = len(window_starts(tracks.num_frames, window, overlap)) * steps
            video = generate(model, conditions, settings, progress=progress_callback(total))
        finally:
            model.to(offload)
            free_memory()
        return io.NodeOutput(video.permute(0, 2, 3, 1).contiguous(), trimmed(audio, len(video) / tracks.fps),
                             float(tracks.fps))


def reference_image(images: torch.Tensor, size: tuple[int, int]) -> np.ndarray:
    """ComfyUI IMAGE (B, H, W, 3) 0..1 -> the first image as (height, width, 3) uint8 at `size` (width, height)."""
    if images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"reference must be an RGB IMAGE (batch, H, W, 3), got shape {tuple(images.shape)}")
    first = images[:1].permute(0, 3, 1, 2).float()
    resized = F.interpolate(first, size=(size[1], size[0]), mode="bicubic", antialias=True, align_corners=False)
    return (resized[0].permute(1, 2, 0).clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()


def trimmed(audio: dict, seconds: float) -> dict:
    """The AUDIO cut to the video's length (the video lasts as long as the poses)."""
    samples = int(round(seconds * int(audio["sample_rate"])))
    return {"waveform": audio["waveform"][..., :samples], "sample_rate": audio["sample_rate"]}


NODES = [LoadCovOG, GenerateConversation]
