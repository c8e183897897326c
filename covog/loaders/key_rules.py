"""The key rules: published checkpoints' state-dict keys -> the CovOG components' (shared/data/checkpoint-layouts/
README.md): DDP and accelerate prefixes, AnimateDiff motion modules -> diffusers', the audio driver's keys, the pose
guider from a PoseGuider or a ControlNet."""

from __future__ import annotations

from collections.abc import Mapping

import torch

from covog.loaders.checkpoint_files import CheckpointError

ACCELERATE_PREFIXES = ("reference_unet", "denoising_unet", "pose_guider", "pose_adaptor")
DDP_PREFIX = "module."
AUDIO_PREFIXES = ("audio_proj.", "audio_down_module.", "audio_up_module.")
CONTROLNET_PREFIX = "controlnet_cond_embedding."
CONTROLNET_ZEROED = "conv_out."  # a ControlNet's conditioning output is not taken: the pose guider starts at zero
GUIDER_PREFIX = "guider."
KEPT_PE = ".attention_blocks.0.pos_encoder.pe"
DUPLICATE_PE = ".attention_blocks.1.pos_encoder.pe"  # the same sinusoid table again; diffusers keeps one
# Moore/AnimateDiff motion-module names -> diffusers' (README rule 3); indices are unchanged
MOTION_RENAMES = (
    (".temporal_transformer.", "."),
    (".attention_blocks.0.", ".attn1."),
    (".attention_blocks.1.", ".attn2."),
    (".norms.0.", ".norm1."),
    (".norms.1.", ".norm2."),
    (".ff_norm.", ".norm3."),
)


def strip_ddp_prefix(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Drop the `module.` that DistributedDataParallel puts in front of every key (only if every key has it)."""
    if state_dict and all(key.startswith(DDP_PREFIX) for key in state_dict):
        return {key[len(DDP_PREFIX):]: value for key, value in state_dict.items()}
    return dict(state_dict)


def split_accelerate(state_dict: Mapping[str, torch.Tensor], source: str) -> dict[str, dict[str, torch.Tensor]]:
    """accelerate's whole-Net state dict -> {submodule: its unprefixed state dict}."""
    parts: dict[str, dict[str, torch.Tensor]] = {}
    strays = []
    for key, value in strip_ddp_prefix(state_dict).items():
        prefix, _, rest = key.partition(".")
        if prefix in ACCELERATE_PREFIXES and rest:
            parts.setdefault(prefix, {})[rest] = value
        else:
            strays.append(key)
    if strays:
        raise CheckpointError(f"{source}: {len(strays)} keys outside the known submodules "
                              f"{', '.join(ACCELERATE_PREFIXES)}, e.g. {strays[0]!r}")
    return parts


def motion_key_to_diffusers(key: str) -> str | None:
    """A Moore/AnimateDiff motion-module key -> diffusers' MotionAdapter/UNetMotionModel key; None for the
    duplicate positional table. diffusers keys come back unchanged."""
    if key.endswith(DUPLICATE_PE):
        return None
    if key.endswith(KEPT_PE):
        key = key[: -len(KEPT_PE)] + ".pos_embed.pe"
    for old, new in MOTION_RENAMES:
        key = key.replace(old, new)
    return key


def unet3d_key_to_diffusers(key: str) -> str | None:
    """A Moore/CovOG 3D-UNet key -> UNetMotionModel key: spatial keys are diffusers' already."""
    return motion_key_to_diffusers(key) if ".motion_modules." in key else key


def split_audio(state_dict: Mapping[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """CovOG's stage-2 UNet state dict -> (the UNet's own keys, the audio driver's keys)."""
    unet, audio = {}, {}
    for key, value in state_dict.items():
        (audio if key.startswith(AUDIO_PREFIXES) else unet)[key] = value
    return unet, audio


def pose_encoder_keys(state_dict: Mapping[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], list[str]]:
    """PoseGuider keys (or a ControlNet's `controlnet_cond_embedding.*`) -> MultiHumanPoseEncoder keys, and the
    keys left out (the rest of a ControlNet, and its conv_out: as AnimateAnyone's and CovOG's training do, a guider
    taken from a ControlNet keeps a zero conv_out, so it adds nothing until trained)."""
    if not any(key.startswith(CONTROLNET_PREFIX) for key in state_dict):
        return {GUIDER_PREFIX + key: value for key, value in state_dict.items()}, []
    embedding = {key[len(CONTROLNET_PREFIX):]: v for key, v in state_dict.items() if key.startswith(CONTROLNET_PREFIX)}
    zeroed = {key: torch.zeros_like(v) for key, v in embedding.items() if key.startswith(CONTROLNET_ZEROED)}
    dropped = [key for key in state_dict if not key.startswith(CONTROLNET_PREFIX) or
               key[len(CONTROLNET_PREFIX):] in zeroed]
    return {GUIDER_PREFIX + key: value for key, value in {**embedding, **zeroed}.items()}, dropped
