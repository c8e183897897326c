"""Who speaks, read straight from the pixels: each person's mouth opening where the poses put their mouth, scored
against the schedule of who was meant to speak when.

For videos whose poses are known (a generated video and the poses it was made from): it needs no face detector and
no active-speaker model to see a mouth, so it still measures where those cannot (small faces, drawn people). Per
person and frame, the opening is how much of the region just below the upper inner lip (where an open mouth shows
its dark inside) is darker than half the person's own skin, the skin read on their cheeks in the same frame. A
person speaks in a frame when their opening, at its highest within SMOOTH_FRAMES around the frame (speech parts
the lips many times a second), is above one threshold for the whole video, chosen by Otsu's method over everyone's
openings: the measure needs no calibration on real videos, and a video whose mouths do not move scores at chance.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import maximum_filter1d

from covog.evaluation.video_metrics import attribution_score
from mit_annotator.core import keypoints as kp
from mit_annotator.core.records import SpeakingActivity, VideoTracks
from mit_annotator.speakers.lips import loudness

DARK = 0.5  # a pixel darker than this share of the skin's luminance counts as (part of) an open mouth
SMOOTH_FRAMES = 5  # the opening of a frame: its highest within this many frames around it
LOUDNESS_FLOOR_DB = -60.0  # quieter frames count as this loud: silence is silence, however deep
MIN_SPREAD = 0.02  # openings that all lie within this of each other: no mouth moved, no one is found speaking
LUMA = np.array([0.299, 0.587, 0.114])
# iBUG-68 indices of the face points used, as keypoint indices
_INNER_LEFT, _INNER_RIGHT = kp.FACE_OFFSET + 60, kp.FACE_OFFSET + 64
_INNER_TOP = kp.FACE_OFFSET + np.array([61, 62, 63])
_CHEEKS = ((kp.FACE_OFFSET + 41, kp.FACE_OFFSET + 48), (kp.FACE_OFFSET + 46, kp.FACE_OFFSET + 54))  # eye, corner


def mouth_openings(frames: np.ndarray, tracks: VideoTracks) -> np.ndarray:
    """(people, frames) opening 0..1 of each person's mouth in each of `frames` ((T, H, W, 3) RGB uint8, the video
    at any size: the poses are scaled to it); NaN where the person is not posed or their mouth is outside."""
    count, height, width = frames.shape[0], frames.shape[1], frames.shape[2]
    scale = np.array([width / tracks.width, height / tracks.height])
    out = np.full((len(tracks.tracks), count), np.nan, dtype=np.float32)
    for p, track in enumerate(tracks.tracks):
        if track.keypoints is None:
            continue
        for row, frame in enumerate(track.frames):
            if frame < count:
                out[p, frame] = _opening(frames[frame], track.keypoints[row] * scale)
    return out


def _opening(image: np.ndarray, points: np.ndarray) -> float:
    left, right = points[_INNER_LEFT], points[_INNER_RIGHT]
    mouth_width = float(np.linalg.norm(right - left))
    if not np.isfinite(mouth_width) or mouth_width < 1:
        return np.nan
    centre_x, top = (left[0] + right[0]) / 2, float(points[_INNER_TOP, 1].mean())
    # the inside shows between the inner lips, which part downwards by up to about 0.8 of the mouth's inner width
    region = _pixels(image, centre_x - 0.35 * mouth_width, top - 0.1 * mouth_width,
                     centre_x + 0.35 * mouth_width, top + 0.85 * mouth_width)
    cheeks = [_pixels(image, *(((points[eye] + points[corner]) / 2)[[0, 1, 0, 1]]
                                + np.array([-1, -1, 1, 1]) * 0.15 * mouth_width))
              for eye, corner in _CHEEKS]
    skin = np.concatenate(cheeks)
    if region.size == 0 or skin.size == 0:
        return np.nan
    dark = DARK * float(np.median(skin))
    if dark <= 0:
        return np.nan
    return float(np.clip((dark - region) / dark, 0.0, 1.0).mean())


def _pixels(image: np.ndarray, x1: float, y1: float, x2: float, y2: float) -> np.ndarray:
    """The luminance of the pixels whose centres lie in the box (at least the one nearest its centre), flattened."""
    height, width = image.shape[:2]
    c1, c2 = int(np.ceil(x1 - 0.5)), int(np.floor(x2 - 0.5)) + 1
    r1, r2 = int(np.ceil(y1 - 0.5)), int(np.floor(y2 - 0.5)) + 1
    if c2 <= c1:
        c1 = c2 = int(round((x1 + x2) / 2 - 0.5))
        c2 += 1
    if r2 <= r1:
        r1 = r2 = int(round((y1 + y2) / 2 - 0.5))
        r2 += 1
    c1, c2, r1, r2 = max(c1, 0), min(c2, width), max(r1, 0), min(r2, height)
    if c2 <= c1 or r2 <= r1:
        return np.empty(0)
    return (image[r1:r2, c1:c2].reshape(-1, 3).astype(np.float64) @ LUMA).ravel()


def speaking_from_openings(openings: np.ndarray) -> tuple[np.ndarray, float | None]:
    """(people, frames) bool "speaking" from the openings, and the threshold (None when no mouth moved); see the
    module's doc. Frames without an opening are not speaking."""
    smoothed = _running_max(openings, SMOOTH_FRAMES)
    values = smoothed[np.isfinite(smoothed)]
    if values.size < 2 or values.max() - values.min() < MIN_SPREAD:
        return np.zeros(openings.shape, bool), None
    threshold = otsu_threshold(values)
    return np.nan_to_num(smoothed, nan=-np.inf) > threshold, threshold


def _running_max(values: np.ndarray, window: int) -> np.ndarray:
    """Each row's highest value within `window` frames centred on each frame (missing frames skipped); NaN stays."""
    out = maximum_filter1d(np.nan_to_num(values, nan=-np.inf), window, axis=1, mode="constant", cval=-np.inf)
    return np.where(np.isfinite(values), out, np.nan)


def otsu_threshold(values: np.ndarray, bins: int = 256) -> float:
    """The threshold that splits `values` into two groups of least within-group variance (Otsu 1979); where a gap
    between the groups makes several thresholds equally good, the middle of them."""
    counts, edges = np.histogram(values, bins=bins)
    centres = (edges[:-1] + edges[1:]) / 2
    weight_low = np.cumsum(counts)[:-1]
    weight_high = counts.sum() - weight_low
    sum_low = np.cumsum(counts * centres)[:-1]
    mean_low = sum_low / np.maximum(weight_low, 1)
    mean_high = (np.sum(counts * centres) - sum_low) / np.maximum(weight_high, 1)
    between = weight_low * weight_high * (mean_low - mean_high) ** 2
    best = np.flatnonzero(between >= between.max() * (1 - 1e-9))
    return float((edges[1:-1][best[0]] + edges[1:-1][best[-1]]) / 2)


def mouth_report(frames: np.ndarray, tracks: VideoTracks, schedule: SpeakingActivity,
                 voices: list[np.ndarray] | None = None, sample_rate: int = 16000) -> dict:
    """The mouth measure of a video (its frames at the schedule's frame rate) against the schedule: per person and
    overall speaking/not-speaking accuracy, F1 and Cohen's kappa; with `voices` (each person's own audio, in the
    tracks' order) each opening's correlation with each voice's loudness and each voice's margin (its correlation
    with its own person's mouth minus the best other person's)."""
    ids = [t.track_id for t in tracks.tracks]
    missing = sorted(set(ids) - {p.track_id for p in schedule.people})
    if missing:
        raise ValueError(f"the schedule has no speaking scores for track ids {missing} of the poses")
    if voices is not None and len(voices) != len(ids):
        raise ValueError(f"{len(voices)} voices for the poses' {len(ids)} people: give one per person, in the "
                         "tracks' order")
    count = min(len(frames), schedule.num_frames)
    openings = mouth_openings(frames[:count], tracks)
    speaking, threshold = speaking_from_openings(openings)
    intended = np.stack([schedule.person(i).scores[:count] > 0 for i in ids])
    people = []
    for p, track_id in enumerate(ids):
        score = attribution_score(speaking[p], intended[p]).to_dict()
        people.append({"track_id": track_id, **score,
                       "opening_speaking": _mean(openings[p][intended[p]]),
                       "opening_silent": _mean(openings[p][~intended[p]])})
    overall = attribution_score(speaking.ravel(), intended.ravel())
    report = {"frames": count, "threshold": None if threshold is None else round(threshold, 4),
              "accuracy": round(overall.accuracy, 4), "f1": round(overall.f1, 4), "chance": round(overall.chance, 4),
              "kappa": round(overall.kappa, 4), "people": people}
    if voices is not None:
        fps = schedule.fps
        levels = np.maximum(np.stack([loudness(v, sample_rate, fps, count) for v in voices]), LOUDNESS_FLOOR_DB)
        correlation = np.array([[_correlation(openings[p], levels[v]) for v in range(len(ids))]
                                for p in range(len(ids))])
        report["correlation"] = np.round(correlation, 4).tolist()  # [person][voice]
        report["voices"] = [{"person": ids[v], "own": round(float(correlation[v, v]), 4),
                             "margin": round(float(correlation[v, v] - np.delete(correlation[:, v], v).max()), 4)}
                            for v in range(len(ids))]
    return report


def _mean(values: np.ndarray) -> float | None:
    values = values[np.isfinite(values)]
    return round(float(values.mean()), 4) if values.size else None


def _correlation(a: np.ndarray, b: np.ndarray) -> float:
    keep = np.isfinite(a) & np.isfinite(b)
    if keep.sum() < 3 or np.std(a[keep]) == 0 or np.std(b[keep]) == 0:
        return 0.0
    return float(np.corrcoef(a[keep], b[keep])[0, 1])
