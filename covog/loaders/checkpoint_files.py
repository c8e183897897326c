"""Checkpoint files read safely: safetensors, or PyTorch pickles read weights-only and holding nothing but tensors."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path

import torch

TORCH_SUFFIXES = (".pth", ".pt", ".bin", ".ckpt")
CHECKPOINT_SUFFIXES = (".safetensors", *TORCH_SUFFIXES)


class CheckpointError(ValueError):
    """A checkpoint that cannot be read safely or does not fit the model; the message names the file and key."""


def load_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """A flat {key: tensor} from a .safetensors file, or from a .pth/.pt/.bin/.ckpt pickle read weights-only."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    if path.suffix not in CHECKPOINT_SUFFIXES:
        raise CheckpointError(f"{path}: not a checkpoint (expected one of {', '.join(CHECKPOINT_SUFFIXES)})")
    if path.suffix == ".safetensors":
        return _read_safetensors(path)
    return _flat_tensors(_read_pickle(path), path)


def _read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    try:
        return load_file(path, device="cpu")
    except Exception as error:  # safetensors raises its own error types for any malformed file
        raise CheckpointError(f"{path}: not a readable safetensors file ({first_line(error)})") from None


def _read_pickle(path: Path) -> object:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # weights-only refusals, truncated or foreign files: all mean "not plain weights"
        refused = re.search(r"GLOBAL (\S+)", str(error))  # the object it would not build
        if refused:
            raise CheckpointError(f"{path}: refused, it pickles {refused[1]}, which is not a tensor; only plain "
                                  "weights are loaded from pickles, never code or custom objects") from None
        raise CheckpointError(f"{path}: not a readable PyTorch checkpoint ({type(error).__name__}: "
                              f"{first_line(error)})") from None


def _flat_tensors(content: object, path: Path) -> dict[str, torch.Tensor]:
    if isinstance(content, Mapping) and isinstance(content.get("state_dict"), Mapping):
        content = content["state_dict"]  # AnimateDiff / Lightning wrapper; its siblings are training metadata
    if not isinstance(content, Mapping):
        raise CheckpointError(f"{path}: holds a {type(content).__name__}, not a mapping of names to tensors")
    for key, value in content.items():
        if not isinstance(key, str) or not isinstance(value, torch.Tensor):
            raise CheckpointError(f"{path}: key {key!r} holds a {type(value).__name__}, not a tensor; only flat "
                                  "state dicts of tensors are accepted")
    return dict(content)


def first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
