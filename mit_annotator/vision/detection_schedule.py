"""When the person detector must look again: detection at a stride, with the tracker bridging the frames between,
and every frame while the picture is uncertain (a cut, someone new, someone lost, someone moving fast)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment

from mit_annotator.vision.tracking import box_iou

MAX_FACES_EVERY = 5  # 200 ms: a mouth opens and closes within it, and interpolated landmarks would not follow


@dataclass(frozen=True)
class VisionSpeed:
    """How much of the video the vision pass looks at. `EXACT` (every frame, faces in the whole frame) is the
    reference the faster settings are measured against (BENCHMARKS.md, annotate)."""

    detect_every: int = 1  # person detection on every Nth frame, the tracker bridging the frames between
    face_search: str = "frame"  # "frame": the whole frame; "heads": around each tracked head only
    faces_every: int = 1  # faces searched on every Nth frame (and at each cut), landmarks interpolated between
    settle: int = 5  # frames of detection on every frame after a change (TrackerConfig.min_length confirms a track)
    max_motion: float = 0.04  # box centre motion, heights per frame (1 a second), past which every frame is seen

    def __post_init__(self):
        if not isinstance(self.detect_every, int) or not 1 <= self.detect_every <= 25:
            raise ValueError(f"detect_every must be a whole number of frames from 1 to 25, got {self.detect_every!r}")
        if self.face_search not in ("frame", "heads"):
            raise ValueError(f"face_search must be 'frame' or 'heads', got {self.face_search!r}")
        if not isinstance(self.faces_every, int) or not 1 <= self.faces_every <= MAX_FACES_EVERY:
            raise ValueError(f"faces_every must be a whole number of frames from 1 to {MAX_FACES_EVERY}, got "
                             f"{self.faces_every!r}")

    @property
    def exact(self) -> bool:
        return self.detect_every == 1 and self.face_search == "frame" and self.faces_every == 1


EXACT = VisionSpeed()


class DetectionSchedule:
    """Say `due(frame, cut)` before each frame and `found(frame, boxes)` after each detection.

    The schedule keeps the people seen in the last second (`MEMORY`, the tracker's patience), each at their latest
    box. It looks at every frame for `settle` frames after a box that matches none of them (someone new: the tracker
    confirms a track after `min_length` sightings, as it would on every frame) or that moved fast since the last look;
    and on every frame while someone remembered is missing, for as long as the tracker would still take them back
    (a detector that misses a person now and then finds them again on the frames between looks, as it would if it
    looked at every frame; looking again only at the stride cost up to 0.065 MOTA on the synthetic conversations).
    """

    SAME_PERSON = 0.3  # IoU between two boxes that count as one person who stayed
    MEMORY = 26  # frames a person seen stays known: the tracker still matches them 25 unseen frames later

    def __init__(self, speed: VisionSpeed):
        self.speed = speed
        self.known: list[tuple[int, np.ndarray]] = []  # people seen in the last MEMORY frames: frame, latest box
        self.last_look = -1
        self.dense_until = -1  # look at every frame up to and including this one

    def due(self, frame: int, cut: bool) -> bool:
        if cut:
            self.known = []
        if self.last_look < 0 or cut or frame <= self.dense_until:
            return True
        return frame - self.last_look >= self.speed.detect_every

    def found(self, frame: int, boxes: np.ndarray) -> None:
        boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
        self.known = [(f, b) for f, b in self.known if frame - f <= self.MEMORY]
        pairs = self._pairs([b for _, b in self.known], boxes)
        span = max(frame - self.last_look, 1)
        fast = any(self._moved(self.known[k][1], boxes[j], span) for k, j in pairs
                   if self.known[k][0] == self.last_look)
        if self.known and (len(pairs) < len(boxes) or fast):
            self.dense_until = frame + self.speed.settle
        elif len(pairs) < len(self.known):
            self.dense_until = max(self.dense_until, frame + 1)  # someone remembered is missing: look again
        matched = {j for _, j in pairs}
        seen = {k for k, _ in pairs}
        self.known = ([(frame, boxes[j]) for _, j in pairs] + [p for k, p in enumerate(self.known) if k not in seen]
                      + [(frame, boxes[j]) for j in range(len(boxes)) if j not in matched])
        self.last_look = frame

    def _pairs(self, known: list[np.ndarray], boxes: np.ndarray) -> list[tuple[int, int]]:
        if not known or not len(boxes):
            return []
        overlap = np.array([[box_iou(a, b) for b in boxes] for a in known])
        rows, cols = linear_sum_assignment(-overlap)
        return [(int(r), int(c)) for r, c in zip(rows, cols) if overlap[r, c] >= self.SAME_PERSON]

    def _moved(self, before: np.ndarray, box: np.ndarray, span: int) -> bool:
        """The box centre moved more than `max_motion` of its height per frame (the centre: a box's edges follow
        every gesture of the arms)."""
        shift = np.abs((box[:2] + box[2:]) / 2 - (before[:2] + before[2:]) / 2).max() / span
        return bool(shift > self.speed.max_motion * max(float(box[3] - box[1]), 1.0))
