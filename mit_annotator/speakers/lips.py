"""The mouth per tracked person per frame, the visual side of "who speaks", and the audio's loudness to match it.

With poses: the inner-lip opening (mean gap of the three facing inner-lip pairs over the mouth width), and
activity as its local variation, since talking moves the lips while a held-open mouth does not. Without poses:
motion (mean absolute frame difference) in a box around the mouth corners that a face detector gave.
Loudness: the audio's level per video frame, which a speaker's mouth follows syllable by syllable.
"""

from __future__ import annotations

from collections.abc import Iterable

import cv2
import numpy as np
from scipy.ndimage import uniform_filter1d

from mit_annotator.core.keypoints import mouth_opening
from mit_annotator.core.records import PersonTrack

ACTIVITY_WINDOW_S = 0.32  # about 8 frames at 25 fps: one or two syllables


def mouth_openings(track: PersonTrack, num_frames: int) -> np.ndarray:
    """(num_frames,) inner-lip opening over mouth width; NaN where the person or the lips are not seen."""
    out = np.full(num_frames, np.nan, dtype=np.float32)
    if track.keypoints is None:
        return out
    for row, frame in enumerate(track.frames):
        out[frame] = mouth_opening(track.keypoints[row], track.keypoint_scores[row])
    return out


def activity_from_openings(openings: np.ndarray, fps: float) -> np.ndarray:
    """Local standard deviation of the opening over ACTIVITY_WINDOW_S (NaN stays NaN)."""
    return _local_std(openings, max(3, int(round(ACTIVITY_WINDOW_S * fps))))


def activity_from_motion(motion: np.ndarray, fps: float) -> np.ndarray:
    """Mouth-region motion averaged over ACTIVITY_WINDOW_S (NaN stays NaN)."""
    seen = ~np.isnan(motion)
    width = max(3, int(round(ACTIVITY_WINDOW_S * fps)))
    smooth = uniform_filter1d(np.where(seen, motion, 0.0), width, mode="nearest")
    return np.where(seen, smooth, np.nan).astype(np.float32)


def mouth_motion(frames: Iterable[np.ndarray], tracks: list[PersonTrack], num_frames: int) -> dict[int, np.ndarray]:
    """Per track, (num_frames,) motion in the mouth region located by the face landmarks (mouth corners)."""
    motion = MouthMotion(tracks, num_frames)
    for index, frame in enumerate(frames):
        motion.add(index, frame)
    return motion.values


class MouthMotion:
    """Mouth motion measured frame by frame, for a caller that decodes the frames for other work too: feed every
    frame in order with `add`; `values` holds, per track, (num_frames,) motion (NaN where unmeasured)."""

    def __init__(self, tracks: list[PersonTrack], num_frames: int):
        self.tracks = tracks
        self.values = {t.track_id: np.full(num_frames, np.nan, dtype=np.float32) for t in tracks}
        self.previous = None

    def add(self, index: int, frame: np.ndarray) -> None:
        grey = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)  # in floats only where a mouth is: a 1080p frame costs 3 ms
        if self.previous is not None:
            for track in self.tracks:
                row = track.row_of(index)
                if row is None or track.face_landmarks is None or np.isnan(track.face_landmarks[row]).any():
                    continue
                box = _mouth_box(track.face_landmarks[row], grey.shape)
                if box is None or index >= len(self.values[track.track_id]):
                    continue
                x1, y1, x2, y2 = box
                now, before = grey[y1:y2, x1:x2].astype(np.float32), self.previous[y1:y2, x1:x2].astype(np.float32)
                self.values[track.track_id][index] = float(np.abs(now - before).mean())
        self.previous = grey


def _mouth_box(landmarks: np.ndarray, shape: tuple[int, int]) -> tuple[int, int, int, int] | None:
    """A box around the mouth: as wide as 1.5 mouth widths, from just above the corners to below the lips."""
    corners = landmarks[3:5]  # YuNet and SCRFD: eyes, nose tip, then the two mouth corners
    width = float(np.linalg.norm(corners[1] - corners[0]))
    if width < 2:
        return None
    centre = corners.mean(axis=0)
    x1, x2 = int(centre[0] - 0.75 * width), int(centre[0] + 0.75 * width)
    y1, y2 = int(centre[1] - 0.35 * width), int(centre[1] + 0.6 * width)
    x1, y1 = max(x1, 0), max(y1, 0)
    x2, y2 = min(x2, shape[1]), min(y2, shape[0])
    return (x1, y1, x2, y2) if x2 > x1 and y2 > y1 else None


def _local_std(values: np.ndarray, width: int) -> np.ndarray:
    seen = ~np.isnan(values)
    filled = np.where(seen, values, 0.0).astype(np.float64)
    weight = uniform_filter1d(seen.astype(np.float64), width, mode="nearest")
    mean = uniform_filter1d(filled, width, mode="nearest") / np.maximum(weight, 1e-9)
    square = uniform_filter1d(filled ** 2, width, mode="nearest") / np.maximum(weight, 1e-9)
    out = np.sqrt(np.maximum(square - mean ** 2, 0.0))
    return np.where(seen, out, np.nan).astype(np.float32)


def loudness(samples: np.ndarray, sample_rate: int, fps: float, num_frames: int) -> np.ndarray:
    """(num_frames,) level of each frame's audio in dB (RMS); NaN for frames past the end of the audio."""
    per_frame = sample_rate / fps
    out = np.full(num_frames, np.nan, dtype=np.float32)
    for frame in range(min(num_frames, int(len(samples) // per_frame))):
        chunk = samples[int(round(frame * per_frame)):int(round((frame + 1) * per_frame))]
        out[frame] = 10 * np.log10(np.mean(np.square(chunk, dtype=np.float64)) + 1e-10)
    return out
