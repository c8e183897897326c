"""The few ComfyUI services the nodes use, imported lazily so that the nodes also run outside ComfyUI (tests)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch


def progress_callback(total: int) -> Callable[[int, int], None]:
    """A (done, total) callback that drives ComfyUI's progress bar and raises if the user cancelled."""
    try:
        import comfy.model_management as model_management
        import comfy.utils
    except ImportError:
        return lambda done, total: None
    bar = comfy.utils.ProgressBar(total)

    def update(done: int, _total: int) -> None:
        model_management.throw_exception_if_processing_interrupted()
        bar.update_absolute(done, total)

    return update


def frames_to_image(frames: np.ndarray) -> torch.Tensor:
    """(F, H, W, 3) uint8 -> ComfyUI IMAGE: (F, H, W, 3) float32 in 0..1."""
    return torch.from_numpy(np.ascontiguousarray(frames)).to(torch.float32).div_(255.0)


def audio_to_comfy(samples: np.ndarray, sample_rate: int) -> dict:
    """(T,) or (C, T) float samples -> ComfyUI AUDIO: {"waveform": (1, C, T), "sample_rate"}."""
    samples = np.asarray(samples, dtype=np.float32)
    if samples.ndim == 1:
        samples = samples[None]
    return {"waveform": torch.from_numpy(samples.copy())[None], "sample_rate": int(sample_rate)}
