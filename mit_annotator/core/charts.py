"""Charts drawn with matplotlib: its object API on the Agg canvas (no pyplot, so no global backend and no window,
inside ComfyUI too). A figure becomes an RGB array (for an IMAGE output) or PNG and SVG files, written whole."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from mit_annotator.core.files import atomic_path

DPI = 100
COLOURS = ("#2860c8", "#c83c28", "#28a050", "#c89620", "#8c3caa", "#1e96a0")  # one per person, in order


def new_figure(width_px: int, height_px: int):
    """An empty figure of `width_px` x `height_px` pixels (at DPI), laid out so that labels never overlap."""
    from matplotlib.figure import Figure

    return Figure(figsize=(width_px / DPI, height_px / DPI), dpi=DPI, layout="constrained")


def figure_rgb(figure) -> np.ndarray:
    """(height, width, 3) uint8: the figure drawn."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()


def save_figure(figure, png: str | os.PathLike) -> tuple[Path, Path]:
    """`png`, and an SVG of the same name beside it, each written under a temporary name and renamed."""
    paths = Path(png), Path(png).with_suffix(".svg")
    for path, kind in zip(paths, ("png", "svg")):
        with atomic_path(path) as tmp:
            figure.savefig(tmp, format=kind, dpi=DPI)
    return paths
