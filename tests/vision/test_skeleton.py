"""The skeleton renders must be DWPose's drawing, as Moore-AnimateAnyone's pose guider saw it in training.

DWPose's own code is not a dependency, so its behaviour is pinned here by known pixels (colours, sizes, thresholds)
and by a fingerprint of a fixed pose whose render was checked pixel for pixel against DWPose's drawing code
(Moore-AnimateAnyone's src/dwpose, under its pinned numpy 1.23.5 / OpenCV 4.8.1 and under numpy 2.4 / OpenCV 5.0).
"""

import hashlib

import numpy as np
import pytest

# What DWPose draws, written out here on purpose: the tests must not read the constants they check.
from skeleton_colours import HAND_BONE_COLOURS, HAND_JOINT, JOINT_COLOURS, LIMB_COLOURS_DIMMED, WHITE, person

from covog.pipeline.conditioning import PoseRenders
from mit_annotator.core import keypoints as kp
from mit_annotator.core.records import PersonTrack, VideoTracks
from mit_annotator.vision.skeleton import render_person


def colours(render: np.ndarray) -> set[tuple[int, int, int]]:
    """The colours drawn (black is the background)."""
    return {tuple(int(v) for v in c) for c in np.unique(render.reshape(-1, 3), axis=0) if c.any()}


def extent(render: np.ndarray, colour) -> tuple[int, int, int, int]:
    """(first row, last row, first column, last column) of the pixels of one colour."""
    rows, cols = np.nonzero((render == colour).all(axis=-1))
    return int(rows.min()), int(rows.max()), int(cols.min()), int(cols.max())


SHOULDERS = {kp.RIGHT_SHOULDER: (100.5, 100.5), kp.LEFT_SHOULDER: (200.5, 100.5)}  # the right one on image left


def test_shoulders_neck_and_their_limbs():
    render = render_person(*person(SHOULDERS), (320, 240))
    assert render.shape == (240, 320, 3) and render.dtype == np.uint8
    # limbs: OpenPose colours 0 and 1 dimmed to 0.6
    assert tuple(render[100, 125]) == LIMB_COLOURS_DIMMED["neck-right shoulder"]
    assert tuple(render[100, 175]) == LIMB_COLOURS_DIMMED["neck-left shoulder"]
    # joints in full colour: the neck at the shoulders' mean
    assert tuple(render[100, 150]) == JOINT_COLOURS["neck"]
    assert tuple(render[100, 100]) == JOINT_COLOURS["right shoulder"]
    assert tuple(render[100, 200]) == JOINT_COLOURS["left shoulder"]
    assert colours(render) == {LIMB_COLOURS_DIMMED["neck-right shoulder"], LIMB_COLOURS_DIMMED["neck-left shoulder"],
                               JOINT_COLOURS["neck"], JOINT_COLOURS["right shoulder"], JOINT_COLOURS["left shoulder"]}
    # a limb is a filled ellipse 2 x 4 + 1 px across (stick width 4), tapering to its ends
    across = np.nonzero((render[:, 125] == LIMB_COLOURS_DIMMED["neck-right shoulder"]).all(axis=-1))[0]
    assert across.tolist() == list(range(96, 105))
    near_end = np.nonzero(render[:, 106].any(axis=-1))[0]
    assert 0 < len(near_end) < 9
    # joints are discs of radius 4
    assert extent(render, JOINT_COLOURS["neck"]) == (96, 104, 146, 154)
    assert extent(render, JOINT_COLOURS["right shoulder"]) == (96, 104, 96, 104)


def test_neck_needs_both_shoulders():
    points, scores = person(SHOULDERS)
    scores[kp.LEFT_SHOULDER] = 0.25
    render = render_person(points, scores, (320, 240))
    assert colours(render) == {JOINT_COLOURS["right shoulder"]}  # no neck, no limb, no left shoulder
    scores[kp.LEFT_SHOULDER] = 0.9
    points[kp.LEFT_SHOULDER] = (220.5, 140.5)  # the neck moves with the shoulders' mean
    render = render_person(points, scores, (320, 240))
    assert extent(render, JOINT_COLOURS["neck"]) == (116, 124, 156, 164)


def test_limb_dimming_and_order():
    points = {**SHOULDERS, kp.RIGHT_ELBOW: (100.5, 180.5), kp.NOSE: (150.5, 40.5)}
    render = render_person(*person(points), (320, 240))
    assert tuple(render[140, 100]) == LIMB_COLOURS_DIMMED["right shoulder-elbow"]  # limb (2, 3), colour 2
    assert tuple(render[70, 150]) == LIMB_COLOURS_DIMMED["neck-nose"]  # limb (1, 0), colour 12
    assert tuple(render[180, 100]) == JOINT_COLOURS["right elbow"]
    assert tuple(render[40, 150]) == JOINT_COLOURS["nose"]


def test_no_feet_and_no_lone_limbs():
    feet = {kp.LEFT_ANKLE: (200.5, 200.5), kp.RIGHT_ANKLE: (100.5, 200.5), kp.LEFT_BIG_TOE: (215.5, 215.5),
            kp.LEFT_SMALL_TOE: (225.5, 210.5), kp.LEFT_HEEL: (195.5, 212.5), kp.RIGHT_BIG_TOE: (85.5, 215.5),
            kp.RIGHT_SMALL_TOE: (75.5, 210.5), kp.RIGHT_HEEL: (105.5, 212.5)}
    render = render_person(*person(feet), (320, 240))
    assert colours(render) == {JOINT_COLOURS["right ankle"], JOINT_COLOURS["left ankle"]}  # only the ankles' joints
    assert extent(render, JOINT_COLOURS["right ankle"]) == (196, 204, 96, 104)


def test_thresholds_as_dwpose_applies_them():
    points = {kp.NOSE: (60.5, 60.5), kp.FACE.start: (160.5, 60.5)}
    for score, body, face in ((0.9, True, True), (np.float32(0.3), True, True), (0.3, False, True),
                              (0.2999, False, False), (0.0, False, False)):
        xy, scores = person(points)
        scores = scores.astype(np.float64)
        scores[[kp.NOSE, kp.FACE.start]] = score
        render = render_person(xy, scores, (320, 240))
        # body: seen if score > 0.3; hands and face: hidden only if score < 0.3 (float32 0.3 is above 0.3)
        assert tuple(render[60, 60]) == (JOINT_COLOURS["nose"] if body else (0, 0, 0)), score
        assert tuple(render[60, 160]) == (WHITE if face else (0, 0, 0)), score


def test_face_points_are_white_dots():
    face = {kp.FACE.start + k: (40.5 + 20 * k, 50.5) for k in range(68)}
    render = render_person(*person(face), (1400, 100))
    assert colours(render) == {WHITE}
    assert extent(render, WHITE)[:3] == (47, 53, 37)  # radius 3
    assert int((render[:, :50] == WHITE).all(axis=-1).sum()) == 29  # one dot: OpenCV's radius-3 disc


def hand(root: int) -> dict[int, tuple[float, float]]:
    """Wrist at the top, five fingers straight down, 60 px apart, joints 30 px apart."""
    points = {root: (160.5, 20.5)}
    for finger in range(5):
        for k in range(4):
            points[root + 1 + 4 * finger + k] = (40.5 + 60 * finger, 60.5 + 30 * k)
    return points


@pytest.mark.parametrize("root", [kp.LEFT_HAND_ROOT, kp.RIGHT_HAND_ROOT])
def test_hand_bones_and_joints(root):
    render = render_person(*person(hand(root)), (320, 200))
    assert colours(render) == set(HAND_BONE_COLOURS) | {HAND_JOINT}
    for finger in range(5):
        x = 40 + 60 * finger
        for k in range(1, 4):  # the bones inside a finger, between joints
            bone = 4 * finger + k
            assert tuple(render[60 + 30 * k - 15, x]) == HAND_BONE_COLOURS[bone], bone
            # bones are lines of thickness 2 (3 px across when vertical)
            across = np.nonzero(render[60 + 30 * k - 15].any(axis=-1) & (np.abs(np.arange(320) - x) < 10))[0]
            assert across.tolist() == [x - 1, x, x + 1]
        mid = ((160 + x) // 2, (20 + 60) // 2)  # the wrist's bone to this finger
        assert tuple(render[mid[1], mid[0]]) == HAND_BONE_COLOURS[4 * finger]
    assert tuple(render[20, 160]) == HAND_JOINT
    assert extent(render, HAND_JOINT)[0] == 16  # joints are discs of radius 4, drawn over the bones


def test_missing_and_edge_points():
    points = {kp.NOSE: (-2.5, 50.5),  # a body joint left of the canvas: drawn, clipped
              kp.FACE.start: (0.7, 50.5),  # face and hand points in column 0: not drawn (DWPose's `> eps`)
              kp.FACE.start + 1: (40.5, 0.4), kp.FACE.start + 2: (1.2, 100.5),  # column 1: drawn
              kp.LEFT_HAND_ROOT: (-5.0, 150.0), kp.LEFT_HAND_ROOT + 1: (60.5, 150.5),  # its bone: not drawn
              kp.RIGHT_HAND_ROOT: (319.9, 239.9)}  # the last pixel: drawn
    render = render_person(*person(points), (320, 240))
    assert extent(render, JOINT_COLOURS["nose"]) == (47, 53, 0, 2)
    assert not render[45:56, 0:10][:, :, 1].any()  # no white dot at column 0 (a white pixel has green 255)
    assert not render[0:5, 35:46].any()
    assert extent(render, WHITE) == (97, 103, 0, 4)
    assert colours(render) == {JOINT_COLOURS["nose"], WHITE, HAND_JOINT}
    assert extent(render, HAND_JOINT) == (146, 239, 56, 319)
    unseen = render_person(points=np.full((133, 2), 50.0), scores=np.zeros(133), size=(64, 64))
    assert not unseen.any()
    nan = render_person(np.full((133, 2), np.nan), np.ones(133), (64, 64))  # non-finite points draw nothing
    assert not nan.any()


def test_coordinates_go_through_dwpose_normalisation():
    """DWPose divides by the canvas size and multiplies back before truncating: on a 333 px wide canvas,
    21 / 333 * 333 is just under 21, so a point at x = 21.0 lands in column 20, while x = 89.0 stays in column 89
    (89 * (1 / 333) * 333 would not). The neck is the shoulders' mean taken before that round trip (taken after it, a
    neck at x = 26.0 would land in column 25)."""
    points = {kp.FACE.start: (21.0, 100.5), kp.FACE.start + 1: (89.0, 100.5),
              kp.RIGHT_SHOULDER: (10.0, 200.5), kp.LEFT_SHOULDER: (42.0, 200.5)}
    render = render_person(*person(points), (333, 517))
    white_columns = np.nonzero((render[100] == WHITE).all(axis=-1))[0]
    assert white_columns.tolist() == list(range(17, 24)) + list(range(86, 93))  # dots centred on 20 and 89
    assert extent(render, JOINT_COLOURS["neck"]) == (196, 204, 22, 30)  # centred on 26


def test_the_seventeen_limbs():
    points, _ = fixed_pose()
    scores = np.where(np.arange(133) < 17, 0.9, 0.0)  # the whole body seen, nothing else
    body = render_person(points, scores, (320, 256))
    openpose = [(255, 0, 0), (255, 85, 0), (255, 170, 0), (255, 255, 0), (170, 255, 0), (85, 255, 0), (0, 255, 0),
                (0, 255, 85), (0, 255, 170), (0, 255, 255), (0, 170, 255), (0, 85, 255), (0, 0, 255), (85, 0, 255),
                (170, 0, 255), (255, 0, 255), (255, 0, 170), (255, 0, 85)]
    dimmed = {tuple(int(v * 0.6) for v in colour) for colour in openpose}
    # DWPose's limbSeq has 19 pairs but it draws the first 17: no shoulder-ear limbs, no colour 17 limb
    assert colours(body) & dimmed == {tuple(int(v * 0.6) for v in colour) for colour in openpose[:17]}
    assert colours(body) - dimmed == set(openpose)  # and the 18 joints


def test_drawing_order_left_hand_right_hand_face():
    """Where the hands cross, the right hand (drawn second) is on top; the face dots come last, over both."""
    left, right = kp.LEFT_HAND_ROOT, kp.RIGHT_HAND_ROOT
    points = {left: (40.5, 100.5), left + 5: (240.5, 100.5),  # left wrist -> index base: bone 4, horizontal
              right + 1: (140.5, 40.5), right + 2: (140.5, 160.5),  # right thumb's bone 1, vertical
              kp.FACE.start: (140.5, 130.5)}  # a face point on that bone
    render = render_person(*person(points), (320, 200))
    assert tuple(render[100, 140]) == HAND_BONE_COLOURS[1]
    assert tuple(render[100, 120]) == HAND_BONE_COLOURS[4]
    assert tuple(render[130, 140]) == WHITE and tuple(render[120, 140]) == HAND_BONE_COLOURS[1]


def fixed_pose() -> tuple[np.ndarray, np.ndarray]:
    """A whole-body pose with fractional coordinates, some points unseen, inside a 320x256 canvas (away from its
    edges, where OpenCV versions draw clipped thick lines differently)."""
    body = [(160.3, 52.7), (166.1, 47.9), (154.2, 48.4), (173.6, 51.2), (147.9, 50.8), (191.4, 82.3),
            (128.7, 81.6), (204.2, 121.9), (117.3, 124.4), (211.8, 158.1), (103.6, 152.2), (178.5, 160.4),
            (141.9, 161.0), (182.2, 200.7), (138.1, 201.3), (186.6, 236.9), (135.4, 238.2)]
    feet = [(195.0, 241.0), (199.0, 239.0), (183.0, 240.0), (126.0, 242.0), (122.0, 240.0), (138.0, 241.0)]
    face = []
    for k in range(17):  # jaw
        face.append((145.1 + k * 1.93, 50.2 + 0.047 * (k - 8) * (k - 8) * -1 + 12.3))
    for k in range(10):  # brows
        face.append((148.3 + k * 2.61 + (k > 4) * 1.7, 44.9 - 0.31 * min(k % 5, 4 - k % 5)))
    for k in range(9):  # nose
        face.append((160.2 + (k - 6) * 1.3 * (k > 3), 47.1 + min(k, 4) * 1.9))
    for k in range(12):  # eyes
        face.append((150.7 + (k % 6) * 1.41 + (k > 5) * 12.2, 48.3 + 0.6 * ((k % 6) in (1, 2)) - 0.6 * ((k % 6) > 3)))
    for k in range(20):  # lips
        face.append((153.9 + (k % 12) * 1.07 + (k > 11) * 1.3, 58.6 + 0.9 * ((k % 6) - 2.5) / 2.5))
    hands = []
    for wrist, side in ((body[9], 1.0), (body[10], -1.0)):  # left hand (image right), right hand
        root = (wrist[0] + side * 2.7, wrist[1] + 5.9)
        hands.append(root)
        for finger in range(5):
            dx, dy = side * (finger - 1.6) * 0.83, 1.0 - 0.1 * finger
            for k in range(4):
                hands.append((root[0] + dx * 9.3 * (k + 1), root[1] + dy * 8.1 * (k + 1)))
    points = np.asarray(body + feet + face + hands, dtype=np.float32)
    scores = np.asarray([0.35 + (k * 37 % 61) / 100 for k in range(133)], dtype=np.float32)
    scores[[4, 12, 30, 31, 100, 101, 120]] = 0.1  # an ear, a hip, two jaw points, a finger's middle, another's base
    return points, scores


FIXED_POSE_SHA256 = "244cb6a00fb3ceb982cbbb1bf03234dbb37236ee2dc5828e6160cab36531716f"
FIXED_POSE_COLOURS = {  # colour: pixels
    (0, 0, 153): 111, (0, 0, 255): 1936, (0, 25, 255): 24, (0, 51, 153): 229, (0, 85, 255): 49, (0, 102, 153): 217,
    (0, 102, 255): 7, (0, 153, 102): 238, (0, 153, 153): 563, (0, 170, 255): 49, (0, 255, 0): 49, (0, 255, 25): 6,
    (0, 255, 85): 45, (0, 255, 255): 49, (51, 0, 153): 1, (51, 0, 255): 27, (51, 153, 0): 245, (51, 255, 0): 6,
    (85, 0, 255): 49, (85, 255, 0): 49, (102, 153, 0): 275, (128, 0, 255): 24, (128, 255, 0): 6, (153, 0, 0): 203,
    (153, 0, 102): 8, (153, 0, 153): 3, (153, 51, 0): 196, (153, 102, 0): 299, (153, 153, 0): 201, (170, 0, 255): 3,
    (170, 255, 0): 45, (204, 0, 255): 34, (204, 255, 0): 8, (255, 0, 0): 20, (255, 0, 77): 64, (255, 0, 85): 45,
    (255, 0, 153): 64, (255, 0, 230): 64, (255, 0, 255): 1, (255, 77, 0): 47, (255, 85, 0): 49, (255, 153, 0): 42,
    (255, 170, 0): 49, (255, 229, 0): 47, (255, 255, 0): 49, (255, 255, 255): 588,
}


def test_fixed_pose_fingerprint():
    """Checked equal, pixel for pixel, to DWPose's drawing of the same keypoints on the same canvas."""
    render = render_person(*fixed_pose(), (320, 256))
    values, counts = np.unique(render.reshape(-1, 3), axis=0, return_counts=True)
    found = {tuple(int(v) for v in value): int(count) for value, count in zip(values, counts) if value.any()}
    assert found == FIXED_POSE_COLOURS  # colours and how many pixels each: a readable part of the fingerprint
    assert hashlib.sha256(render.tobytes()).hexdigest() == FIXED_POSE_SHA256


def test_scale_and_box_mask():
    points, scores = fixed_pose()
    full = render_person(points, scores, (320, 256))
    assert np.array_equal(render_person(points * 2, scores, (320, 256), scale=(0.5, 0.5)), full)
    box = np.array([150.2, 40.7, 200.6, 130.1], np.float32)
    masked = render_person(points, scores, (320, 256), box=box)
    inside = np.zeros((256, 320), bool)
    inside[40:131, 150:201] = True
    assert np.array_equal(masked[inside], full[inside]) and not masked[~inside].any()
    assert masked.any() and full[~inside].any()
    half = render_person(points * 2, scores, (320, 256), box=box * 2, scale=(0.5, 0.5))
    assert np.array_equal(half, masked)  # the box scales with the keypoints
    off = render_person(points, scores, (320, 256), box=np.array([-50, -50, -10, -10], np.float32))
    assert not off.any()
    unknown = render_person(points, scores, (320, 256), box=np.full(4, np.nan, np.float32))
    assert not unknown.any()


def test_pose_renders_draw_each_person_masked_and_scaled():
    points, scores = fixed_pose()
    boxes = np.array([[100, 30, 230, 250], [140, 40, 185, 120]], np.float32)
    tracks = VideoTracks(640, 512, 25.0, 3, [
        PersonTrack(0, np.array([0, 2]), boxes[[0, 0]], (points * 2)[None].repeat(2, 0), scores[None].repeat(2, 0)),
        PersonTrack(1, np.array([1, 2]), boxes[[1, 1]], (points * 2)[None].repeat(2, 0), scores[None].repeat(2, 0)),
    ], shots=[(0, 3)])
    tracks.tracks[0].boxes *= 2
    tracks.tracks[1].boxes *= 2
    renders = PoseRenders(tracks, (320, 256))[0:3]
    assert renders.shape == (3, 2, 3, 256, 320)
    expected = [render_person(points, scores, (320, 256), box=boxes[p]) for p in range(2)]
    for frame, person_index in ((0, 0), (2, 0), (1, 1), (2, 1)):
        assert np.array_equal(renders[frame, person_index].permute(1, 2, 0).numpy(), expected[person_index])
    assert not renders[1, 0].any() and not renders[0, 1].any()  # not seen in that frame
