"""The COCO-WholeBody 133-keypoint layout (what DWPose predicts) and the geometry built on it.

Index blocks: 0-16 body (COCO-17), 17-22 feet, 23-90 face (iBUG-68), 91-111 left hand, 112-132 right hand.
"Left" is the person's own left, which is on the right of the image for someone facing the camera.
"""

from __future__ import annotations

import numpy as np

NUM_KEYPOINTS = 133

BODY = slice(0, 17)
FEET = slice(17, 23)
FACE = slice(23, 91)
LEFT_HAND = slice(91, 112)
RIGHT_HAND = slice(112, 133)

# Body (COCO-17)
NOSE, LEFT_EYE, RIGHT_EYE, LEFT_EAR, RIGHT_EAR = 0, 1, 2, 3, 4
LEFT_SHOULDER, RIGHT_SHOULDER, LEFT_ELBOW, RIGHT_ELBOW = 5, 6, 7, 8
LEFT_WRIST, RIGHT_WRIST, LEFT_HIP, RIGHT_HIP = 9, 10, 11, 12
LEFT_KNEE, RIGHT_KNEE, LEFT_ANKLE, RIGHT_ANKLE = 13, 14, 15, 16
# Feet: big toe, small toe, heel; left then right.
LEFT_BIG_TOE, LEFT_SMALL_TOE, LEFT_HEEL = 17, 18, 19
RIGHT_BIG_TOE, RIGHT_SMALL_TOE, RIGHT_HEEL = 20, 21, 22

# Face: the iBUG-68 points offset by 23.
FACE_OFFSET = 23
JAW = np.arange(23, 40)  # iBUG 0-16, ear to ear along the jaw line
CHIN = 31  # iBUG 8
BROWS = np.arange(40, 50)  # iBUG 17-26
NOSE_POINTS = np.arange(50, 59)  # iBUG 27-35, bridge then nostrils
EYE_POINTS = np.arange(59, 71)  # iBUG 36-47
OUTER_LIPS = np.arange(71, 83)  # iBUG 48-59
INNER_LIPS = np.arange(83, 91)  # iBUG 60-67
MOUTH_CORNER_IMAGE_LEFT = 71  # iBUG 48
MOUTH_CORNER_IMAGE_RIGHT = 77  # iBUG 54
INNER_LIP_TOP = np.array([84, 85, 86])  # iBUG 61-63
INNER_LIP_BOTTOM = np.array([90, 89, 88])  # iBUG 67, 66, 65: the points facing 61, 62, 63

# Hands (21 each): root at the wrist, then thumb, index, middle, ring, little finger tip-wards (4 points each).
LEFT_HAND_ROOT = 91
RIGHT_HAND_ROOT = 112

BODY_LIMBS = (
    (LEFT_SHOULDER, RIGHT_SHOULDER), (LEFT_SHOULDER, LEFT_ELBOW), (LEFT_ELBOW, LEFT_WRIST),
    (RIGHT_SHOULDER, RIGHT_ELBOW), (RIGHT_ELBOW, RIGHT_WRIST), (LEFT_SHOULDER, LEFT_HIP),
    (RIGHT_SHOULDER, RIGHT_HIP), (LEFT_HIP, RIGHT_HIP), (LEFT_HIP, LEFT_KNEE), (LEFT_KNEE, LEFT_ANKLE),
    (RIGHT_HIP, RIGHT_KNEE), (RIGHT_KNEE, RIGHT_ANKLE), (NOSE, LEFT_EYE), (NOSE, RIGHT_EYE),
    (LEFT_EYE, LEFT_EAR), (RIGHT_EYE, RIGHT_EAR),
    (LEFT_ANKLE, LEFT_BIG_TOE), (LEFT_ANKLE, LEFT_SMALL_TOE), (LEFT_ANKLE, LEFT_HEEL),
    (RIGHT_ANKLE, RIGHT_BIG_TOE), (RIGHT_ANKLE, RIGHT_SMALL_TOE), (RIGHT_ANKLE, RIGHT_HEEL),
)


def hand_bones(root: int) -> tuple[tuple[int, int], ...]:
    """Bones of one hand: each finger is a chain of 4 points starting from the root."""
    bones = []
    for finger in range(5):
        chain = [root] + [root + 1 + 4 * finger + k for k in range(4)]
        bones.extend(zip(chain[:-1], chain[1:]))
    return tuple(bones)


HAND_BONES = hand_bones(LEFT_HAND_ROOT) + hand_bones(RIGHT_HAND_ROOT)

# The paper's face box: the box of the jaw, chin and nose points, scaled about its centre.
FACE_BOX_POINTS = np.concatenate([JAW, NOSE_POINTS])
FACE_BOX_SCALE = (1.4, 1.6)  # width, height (MIT paper)


def face_box_from_keypoints(
    keypoints: np.ndarray, scores: np.ndarray, min_score: float = 0.3, min_points: int = 5
) -> np.ndarray:
    """Face box (x1, y1, x2, y2) from one person's 133 keypoints by the paper's rule; NaNs when too few are seen."""
    box = _extent(keypoints, scores, FACE_BOX_POINTS, min_score, min_points)
    centre, half = (box[:2] + box[2:]) / 2, (box[2:] - box[:2]) / 2 * np.asarray(FACE_BOX_SCALE, dtype=np.float32)
    return np.concatenate([centre - half, centre + half]).astype(np.float32)


def face_extent(keypoints: np.ndarray, scores: np.ndarray, min_score: float = 0.3, min_points: int = 5) -> np.ndarray:
    """The box of all 68 face points seen (brows to chin, ear to ear: about a face detector's box); NaNs when too
    few are seen."""
    return _extent(keypoints, scores, np.arange(FACE.start, FACE.stop), min_score, min_points)


def _extent(keypoints: np.ndarray, scores: np.ndarray, indices: np.ndarray, min_score: float,
            min_points: int) -> np.ndarray:
    keypoints = np.asarray(keypoints, dtype=np.float32)
    scores = np.asarray(scores, dtype=np.float32)
    if keypoints.shape != (NUM_KEYPOINTS, 2) or scores.shape != (NUM_KEYPOINTS,):
        raise ValueError(f"keypoints must be ({NUM_KEYPOINTS}, 2) and scores ({NUM_KEYPOINTS},), "
                         f"got {keypoints.shape} and {scores.shape}")
    seen = indices[scores[indices] >= min_score]
    if len(seen) < min_points:
        return np.full(4, np.nan, dtype=np.float32)
    points = keypoints[seen]
    return np.concatenate([points.min(axis=0), points.max(axis=0)]).astype(np.float32)


def mouth_opening(keypoints: np.ndarray, scores: np.ndarray, min_score: float = 0.3) -> float:
    """Inner-lip gap divided by the mouth width; NaN when the lips are not seen."""
    needed = np.concatenate([INNER_LIP_TOP, INNER_LIP_BOTTOM, [MOUTH_CORNER_IMAGE_LEFT, MOUTH_CORNER_IMAGE_RIGHT]])
    if np.any(np.asarray(scores)[needed] < min_score):
        return float("nan")
    gap = np.mean(keypoints[INNER_LIP_BOTTOM, 1] - keypoints[INNER_LIP_TOP, 1])
    width = np.linalg.norm(keypoints[MOUTH_CORNER_IMAGE_RIGHT] - keypoints[MOUTH_CORNER_IMAGE_LEFT])
    return float(max(gap, 0.0) / width) if width > 0 else float("nan")
