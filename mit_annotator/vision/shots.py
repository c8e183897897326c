"""Shot boundaries with PySceneDetect's content detector (what the MIT pipeline used), fed our decoded frames as
PySceneDetect's own scene manager feeds it: the longer side scaled down to about 256 px (its auto_downscale)."""

from __future__ import annotations

from collections.abc import Iterable

import cv2
import numpy as np
from scenedetect import ContentDetector
from scenedetect.common import FrameTimecode
from scenedetect.scene_manager import compute_downscale_factor

CONTENT_THRESHOLD = 27.0  # PySceneDetect's default
MIN_SHOT_FRAMES = 15


class ShotDetector:
    """Feed RGB frames in order with `add`; `shots()` gives the half-open frame ranges found so far."""

    def __init__(self, fps: float, threshold: float = CONTENT_THRESHOLD, min_shot_frames: int = MIN_SHOT_FRAMES):
        self.fps = fps
        self.detector = ContentDetector(threshold=threshold, min_scene_len=min_shot_frames)
        self.cuts: list[int] = []
        self.count = 0

    def add(self, frame: np.ndarray) -> bool:
        """Whether a cut was found at this frame."""
        bgr = cv2.cvtColor(scaled_down(frame), cv2.COLOR_RGB2BGR)  # several times faster than a reversed numpy copy
        found = [int(cut.frame_num) for cut in self.detector.process_frame(FrameTimecode(self.count, fps=self.fps),
                                                                             bgr)]
        self.cuts += found
        self.count += 1
        return bool(found)

    def shots(self) -> list[tuple[int, int]]:
        bounds = [0, *sorted(c for c in set(self.cuts) if 0 < c < self.count), self.count]
        return [(a, b) for a, b in zip(bounds[:-1], bounds[1:]) if b > a]


def scaled_down(frame: np.ndarray) -> np.ndarray:
    """The frame at the size PySceneDetect's SceneManager gives its detectors by default (auto_downscale: the longer
    side to about 256 px, linear interpolation); the content detector's threshold is set for frames that size, and
    a full 720p frame costs it 20 times more."""
    height, width = frame.shape[:2]
    factor = compute_downscale_factor(max(width, height))
    if factor <= 1.0:
        return frame
    size = (max(1, round(width / factor)), max(1, round(height / factor)))
    return cv2.resize(frame, size, interpolation=cv2.INTER_LINEAR)


def detect_shots(frames: Iterable[np.ndarray], fps: float, threshold: float = CONTENT_THRESHOLD,
                 min_shot_frames: int = MIN_SHOT_FRAMES) -> list[tuple[int, int]]:
    detector = ShotDetector(fps, threshold, min_shot_frames)
    for frame in frames:
        detector.add(frame)
    return detector.shots()
