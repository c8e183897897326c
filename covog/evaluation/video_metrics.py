"""Scores of a generated conversation video, as plain functions on arrays: speaker attribution (frame accuracy, F1,
chance, confusion), audio-visual sync from active-speaker scores at shifted audio, hand and finger stability, face
identity drift, and frame fidelity against a reference video (PSNR, SSIM, Fréchet distance of clip features).

`covog.evaluate` runs the annotator on a video and feeds these; nothing here reads files or runs a model.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import cv2
import numpy as np

from mit_annotator.core import keypoints as kp

NOBODY = "nobody"
HAND_POINT_SCORE = 0.3  # DWPose's drawing threshold for hand points: below it a point is not seen
FINGER_EXTENDED = 1.2  # a finger is extended when its tip is this much farther from the wrist than its second joint
DESCRIPTOR_THUMB = 24  # identity descriptor: a 24x24 grey thumbnail (structure) ...
DESCRIPTOR_BINS = 4  # ... and a 4x4x4 RGB histogram (colours)
MIN_FACE_PIXELS = 8  # faces smaller than this (either side) get no identity descriptor


# ---------------------------------------------------------------------------------------------------------------------
# Speaker attribution


@dataclass
class AttributionScore:
    """One person's "speaking or not" per frame, the annotated against the intended."""

    frames: int
    intended_share: float  # share of frames the schedule has them speak
    annotated_share: float  # share of frames the annotator finds them speaking
    accuracy: float  # share of frames where the two agree
    f1: float  # of "speaking" (1.0 when neither has any)
    chance: float  # the accuracy expected of a video whose speaking is independent of the schedule, same shares
    kappa: float  # (accuracy - chance) / (1 - chance): 0 at chance, 1 when perfect, < 0 when inverted

    def to_dict(self) -> dict:
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in asdict(self).items()}


def attribution_score(annotated: np.ndarray, intended: np.ndarray) -> AttributionScore:
    """Frame scores of two (frames,) bool arrays of "speaking"."""
    annotated, intended = np.asarray(annotated, bool), np.asarray(intended, bool)
    if annotated.shape != intended.shape or annotated.ndim != 1:
        raise ValueError(f"annotated {annotated.shape} and intended {intended.shape} speaking must be the same "
                         "(frames,) shape")
    n = len(intended)
    if n == 0:
        raise ValueError("no frames to score")
    tp = int((annotated & intended).sum())
    fp, fn = int((annotated & ~intended).sum()), int((~annotated & intended).sum())
    accuracy = float((annotated == intended).mean())
    p, q = float(annotated.mean()), float(intended.mean())
    chance = p * q + (1 - p) * (1 - q)
    kappa = (accuracy - chance) / (1 - chance) if chance < 1 else 0.0
    f1 = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 1.0
    return AttributionScore(n, q, p, accuracy, f1, chance, kappa)


def speaking_confusion(annotated: dict[int, np.ndarray], intended: dict[int, np.ndarray]
                       ) -> tuple[list[str], list[str], np.ndarray]:
    """Who moves their lips to whose voice, frame by frame: rows are the people the schedule has speaking (whose
    voice plays), columns the people the annotator finds speaking, counts of frames; a frame with nobody on one side
    counts in the NOBODY row or column, a frame with two people on one side counts once per pair. Returns (row
    labels, column labels, counts)."""
    people = sorted(intended)
    if sorted(annotated) != people:
        raise ValueError(f"annotated people {sorted(annotated)} differ from the intended {people}")
    labels = [str(p) for p in people] + [NOBODY]
    counts = np.zeros((len(labels), len(labels)), np.int64)
    n = len(next(iter(intended.values()))) if people else 0
    talking = np.stack([intended[p] for p in people]) if people else np.zeros((0, n), bool)
    moving = np.stack([annotated[p] for p in people]) if people else np.zeros((0, n), bool)
    for frame in range(n):
        rows = list(np.flatnonzero(talking[:, frame])) or [len(people)]
        cols = list(np.flatnonzero(moving[:, frame])) or [len(people)]
        for r in rows:
            for c in cols:
                counts[r, c] += 1
    return labels, labels, counts


# ---------------------------------------------------------------------------------------------------------------------
# Audio-visual sync


def delayed(samples: np.ndarray, shift: int) -> np.ndarray:
    """`samples` delayed by `shift` samples (advanced when negative), silence where nothing moved in."""
    out = np.zeros_like(samples)
    if shift >= 0:
        out[shift:] = samples[:len(samples) - shift]
    else:
        out[:shift] = samples[-shift:]
    return out


@dataclass
class SyncScore:
    """Active-speaker score against the audio's delay: the delay where the face agrees with the voice most.

    offset_frames > 0: the lips trail the voice by that many frames (the audio must be delayed to match them);
    confidence: the peak's mean score minus the median over all delays (SyncNet's "confidence" in spirit)."""

    offsets: list[int]
    curve: list[float]  # mean active-speaker score over the person's speaking frames, per offset
    offset_frames: int
    confidence: float
    frames: int  # the speaking frames the curve averages

    def to_dict(self, fps: float) -> dict:
        return {"offset_frames": self.offset_frames, "offset_ms": round(1000 * self.offset_frames / fps, 1),
                "confidence": round(self.confidence, 4), "frames": self.frames, "offsets": self.offsets,
                "curve": [round(v, 4) for v in self.curve]}


def sync_score(scores_by_offset: dict[int, np.ndarray], speaking: np.ndarray, min_frames: int = 1
               ) -> SyncScore | None:
    """From (frames,) active-speaker scores per audio delay (in frames), averaged over the frames where the person
    speaks and the face was scored; None when fewer than `min_frames` such frames exist."""
    offsets = sorted(scores_by_offset)
    if not offsets:
        raise ValueError("no offsets scored")
    speaking = np.asarray(speaking, bool)
    usable = speaking & np.all([~np.isnan(scores_by_offset[o]) for o in offsets], axis=0)
    if usable.sum() < max(min_frames, 1):
        return None
    curve = np.array([float(np.mean(scores_by_offset[o][usable])) for o in offsets])
    peak = int(np.argmax(curve))
    return SyncScore(offsets, curve.tolist(), offsets[peak], float(curve[peak] - np.median(curve)), int(usable.sum()))


# ---------------------------------------------------------------------------------------------------------------------
# Hands and fingers


HANDS = {"left": kp.LEFT_HAND_ROOT, "right": kp.RIGHT_HAND_ROOT}


def hand_points(keypoints: np.ndarray, scores: np.ndarray, root: int) -> np.ndarray:
    """(frames, 21, 2) one hand's points, NaN where a point is not seen (score < HAND_POINT_SCORE)."""
    points = np.asarray(keypoints, np.float64)[:, root:root + 21].copy()
    points[np.asarray(scores)[:, root:root + 21] < HAND_POINT_SCORE] = np.nan
    return points


def hand_jitter(points: np.ndarray) -> float:
    """How much a hand's points shake: the median over frames of the mean second difference of the points seen in
    three consecutive frames (|p(t+1) - 2 p(t) + p(t-1)|), divided by the hand's size (median diagonal of its points'
    box). Smooth motion gives near 0; points that jump about give about their jump over the hand size. NaN when no
    three consecutive frames show the hand."""
    points = np.asarray(points, np.float64)
    if len(points) < 3:
        return float("nan")
    second = np.linalg.norm(points[2:] - 2 * points[1:-1] + points[:-2], axis=-1)  # (frames - 2, 21)
    per_frame = np.array([np.nanmean(row) if np.any(~np.isnan(row)) else np.nan for row in second])
    extent = np.nanmax(points, axis=1) - np.nanmin(points, axis=1) if np.any(~np.isnan(points)) else None
    if extent is None or np.all(np.isnan(per_frame)):
        return float("nan")
    sizes = np.linalg.norm(extent, axis=-1)
    size = float(np.nanmedian(sizes)) if np.any(~np.isnan(sizes)) else float("nan")
    if not size > 0:
        return float("nan")
    return float(np.nanmedian(per_frame) / size)


def finger_counts(points: np.ndarray) -> np.ndarray:
    """(frames,) extended fingers per frame (0-5; -1 where the wrist is not seen). A finger is extended when its tip
    is seen and lies FINGER_EXTENDED times farther from the wrist than its second joint (PIP; the thumb's MCP)."""
    points = np.asarray(points, np.float64)
    counts = np.full(len(points), -1, np.int64)
    for t, hand in enumerate(points):
        wrist = hand[0]
        if np.isnan(wrist).any():
            continue
        count = 0
        for finger in range(5):
            joint, tip = hand[1 + 4 * finger + 1], hand[1 + 4 * finger + 3]
            if np.isnan(joint).any() or np.isnan(tip).any():
                continue
            if np.linalg.norm(tip - wrist) > FINGER_EXTENDED * np.linalg.norm(joint - wrist):
                count += 1
        counts[t] = count
    return counts


def count_flicker(counts: np.ndarray) -> dict:
    """How often the finger count changes: `change_rate` over consecutive measured frames, and `blip_rate`, the
    share of frames whose count differs from both neighbours while the neighbours agree (a finger that appears or
    vanishes for one frame)."""
    counts = np.asarray(counts)
    pairs = (counts[1:] >= 0) & (counts[:-1] >= 0)
    changes = (counts[1:] != counts[:-1]) & pairs
    triples = (counts[2:] >= 0) & (counts[1:-1] >= 0) & (counts[:-2] >= 0)
    blips = triples & (counts[2:] == counts[:-2]) & (counts[1:-1] != counts[:-2])
    return {"change_rate": float(changes.sum() / pairs.sum()) if pairs.any() else None,
            "blip_rate": float(blips.sum() / triples.sum()) if triples.any() else None,
            "measured_frames": int((counts >= 0).sum())}


# ---------------------------------------------------------------------------------------------------------------------
# Face identity


def face_descriptor(frame: np.ndarray, box: np.ndarray) -> np.ndarray | None:
    """A simple identity descriptor of the face in `box` of an RGB frame, unit length: a DESCRIPTOR_THUMB-square grey
    thumbnail with its mean removed (the face's structure: eyes, brows, mouth, hair line) and a DESCRIPTOR_BINS^3 RGB
    histogram (skin, hair and background colours), each scaled to length 1/sqrt(2). The cosine of two descriptors is
    the mean of the two parts' cosines. None for a box under MIN_FACE_PIXELS or outside the frame."""
    height, width = frame.shape[:2]
    x1, y1, x2, y2 = (int(round(v)) for v in np.nan_to_num(np.asarray(box, np.float64), nan=-1))
    x1, y1, x2, y2 = max(x1, 0), max(y1, 0), min(x2, width), min(y2, height)
    if x2 - x1 < MIN_FACE_PIXELS or y2 - y1 < MIN_FACE_PIXELS:
        return None
    crop = frame[y1:y2, x1:x2]
    grey = cv2.resize(cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY), (DESCRIPTOR_THUMB, DESCRIPTOR_THUMB),
                      interpolation=cv2.INTER_AREA).astype(np.float64).ravel()
    grey -= grey.mean()
    bins = (crop.reshape(-1, 3).astype(np.int64) * DESCRIPTOR_BINS) // 256
    index = (bins[:, 0] * DESCRIPTOR_BINS + bins[:, 1]) * DESCRIPTOR_BINS + bins[:, 2]
    colour = np.bincount(index, minlength=DESCRIPTOR_BINS ** 3).astype(np.float64)
    parts = [part / max(np.linalg.norm(part), 1e-12) for part in (grey, colour)]
    return (np.concatenate(parts) / np.sqrt(2)).astype(np.float32)


def identity_drift(descriptors: dict[int, list[np.ndarray | None]], fps: float, reference_seconds: float = 1.0
                   ) -> dict[int, dict]:
    """Per person, from one descriptor per frame (None where no face): the reference is the mean of their first
    `reference_seconds` of descriptors; `drift` per frame is 1 - cosine to it (NaN where no face). Reported: the
    mean drift, the mean over the last `reference_seconds` minus that over the first (`growth`: drift that builds up
    over time), the largest, and `closer_to_other_share`, the share of their faces that are closer to someone else's
    reference than to their own (identities swapping)."""
    window = max(1, int(round(reference_seconds * fps)))
    references = {}
    for person, row in descriptors.items():
        seen = [d for d in row if d is not None][:window]
        if seen:
            mean = np.mean(seen, axis=0)
            references[person] = mean / max(float(np.linalg.norm(mean)), 1e-12)
    out = {}
    for person, row in descriptors.items():
        drift = np.full(len(row), np.nan)
        closer = []
        if person in references:
            for t, d in enumerate(row):
                if d is None:
                    continue
                own = float(d @ references[person])
                drift[t] = 1.0 - own
                others = [float(d @ r) for p, r in references.items() if p != person]
                if others:
                    closer.append(max(others) > own)
        seen = drift[~np.isnan(drift)]
        out[person] = {
            "faces": int(len(seen)),
            "mean_drift": float(seen.mean()) if len(seen) else None,
            "growth": float(seen[-window:].mean() - seen[:window].mean()) if len(seen) else None,
            "max_drift": float(seen.max()) if len(seen) else None,
            "closer_to_other_share": float(np.mean(closer)) if closer else None,
            "drift": drift,
        }
    return out


# ---------------------------------------------------------------------------------------------------------------------
# Against a reference video


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """Peak signal-to-noise ratio of two uint8 images (dB; inf when identical)."""
    mse = float(np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2))
    return float("inf") if mse == 0 else float(10 * np.log10(255.0 ** 2 / mse))


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Structural similarity of two RGB uint8 images (scikit-image, 7x7 windows, per channel, averaged)."""
    try:
        from skimage.metrics import structural_similarity
    except ImportError:
        raise RuntimeError("SSIM needs scikit-image: pip install scikit-image (the pack's `faces` extra)") from None
    return float(structural_similarity(a, b, channel_axis=2, data_range=255))


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Fréchet distance of two feature sets (rows are samples) modelled as Gaussians, as FID and FVD compute it:
    |mu_a - mu_b|^2 + tr(S_a + S_b - 2 (S_a S_b)^(1/2))."""
    from scipy import linalg

    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1] or min(len(a), len(b)) < 2:
        raise ValueError(f"need two (samples >= 2, dim) feature sets of one dim, got {a.shape} and {b.shape}")
    mu = a.mean(0) - b.mean(0)
    sa, sb = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    root = np.real(linalg.sqrtm(sa @ sb))
    return float(mu @ mu + np.trace(sa + sb - 2 * root))
