"""When the person detector must look again: detection at a stride, with the tracker bridging the frames between,
and every frame while the picture is uncertain (a cut, someone new, someone lost, someone moving fast)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment

from mit_annotator.vision.tracking import box_iou


@dataclass(frozen=True)
class VisionSpeed:
    """How much of the video the vision pass looks at. `EXACT` (every frame, faces in the whole frame) is the
    reference the faster settings are measured against (BENCHMARKS.md, annotate)."""

    detect_every: int = 1  # person detection on every Nth frame, the tracker bridging the frames between
    face_search: str = "frame"  # "frame": the whole frame; "heads": around each tracked head only
    settle: int = 5  # frames of detection on every frame after a change (TrackerConfig.min_length confirms a track)
    max_motion: float = 0.04  # box centre motion, heights per frame (1 a second), past which every frame is seen

    def __post_init__(self):
        if not isinstance(self.detect_every, int) or not 1 <= self.detect_every <= 25:
            raise ValueError(f"detect_every must be a whole number of frames from 1 to 25, got {self.detect_every!r}")
        if self.face_search not in ("frame", "heads"):
            raise ValueError(f"face_search must be 'frame' or 'heads', got {self.face_search!r}")

    @property
    def exact(self) -> bool:
        return self.detect_every == 1 and self.face_search == "frame"


EXACT = VisionSpeed()


class DetectionSchedule:
    """Say `due(frame, cut)` before each frame and `found(frame, boxes)` after each detection.

    Dense detection (every frame for `settle` frames) follows a box that matches no one seen in the last second
    (someone new: the tracker confirms a track after `min_length` sightings, as it would on every frame) and a
    box that moved fast since the last look. Someone missing is not a change: a detector that misses a person now
    and then would otherwise keep the schedule dense, and the tracker bridges the gap either way.
    """

    SAME_PERSON = 0.3  # IoU between two boxes that count as one person who stayed
    MEMORY = 25  # frames a person seen stays known (TrackerConfig.max_missing)

    def __init__(self, speed: VisionSpeed):
        self.speed = speed
        self.recent: list[tuple[int, np.ndarray]] = []  # the detections of the last MEMORY frames: frame, boxes
        self.dense_until = -1  # detect every frame up to and including this one

    def due(self, frame: int, cut: bool) -> bool:
        if cut:
            self.recent = []
        if not self.recent or frame <= self.dense_until:
            return True
        return frame - self.recent[-1][0] >= self.speed.detect_every

    def found(self, frame: int, boxes: np.ndarray) -> None:
        boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
        self.recent = [(f, b) for f, b in self.recent if frame - f <= self.MEMORY]
        if self.recent and (self._someone_new(boxes) or self._fast(boxes, *self.recent[-1], frame)):
            self.dense_until = frame + self.speed.settle
        self.recent.append((frame, boxes))

    def _someone_new(self, boxes: np.ndarray) -> bool:
        known = np.concatenate([b for _, b in self.recent])
        return any(max((box_iou(box, other) for other in known), default=0.0) < self.SAME_PERSON for box in boxes)

    def _fast(self, boxes: np.ndarray, before_frame: int, before: np.ndarray, frame: int) -> bool:
        """Someone's box centre moved more than `max_motion` of their height per frame since the last look (the
        centre: a box's edges follow every gesture of the arms)."""
        if not len(boxes) or not len(before):
            return False
        overlap = np.array([[box_iou(a, b) for b in boxes] for a in before])
        rows, cols = linear_sum_assignment(-overlap)
        same = overlap[rows, cols] >= self.SAME_PERSON
        rows, cols = rows[same], cols[same]
        span = max(frame - before_frame, 1)
        centres = (boxes[:, :2] + boxes[:, 2:]) / 2, (before[:, :2] + before[:, 2:]) / 2
        shift = np.abs(centres[0][cols] - centres[1][rows]).max(axis=1) / span
        height = np.maximum(boxes[cols, 3] - boxes[cols, 1], 1.0)
        return bool((shift > self.speed.max_motion * height).any())
