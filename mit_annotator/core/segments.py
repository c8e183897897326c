"""Speak/listen segmentation of per-frame speaking scores, by the MIT paper's rules."""

from __future__ import annotations

import numpy as np
from scipy.signal import medfilt

MEDIAN_KERNEL = 5  # frames (MIT paper)
MERGE_SHORTER_THAN_S = 1.0  # seconds, the "merged" variant (MIT paper)

Ranges = list[tuple[int, int]]


def runs(mask: np.ndarray) -> Ranges:
    """Half-open index ranges where `mask` is True."""
    edges = np.diff(np.concatenate([[0], np.asarray(mask).astype(np.int8), [0]]))
    return list(zip(np.flatnonzero(edges == 1).tolist(), np.flatnonzero(edges == -1).tolist()))


def joined_runs(mask: np.ndarray, min_gap: float) -> Ranges:
    """`runs(mask)`, two runs joined where the gap between them is shorter than `min_gap`."""
    joined: Ranges = []
    for a, b in runs(mask):
        if joined and a - joined[-1][1] < min_gap:
            joined[-1] = (joined[-1][0], b)
        else:
            joined.append((a, b))
    return joined


def speak_listen_segments(scores: np.ndarray, fps: float, merge_shorter_than: float | None = None,
                          kernel: int = MEDIAN_KERNEL) -> tuple[Ranges, Ranges]:
    """Split scores into half-open (speak, listen) frame ranges.

    The scores are median-filtered, cut where the sign changes, and each piece is "speak" when its mean filtered
    score is positive. With `merge_shorter_than` (seconds), a piece shorter than that joins its longer neighbour,
    and the label of the joined piece is recomputed from its mean score.
    """
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    if len(scores) == 0:
        return [], []
    if np.isnan(scores).any():
        raise ValueError("speaking scores contain NaN")
    smooth = medfilt(scores, kernel) if len(scores) >= kernel else scores
    positive = smooth > 0
    cuts = np.flatnonzero(positive[1:] != positive[:-1]) + 1
    bounds = [0, *cuts.tolist(), len(scores)]
    pieces = [[s, e] for s, e in zip(bounds[:-1], bounds[1:])]
    if merge_shorter_than is not None:
        pieces = _merge_short(pieces, int(round(merge_shorter_than * fps)))
    speak, listen = [], []
    for start, end in pieces:
        (speak if smooth[start:end].mean() > 0 else listen).append((start, end))
    return _join_adjacent(speak), _join_adjacent(listen)


def _merge_short(pieces: list[list[int]], min_frames: int) -> list[list[int]]:
    pieces = [list(p) for p in pieces]
    while len(pieces) > 1:
        lengths = [e - s for s, e in pieces]
        shortest = int(np.argmin(lengths))
        if lengths[shortest] >= min_frames:
            break
        left = lengths[shortest - 1] if shortest > 0 else -1
        right = lengths[shortest + 1] if shortest + 1 < len(pieces) else -1
        into = shortest - 1 if left >= right else shortest + 1
        lo, hi = sorted((shortest, into))
        pieces[lo:hi + 1] = [[pieces[lo][0], pieces[hi][1]]]
    return pieces


def _join_adjacent(ranges: Ranges) -> Ranges:
    joined: Ranges = []
    for start, end in sorted(ranges):
        if joined and joined[-1][1] == start:
            joined[-1] = (joined[-1][0], end)
        else:
            joined.append((start, end))
    return joined
