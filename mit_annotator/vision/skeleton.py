"""Skeleton renders: the pose images CovOG's pose encoder reads, one per person.

CovOG's pose guider starts from Moore-AnimateAnyone's, which was trained on DWPose drawings: Moore's `DWposeDetector`
keeps one person per image and draws, on black, the OpenPose-18 body (neck = mean of the shoulders; 17 limbs as filled
ellipses in the fixed OpenPose colours, the whole canvas then dimmed to 0.6; joints as circles), both hands (bones in
hue steps, joints in blue) and the 68 face points as white dots; no feet. `render_person` draws one person exactly so:
same arithmetic (coordinates are normalised by the canvas size and multiplied back in float64, then truncated), the
same thresholds, sizes, colours and order. Checked pixel for pixel against DWPose's own drawing code (the report of
issue 12, item 4); tests/test_skeleton.py pins it.

What differs from Moore's renders by design: the render is masked to the person's box (the MIT code's person-box
mask, with its max/min slip fixed), so limbs, joint circles and dots that reach past the box are cut; and it is drawn
at the generated video's size, where Moore drew at a short side of 512 px and resized.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from mit_annotator.core import keypoints as kp
from mit_annotator.core.pose_formats import OPENPOSE_BODY_FROM_COCO, OPENPOSE_NECK

# DWPose's drawing constants (Moore-AnimateAnyone src/dwpose/util.py; the same in comfyui_controlnet_aux).
SEEN = 0.3  # body: seen if score > 0.3; hands and face: hidden if score < 0.3 (both on float64 scores)
STICK_WIDTH = 4  # the limb ellipses' half-width (their minor semi-axis)
LIMB_DIM = 0.6  # the canvas is multiplied by this after the limbs, before the joints
BODY_JOINT_RADIUS = 4
HAND_BONE_THICKNESS = 2
HAND_JOINT_RADIUS = 4
FACE_DOT_RADIUS = 3
EDGE = 0.01  # hand and face points are drawn only at a pixel column and row > 0.01, i.e. >= 1

# OpenPose-18 colours, RGB (channel 0 is red in the images Moore's guider read); limb k and joint k use colour k.
OPENPOSE_COLOURS = (
    (255, 0, 0), (255, 85, 0), (255, 170, 0), (255, 255, 0), (170, 255, 0), (85, 255, 0), (0, 255, 0),
    (0, 255, 85), (0, 255, 170), (0, 255, 255), (0, 170, 255), (0, 85, 255), (0, 0, 255), (85, 0, 255),
    (170, 0, 255), (255, 0, 255), (255, 0, 170), (255, 0, 85),
)
# The 17 limbs DWPose draws, in its order, as OpenPose-18 indices (0 nose, 1 neck, 2-4 right arm, 5-7 left arm,
# 8-10 right leg, 11-13 left leg, 14/15 right/left eye, 16/17 right/left ear).
OPENPOSE_LIMBS = (
    (1, 2), (1, 5), (2, 3), (3, 4), (5, 6), (6, 7), (1, 8), (8, 9), (9, 10), (1, 11), (11, 12), (12, 13), (1, 0),
    (0, 14), (14, 16), (0, 15), (15, 17),
)
# Hand bone k (wrist->thumb tip, then index ... little finger, 4 bones each): matplotlib's hsv_to_rgb(k / 20, 1, 1)
# * 255, as OpenCV rounds it when drawing.
HAND_BONE_COLOURS = (
    (255, 0, 0), (255, 77, 0), (255, 153, 0), (255, 229, 0), (204, 255, 0), (128, 255, 0), (51, 255, 0),
    (0, 255, 25), (0, 255, 102), (0, 255, 179), (0, 255, 255), (0, 178, 255), (0, 102, 255), (0, 25, 255),
    (51, 0, 255), (128, 0, 255), (204, 0, 255), (255, 0, 230), (255, 0, 153), (255, 0, 77),
)
HAND_JOINT_COLOUR = (0, 0, 255)
FACE_COLOUR = (255, 255, 255)
HAND_BONES = kp.hand_bones(0)  # within one hand's 21 points: DWPose's edge order


def openpose_body(points: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One person's OpenPose-18 body from 133 keypoints, as DWPose builds it: (18, 2) float64 points and which are
    seen (score > 0.3; the neck, the mean of the shoulders, only when both shoulders are)."""
    points, scores = np.asarray(points, dtype=np.float64), np.asarray(scores, dtype=np.float64)
    body = np.empty((18, 2), dtype=np.float64)
    seen = np.empty(18, dtype=bool)
    shoulders = [kp.LEFT_SHOULDER, kp.RIGHT_SHOULDER]
    for index, coco in enumerate(OPENPOSE_BODY_FROM_COCO):
        if coco is None:
            body[index], seen[index] = np.mean(points[shoulders], axis=0), bool((scores[shoulders] > SEEN).all())
        else:
            body[index], seen[index] = points[coco], scores[coco] > SEEN
    assert OPENPOSE_BODY_FROM_COCO[OPENPOSE_NECK] is None
    return body, seen & np.isfinite(body).all(axis=1)


def render_person(points: np.ndarray, scores: np.ndarray, size: tuple[int, int], box: np.ndarray | None = None,
                  scale: tuple[float, float] = (1.0, 1.0)) -> np.ndarray:
    """(H, W, 3) uint8 RGB DWPose skeleton of one person on black; `size` is (width, height); `scale` maps keypoint
    pixels to render pixels; `box` (in keypoint pixels) masks the render to the person (None: no mask; a box that
    is not finite hides the person)."""
    width, height = size
    points = np.asarray(points, dtype=np.float64) * np.asarray(scale, dtype=np.float64)
    scores = np.asarray(scores, dtype=np.float64)
    # DWPose hands its drawing functions coordinates divided by the canvas size and multiplies them back
    normalised = points / np.array([float(width), float(height)])
    canvas = np.zeros((height, width, 3), dtype=np.uint8)

    body, body_seen = openpose_body(points, scores)  # the neck is the shoulders' mean before normalising
    body = body / np.array([float(width), float(height)])
    for colour, (a, b) in zip(OPENPOSE_COLOURS, OPENPOSE_LIMBS):
        if body_seen[a] and body_seen[b]:
            _fill_limb(canvas, body[[a, b], 0] * float(width), body[[a, b], 1] * float(height), colour)
    canvas = (canvas * LIMB_DIM).astype(np.uint8)
    for colour, (x, y), seen in zip(OPENPOSE_COLOURS, body, body_seen):
        if seen:
            cv2.circle(canvas, (int(x * width), int(y * height)), BODY_JOINT_RADIUS, colour, thickness=-1)

    kept = ~(scores < SEEN) & np.isfinite(points).all(axis=1)
    for block in (kp.LEFT_HAND, kp.RIGHT_HAND):
        hand = _pixels(normalised[block], kept[block], width, height)
        for colour, (a, b) in zip(HAND_BONE_COLOURS, HAND_BONES):
            if hand[a] is not None and hand[b] is not None:
                cv2.line(canvas, hand[a], hand[b], colour, thickness=HAND_BONE_THICKNESS)
        for xy in hand:
            if xy is not None:
                cv2.circle(canvas, xy, HAND_JOINT_RADIUS, HAND_JOINT_COLOUR, thickness=-1)
    for xy in _pixels(normalised[kp.FACE], kept[kp.FACE], width, height):
        if xy is not None:
            cv2.circle(canvas, xy, FACE_DOT_RADIUS, FACE_COLOUR, thickness=-1)

    if box is not None:
        x1, y1, x2, y2 = np.asarray(box, dtype=np.float32) * np.tile(np.asarray(scale, np.float32), 2)
        mask = np.zeros((height, width), dtype=bool)
        if np.isfinite([x1, y1, x2, y2]).all():
            mask[max(int(y1), 0):max(int(np.ceil(y2)), 0), max(int(x1), 0):max(int(np.ceil(x2)), 0)] = True
        canvas[~mask] = 0
    return canvas


def _fill_limb(canvas: np.ndarray, xs: np.ndarray, ys: np.ndarray, colour: tuple[int, int, int]) -> None:
    """DWPose's limb: an ellipse polygon (1-degree steps) from one end to the other, STICK_WIDTH wide, filled."""
    centre_x, centre_y = np.mean(xs), np.mean(ys)
    length = ((ys[0] - ys[1]) ** 2 + (xs[0] - xs[1]) ** 2) ** 0.5
    angle = math.degrees(math.atan2(ys[0] - ys[1], xs[0] - xs[1]))
    polygon = cv2.ellipse2Poly((int(centre_x), int(centre_y)), (int(length / 2), STICK_WIDTH), int(angle), 0, 360, 1)
    cv2.fillConvexPoly(canvas, polygon, colour)


def _pixels(normalised: np.ndarray, kept: np.ndarray, width: int, height: int) -> list[tuple[int, int] | None]:
    """Hand or face points as DWPose places them: truncated pixels, None where hidden or in column or row 0 or less
    (DWPose's `> eps` test, which also drops points left of or above the canvas)."""
    out = []
    for (x, y), keep in zip(normalised, kept):
        xy = (int(x * width), int(y * height)) if keep else None
        out.append(xy if xy is not None and xy[0] > EDGE and xy[1] > EDGE else None)
    return out
