"""What export writes for the skeletons (pose/*.json and pose_frame/*.png), checked by content: the PNGs' pixel
colours in RGB order as the published DWPose renders, on a portrait frame, with people who come and go and ids that
are not list positions."""

import json

import cv2
import numpy as np
from skeleton_colours import JOINT_COLOURS, LIMB_COLOURS_DIMMED, person

from mit_annotator.core import keypoints as kp
from mit_annotator.core.records import PersonTrack, VideoTracks
from mit_annotator.dataset.export import write_poses
from mit_annotator.dataset.layout import POSE_DIR, POSE_FRAME_DIR

WIDTH, HEIGHT = 240, 320  # portrait


def shoulders_at(x: float, y: float):
    return person({kp.RIGHT_SHOULDER: (x - 40.5, y), kp.LEFT_SHOULDER: (x + 40.5, y)})


def tracks():
    """Person 7 on all three frames (shoulders at y 60.5), person 3 on frames 1-2 only (y 250.5), and person 5, whose
    pose was never estimated (no keypoints), on frame 0."""
    upper, lower = shoulders_at(120.5, 60.5), shoulders_at(120.5, 250.5)
    box = np.array([[60, 20, 180, 160]], np.float32)
    seven = PersonTrack(7, np.arange(3), np.repeat(box, 3, 0), np.repeat(upper[0][None], 3, 0),
                        np.repeat(upper[1][None], 3, 0))
    three = PersonTrack(3, np.array([1, 2]), np.repeat(box + [0, 190, 0, 190], 2, 0), np.repeat(lower[0][None], 2, 0),
                        np.repeat(lower[1][None], 2, 0))
    five = PersonTrack(5, np.array([0]), box)
    return VideoTracks(WIDTH, HEIGHT, 25.0, 3, [seven, three, five], [(0, 3)])


def read_rgb(path):
    return cv2.imread(str(path), cv2.IMREAD_UNCHANGED)[..., ::-1]  # OpenCV reads PNGs as BGR


def test_pose_frames_are_the_skeletons_in_rgb_on_black(tmp_path):
    write_poses(tmp_path, tracks())
    pngs = sorted((tmp_path / POSE_FRAME_DIR).iterdir())
    assert [p.name for p in pngs] == ["output_0001.png", "output_0002.png", "output_0003.png"]
    for index, path in enumerate(pngs):
        image = read_rgb(path)
        assert image.shape == (HEIGHT, WIDTH, 3)
        for y, present in ((60, True), (250, index >= 1)):  # the upper person always, the lower from frame 1
            neck = tuple(image[y, 120])
            limb_right, limb_left = tuple(image[y, 100]), tuple(image[y, 140])
            if present:
                assert neck == JOINT_COLOURS["neck"], (index, y)
                assert limb_right == LIMB_COLOURS_DIMMED["neck-right shoulder"], (index, y)
                assert limb_left == LIMB_COLOURS_DIMMED["neck-left shoulder"], (index, y)
                assert tuple(image[y, 80]) == JOINT_COLOURS["right shoulder"]
            else:
                assert neck == limb_right == limb_left == (0, 0, 0), (index, y)
        assert not image[120:200].any()  # nothing between the two people; person 5 has no skeleton to draw


def test_pose_documents_list_who_is_on_each_frame_by_track_id(tmp_path):
    write_poses(tmp_path, tracks())
    documents = [json.loads(p.read_text()) for p in sorted((tmp_path / POSE_DIR).iterdir())]
    assert [[i["track_id"] for i in d["instance_info"]] for d in documents] == [[7, 5], [7, 3], [7, 3]]
    seven, five = documents[0]["instance_info"]
    assert seven["keypoints"][kp.LEFT_SHOULDER] == [161.0, 60.5] and seven["keypoint_scores"][kp.LEFT_SHOULDER] == 0.9
    assert seven["bbox"] == [[60.0, 20.0, 180.0, 160.0]]
    assert len(five["keypoints"]) == 133 and not any(five["keypoint_scores"])  # not estimated: all unseen
    lower = documents[2]["instance_info"][1]
    assert lower["keypoints"][kp.RIGHT_SHOULDER] == [80.0, 250.5] and lower["bbox"] == [[60.0, 210.0, 180.0, 350.0]]
