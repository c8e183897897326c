import numpy as np
import pytest

from mit_annotator.core import keypoints as kp
from mit_annotator.core.documents import FormatError
from mit_annotator.core.pose_formats import (
    person_from_openpose,
    person_to_openpose,
    tracks_from_mit_pose,
    tracks_from_pose_keypoint,
    tracks_to_mit_pose,
    tracks_to_pose_keypoint,
)
from mit_annotator.core.records import PersonTrack, VideoTracks


def labelled_person():
    """Keypoint i sits at (i + 1, 1000 + i): every point says which index it came from."""
    points = np.stack([np.arange(133) + 1.0, 1000.0 + np.arange(133)], axis=1).astype(np.float32)
    return points, np.full(133, 0.9, dtype=np.float32)


def xy(flat, i):
    return flat[3 * i], flat[3 * i + 1], flat[3 * i + 2]


def test_pose_keypoint_index_mapping_on_known_points():
    points, scores = labelled_person()
    person = person_to_openpose(points, scores)
    body, face = person["pose_keypoints_2d"], person["face_keypoints_2d"]
    left, right = person["hand_left_keypoints_2d"], person["hand_right_keypoints_2d"]
    assert (len(body), len(face), len(left), len(right)) == (54, 210, 63, 63)
    assert xy(body, 0) == (1.0, 1000.0, 1.0)  # nose
    assert xy(body, 1) == pytest.approx(((6 + 7) / 2, 1005.5, 1.0))  # neck: mean of the shoulders 5 and 6
    assert xy(body, 4)[:2] == (11.0, 1010.0)  # OpenPose right wrist = COCO 10
    assert xy(body, 7)[:2] == (10.0, 1009.0)  # OpenPose left wrist = COCO 9
    assert xy(body, 14)[:2] == (3.0, 1002.0) and xy(body, 15)[:2] == (2.0, 1001.0)  # right eye 2, left eye 1
    assert xy(face, 48)[:2] == (72.0, 1071.0) and xy(face, 54)[:2] == (78.0, 1077.0)  # lip corners 71, 77
    assert xy(face, 68)[:2] == (3.0, 1002.0) and xy(face, 69)[:2] == (2.0, 1001.0)  # padded with the eyes
    assert xy(left, 0)[:2] == (92.0, 1091.0)  # left hand root = 91
    assert xy(right, 0)[:2] == (113.0, 1112.0)  # right hand root = 112
    assert xy(right, 20)[:2] == (133.0, 1132.0)


def test_pose_keypoint_round_trip_keeps_every_point_but_the_feet():
    points, scores = labelled_person()
    back_points, back_scores = person_from_openpose(person_to_openpose(points, scores, binarize=False))
    not_feet = np.setdiff1d(np.arange(133), np.arange(17, 23))
    np.testing.assert_allclose(back_points[not_feet], points[not_feet])
    np.testing.assert_allclose(back_scores[not_feet], scores[not_feet])
    assert (back_scores[kp.FEET] == 0).all()


def test_points_under_the_threshold_are_dropped_like_controlnet_aux():
    points, scores = labelled_person()
    scores[kp.LEFT_WRIST] = 0.2
    scores[kp.FACE] = 0.1
    scores[kp.RIGHT_SHOULDER] = 0.3  # kept itself (>= 0.3), but the neck needs both shoulders above 0.3
    person = person_to_openpose(points, scores)
    assert xy(person["pose_keypoints_2d"], 7) == (0.0, 0.0, 0.0)
    assert xy(person["pose_keypoints_2d"], 2)[2] == 1.0
    assert xy(person["pose_keypoints_2d"], 1) == (0.0, 0.0, 0.0)
    assert person["face_keypoints_2d"] is None


def tracks_with_two_people():
    points, scores = labelled_person()
    return VideoTracks(1920, 1080, 25.0, 3, [
        PersonTrack(7, [0, 1, 2], np.tile([0, 0, 100, 200], (3, 1)), np.stack([points] * 3), np.stack([scores] * 3)),
        PersonTrack(2, [1, 2], np.tile([5, 5, 50, 50], (2, 1)), np.stack([points + 500] * 2), np.stack([scores] * 2)),
    ])


def test_tracks_to_pose_keypoint_and_back_keeps_identity():
    tracks = tracks_with_two_people()
    frames = tracks_to_pose_keypoint(tracks)
    assert len(frames) == 3 and frames[0]["canvas_width"] == 1920 and frames[0]["canvas_height"] == 1080
    assert [p["mit_track_id"] for p in frames[1]["people"]] == [7, 2]
    back = tracks_from_pose_keypoint(frames, fps=25.0)
    assert sorted(t.track_id for t in back.tracks) == [2, 7]
    np.testing.assert_array_equal(back.track(2).frames, [1, 2])
    np.testing.assert_allclose(back.track(2).keypoints[0, kp.NOSE], [501.0, 1500.0])
    assert not np.isnan(back.track(7).face_boxes).any()


def test_pose_keypoint_without_ids_uses_list_position_and_scales_normalised_input():
    points, scores = labelled_person()
    person = person_to_openpose(points / 2000.0, scores)  # all coordinates in 0..1
    frames = [{"people": [person], "canvas_width": 2000, "canvas_height": 1000}] * 2
    tracks = tracks_from_pose_keypoint(frames, fps=30.0)
    assert [t.track_id for t in tracks.tracks] == [0] and tracks.fps == 30.0
    np.testing.assert_allclose(tracks.tracks[0].keypoints[0, kp.NOSE], [1.0, 500.0], rtol=1e-5)


@pytest.mark.parametrize("frames, message", [
    ([], "non-empty list"),
    ([{"people": []}], "canvas_width"),
    ([{"people": [{"pose_keypoints_2d": [0.0] * 50}], "canvas_width": 10, "canvas_height": 10}],
     "pose_keypoints_2d must hold 54 numbers"),
    ([{"people": [{"pose_keypoints_2d": [0.0] * 54, "face_keypoints_2d": [0.0] * 30}], "canvas_width": 10,
       "canvas_height": 10}], "frame 0, person 0: face_keypoints_2d must hold 204 or 210"),
    ([{"people": [], "canvas_width": 10, "canvas_height": 10}, {"people": [], "canvas_width": 20,
                                                                 "canvas_height": 10}], "canvas size"),
])
def test_bad_pose_keypoint_input(frames, message):
    with pytest.raises(FormatError, match=message):
        tracks_from_pose_keypoint(frames, fps=25.0)


def test_mit_pose_json_round_trip():
    tracks = tracks_with_two_people()
    documents = tracks_to_mit_pose(tracks)
    first = documents[1]["instance_info"][0]
    assert len(first["keypoints"]) == 133 and len(first["keypoints"][0]) == 2
    assert len(first["keypoint_scores"]) == 133 and first["bbox"] == [[0.0, 0.0, 100.0, 200.0]]
    back = tracks_from_mit_pose(documents, 1920, 1080, 25.0)
    for track in tracks.tracks:
        again = back.track(track.track_id)
        np.testing.assert_array_equal(again.frames, track.frames)
        np.testing.assert_allclose(again.keypoints, track.keypoints, atol=0.01)
        np.testing.assert_allclose(again.boxes, track.boxes)


def test_bad_mit_pose_input():
    with pytest.raises(FormatError, match="frame 0: no 'instance_info'"):
        tracks_from_mit_pose([{}], 10, 10, 25.0)
    short = {"instance_info": [{"keypoints": [[0, 0]] * 132, "keypoint_scores": [1.0] * 132}]}
    with pytest.raises(FormatError, match="frame 0, person 0: expected 133"):
        tracks_from_mit_pose([short], 10, 10, 25.0)


def test_face_box_follows_the_paper_rule():
    points = np.zeros((133, 2), dtype=np.float32)
    scores = np.zeros(133, dtype=np.float32)
    points[kp.JAW] = np.stack([np.linspace(100, 200, 17), np.full(17, 300.0)], axis=1)
    points[kp.NOSE_POINTS] = np.stack([np.full(9, 150.0), np.linspace(250, 290, 9)], axis=1)
    scores[kp.FACE_BOX_POINTS] = 1.0
    box = kp.face_box_from_keypoints(points, scores)
    # jaw + nose span x 100..200 (centre 150, half 50) and y 250..300 (centre 275, half 25)
    np.testing.assert_allclose(box, [150 - 70, 275 - 40, 150 + 70, 275 + 40])
    scores[:] = 0
    assert np.isnan(kp.face_box_from_keypoints(points, scores)).all()
