"""The mouth per person per frame (opening from keypoints, motion from landmarks), its activity, and the audio's
loudness per frame: values by hand. Fast: these carry the mutation check of mit_annotator/speakers/lips.py."""

import numpy as np
import pytest

from mit_annotator.core import keypoints as kp
from mit_annotator.core.records import PersonTrack
from mit_annotator.speakers.lips import (
    ACTIVITY_WINDOW_S,
    MouthMotion,
    activity_from_motion,
    activity_from_openings,
    loudness,
    mouth_motion,
    mouth_openings,
)


def face_with_gap(gap: float, width: float = 20.0, seen: float = 0.9) -> tuple[np.ndarray, np.ndarray]:
    points = np.zeros((kp.NUM_KEYPOINTS, 2), np.float32)
    scores = np.full(kp.NUM_KEYPOINTS, seen, np.float32)
    points[kp.MOUTH_CORNER_IMAGE_LEFT] = (100, 50)
    points[kp.MOUTH_CORNER_IMAGE_RIGHT] = (100 + width, 50)
    points[kp.INNER_LIP_TOP] = [(105, 50 - gap / 2), (110, 50 - gap / 2), (115, 50 - gap / 2)]
    points[kp.INNER_LIP_BOTTOM] = [(105, 50 + gap / 2), (110, 50 + gap / 2), (115, 50 + gap / 2)]
    return points, scores


def test_mouth_openings_per_frame():
    gaps = [0.0, 2.0, 4.0, 6.0]
    faces = [face_with_gap(g) for g in gaps]
    faces[2][1][kp.INNER_LIP_TOP[1]] = 0.1  # one lip point not seen in frame 5
    track = PersonTrack(0, [1, 2, 5, 6], np.tile([80, 20, 140, 120], (4, 1)), np.stack([f[0] for f in faces]),
                        np.stack([f[1] for f in faces]))
    openings = mouth_openings(track, 8)
    np.testing.assert_allclose(openings[[1, 2, 6]], [0.0, 0.1, 0.3], atol=1e-6)  # gap / mouth width
    assert np.isnan(openings[[0, 3, 4, 5, 7]]).all()
    assert np.isnan(mouth_openings(PersonTrack(1, [0], [[0, 0, 1, 1]]), 3)).all()  # no keypoints


def test_activity_is_the_local_variation_of_the_opening():
    window = max(3, int(round(ACTIVITY_WINDOW_S * 25)))
    assert window == 8
    still = np.full(40, 0.3)
    np.testing.assert_allclose(activity_from_openings(still, 25.0), 0.0, atol=1e-6)  # a held-open mouth
    talking = np.tile([0.0, 0.4], 20)
    np.testing.assert_allclose(activity_from_openings(talking, 25.0)[8:32], 0.2, atol=1e-6)  # std of 0 / 0.4
    step = np.r_[np.zeros(20), np.full(20, 1.0)]
    activity = activity_from_openings(step, 25.0)
    assert activity[:15].max() < 1e-6 and activity[20] == pytest.approx(0.5, abs=1e-6)  # frames 16..23: 4 and 4
    assert activity[19] == pytest.approx(np.sqrt(3 / 8 * 5 / 8), abs=1e-6)  # frames 15..22: 5 zeros, 3 ones
    hidden = talking.copy()
    hidden[10:14] = np.nan
    out = activity_from_openings(hidden, 25.0)
    assert np.isnan(out[10:14]).all() and np.isfinite(out[:10]).all() and out[20] == pytest.approx(0.2, abs=1e-6)
    window = hidden[11:19]  # frame 15's window (15-4 .. 15+3) holds 3 unseen frames: the 5 seen ones count
    assert out[15] == pytest.approx(np.nanstd(window), abs=1e-6) and np.nanstd(window) != pytest.approx(0.2)
    edge = np.r_[0.0, 0.0, 0.0, 0.0, 0.0, 0.4, 0.0, 0.4]  # frame 0's window: the first value repeated before it
    assert activity_from_openings(np.tile([0.0, 0.4], 20), 25.0)[0] == pytest.approx(np.std(edge), abs=1e-6)
    slow = activity_from_openings(np.r_[np.zeros(5), np.ones(5)], 5.0)  # 0.32 s at 5 fps: the 3-frame minimum
    assert slow[4] == pytest.approx(np.std([0, 0, 1]), abs=1e-6) and slow[2] == pytest.approx(0.0)


def test_activity_from_motion_is_its_local_mean():
    motion = np.r_[np.zeros(16), np.full(16, 4.0)]
    motion[3] = np.nan
    activity = activity_from_motion(motion, 25.0)
    assert np.isnan(activity[3]) and activity[0] == pytest.approx(0.0) and activity[31] == pytest.approx(4.0)
    assert activity[16] == pytest.approx(2.0)  # half the window on each side of the step
    assert activity.dtype == np.float32
    ramp = activity_from_motion(np.arange(16.0), 25.0)
    assert ramp[0] == pytest.approx(np.mean([0, 0, 0, 0, 0, 1, 2, 3]))  # the first value repeated before the start
    assert activity_from_motion(np.r_[np.zeros(5), np.ones(5)], 5.0)[4] == pytest.approx(1 / 3)  # 3-frame minimum


def test_mouth_motion_inside_the_box_around_the_mouth_corners():
    # landmarks: eyes, nose, then the mouth corners (YuNet's order); mouth 40 px wide centred at (100, 120)
    landmarks = np.array([[85, 80], [115, 80], [100, 100], [80, 120], [120, 120]], np.float32)
    frames = [np.zeros((200, 240, 3), np.uint8) for _ in range(4)]
    frames[1][115:130, 90:110] = 90  # inside the mouth box: x 70..130, y 106..144
    frames[2][115:130, 90:110] = 90
    frames[3][0:40, 0:40] = 255  # outside it
    frames[3][104:106, 60:140] = 200  # just above and beside it
    frames[3][144:146, 70:130] = 200  # just below it
    track = PersonTrack(0, [0, 1, 2, 3], np.tile([50, 40, 150, 160], (4, 1)), face_landmarks=np.stack([landmarks] * 4))
    other = PersonTrack(1, [1], [[0, 0, 10, 10]], face_landmarks=np.full((1, 5, 2), np.nan))
    motion = mouth_motion(frames, [track, other], 5)
    box_area = (130 - 70) * (144 - 106)
    expected_1 = 90 * 15 * 20 / box_area  # grey of (90, 90, 90) is 90
    np.testing.assert_allclose(motion[0][[1, 2, 3]], [expected_1, 0.0, expected_1], rtol=1e-5)
    assert np.isnan(motion[0][[0, 4]]).all() and np.isnan(motion[1]).all()
    fed = MouthMotion([track], 5)
    for index, frame in enumerate(frames):
        fed.add(index, frame)
    np.testing.assert_allclose(fed.values[0], motion[0], equal_nan=True)


@pytest.mark.parametrize("gap, measured", [(1.0, False), (2.0, True)])
def test_mouth_corners_closer_than_2_px_give_no_mouth(gap, measured):
    landmarks = np.array([[85, 80], [115, 80], [100, 100], [100, 120], [100 + gap, 120]], np.float32)
    track = PersonTrack(0, [0, 1], np.tile([50, 40, 150, 160], (2, 1)), face_landmarks=np.stack([landmarks] * 2))
    frames = [np.zeros((200, 240, 3), np.uint8), np.full((200, 240, 3), 50, np.uint8)]
    assert np.isfinite(mouth_motion(frames, [track], 2)[0][1]) == measured


def test_the_mouth_box_stays_inside_the_frame():
    rows, columns = np.mgrid[0:40, 0:60]  # a frame 60 wide, 40 high, brighter to the right and down
    gradient = np.repeat((2 * columns + 3 * rows).astype(np.uint8)[..., None], 3, axis=2)
    frames = [np.zeros_like(gradient), gradient]
    corners = {"left": [[-10, 20], [30, 20]], "bottom": [[20, 35], [40, 35]], "outside": [[80, 20], [100, 20]]}
    expected = {"left": np.mean(gradient[6:40, 0:40, 0]), "bottom": np.mean(gradient[28:40, 15:45, 0]),
                "outside": np.nan}  # boxes: x 0.75 mouth widths each side, y 0.35 above to 0.6 below, cut at the edges
    for name, mouth in corners.items():
        landmarks = np.array([[5, 5], [15, 5], [10, 10], *mouth], np.float32)
        track = PersonTrack(0, [0, 1], [[0, 0, 40, 40]] * 2, face_landmarks=np.stack([landmarks] * 2))
        np.testing.assert_allclose(mouth_motion(frames, [track], 2)[0][1], expected[name], rtol=1e-5, err_msg=name)


def test_loudness_per_frame():
    rate, fps = 16000, 25.0
    samples = np.r_[np.full(640, 0.5), np.zeros(640), np.full(320, 0.1)].astype(np.float32)
    values = loudness(samples, rate, fps, 4)
    assert values[0] == pytest.approx(20 * np.log10(0.5), abs=1e-3)  # RMS of a constant 0.5
    assert values[1] == pytest.approx(-100.0, abs=1e-3)  # silence: the floor
    assert np.isnan(values[2:]).all()  # the last half frame is not a whole frame; the fourth has no audio
    sine = np.sin(2 * np.pi * 440 * np.arange(640) / rate)
    assert loudness(sine, rate, fps, 1)[0] == pytest.approx(20 * np.log10(np.sqrt(0.5)), abs=0.05)
