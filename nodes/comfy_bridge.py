"""The few ComfyUI services the nodes use, imported lazily so that the nodes also run outside ComfyUI (tests)."""

from __future__ import annotations

import os
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


def image_to_frames(images: torch.Tensor):
    """ComfyUI IMAGE (F, H, W, 3) float 0..1 -> RGB uint8 frames, one at a time (no second copy of the video)."""
    if images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"images must be a batch of RGB frames (F, H, W, 3), got shape {tuple(images.shape)}")
    for frame in images:
        yield (frame.clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()


def model_folder_files(folder: str) -> list[str]:
    """Files in a ComfyUI model folder (registered under models/<folder> if ComfyUI does not know it yet)."""
    try:
        import folder_paths
    except ImportError:
        return []
    try:
        if folder not in folder_paths.folder_names_and_paths:
            folder_paths.add_model_folder_path(folder, os.path.join(folder_paths.models_dir, folder))
        return list(folder_paths.get_filename_list(folder))
    except AttributeError:  # a stand-in without ComfyUI's functions
        return []
