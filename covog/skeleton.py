"""Skeleton renders: the pose images CovOG's pose encoder reads, one per person.

Each person's 133 keypoints are drawn DWPose-style on black (body limbs in the OpenPose colours, hands in
per-finger colours, face points in white), then masked to that person's box, so that one person's guider input
never carries another's limbs (the MIT code's person-box mask, with its max/min slip fixed).
"""

from __future__ import annotations

import colorsys

import cv2
import numpy as np

from mit_annotator import keypoints as kp

SEEN = 0.3
BODY_COLOURS = [tuple(int(255 * c) for c in colorsys.hsv_to_rgb(k / len(kp.BODY_LIMBS), 1.0, 1.0))
                for k in range(len(kp.BODY_LIMBS))]
FINGER_COLOURS = [tuple(int(255 * c) for c in colorsys.hsv_to_rgb(k / 5, 0.8, 1.0)) for k in range(5)]


def render_person(points: np.ndarray, scores: np.ndarray, size: tuple[int, int], box: np.ndarray | None = None,
                  scale: tuple[float, float] = (1.0, 1.0)) -> np.ndarray:
    """(H, W, 3) uint8 RGB skeleton of one person on black; `size` is (width, height); `scale` maps keypoint
    pixels to render pixels; `box` (in keypoint pixels) masks the render to the person (None: no mask)."""
    width, height = size
    points = np.asarray(points, dtype=np.float32) * np.asarray(scale, dtype=np.float32)
    canvas = np.zeros((height, width, 3), dtype=np.uint8)
    thickness = max(1, round(min(width, height) / 128))
    for colour, (a, b) in zip(BODY_COLOURS, kp.BODY_LIMBS):
        if scores[a] >= SEEN and scores[b] >= SEEN:
            cv2.line(canvas, _pt(points[a]), _pt(points[b]), colour, thickness * 2, cv2.LINE_AA)
    for root in (kp.LEFT_HAND_ROOT, kp.RIGHT_HAND_ROOT):
        for index, (a, b) in enumerate(kp.hand_bones(root)):
            if scores[a] >= SEEN and scores[b] >= SEEN:
                cv2.line(canvas, _pt(points[a]), _pt(points[b]), FINGER_COLOURS[index // 4], thickness,
                         cv2.LINE_AA)
    for i in range(kp.FACE.start, kp.FACE.stop):
        if scores[i] >= SEEN:
            cv2.circle(canvas, _pt(points[i]), thickness, (255, 255, 255), -1)
    if box is not None:
        x1, y1, x2, y2 = np.asarray(box, dtype=np.float32) * np.tile(np.asarray(scale, np.float32), 2)
        mask = np.zeros((height, width), dtype=bool)
        mask[max(int(y1), 0):max(int(np.ceil(y2)), 0), max(int(x1), 0):max(int(np.ceil(x2)), 0)] = True
        canvas[~mask] = 0
    return canvas


def _pt(xy) -> tuple[int, int]:
    return int(round(float(xy[0]))), int(round(float(xy[1])))
