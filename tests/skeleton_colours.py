"""The colours DWPose draws skeletons in (what the skeleton renders must show), and a person of given keypoints;
shared by the skeleton and export tests."""

import numpy as np

LIMB_COLOURS_DIMMED = {  # limb k is drawn in OpenPose colour k, then the canvas is multiplied by 0.6 and truncated
    "neck-right shoulder": (153, 0, 0), "neck-left shoulder": (153, 51, 0), "right shoulder-elbow": (153, 102, 0),
    "neck-nose": (0, 0, 153),
}
JOINT_COLOURS = {"nose": (255, 0, 0), "neck": (255, 85, 0), "right shoulder": (255, 170, 0),
                 "left shoulder": (85, 255, 0), "right elbow": (255, 255, 0), "right ankle": (0, 170, 255),
                 "left ankle": (85, 0, 255)}
HAND_BONE_COLOURS = [  # matplotlib hsv_to_rgb(k / 20, 1, 1) * 255 as OpenCV rounds it
    (255, 0, 0), (255, 77, 0), (255, 153, 0), (255, 229, 0), (204, 255, 0), (128, 255, 0), (51, 255, 0),
    (0, 255, 25), (0, 255, 102), (0, 255, 179), (0, 255, 255), (0, 178, 255), (0, 102, 255), (0, 25, 255),
    (51, 0, 255), (128, 0, 255), (204, 0, 255), (255, 0, 230), (255, 0, 153), (255, 0, 77)]
HAND_JOINT = (0, 0, 255)  # blue in the RGB images Moore's guider read
WHITE = (255, 255, 255)


def person(points: dict[int, tuple[float, float]], score: float = 0.9) -> tuple[np.ndarray, np.ndarray]:
    """133 keypoints, all unseen except `points` (COCO-WholeBody index -> x, y), seen with `score`."""
    xy, scores = np.zeros((133, 2), np.float32), np.zeros(133, np.float32)
    for index, point in points.items():
        xy[index], scores[index] = point, score
    return xy, scores
