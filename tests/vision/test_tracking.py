import numpy as np
import pytest

from mit_annotator.core import keypoints as kp
from mit_annotator.core.records import Detection
from mit_annotator.vision.metrics import score_tracking
from mit_annotator.vision.tracking import (
    TrackerConfig,
    appearance_descriptor,
    box_iou,
    keypoint_similarity,
    track_people,
)


def detections_from_truth(conversation, rng, box_noise=0.0, point_noise=0.0, drop=0.0, gaps=(), clutter=0):
    """Per-frame detections made from the ground truth: jittered, with dropped frames and random clutter."""
    tracks = conversation.tracks
    frames = []
    for frame in range(tracks.num_frames):
        found = []
        for track, row in tracks.people_at(frame):
            gone = any(track.track_id == person and start <= frame < end for person, start, end in gaps)
            if gone or rng.random() < drop:
                continue
            box = track.boxes[row] + rng.normal(0, box_noise, 4)
            points = track.keypoints[row] + rng.normal(0, point_noise, (kp.NUM_KEYPOINTS, 2))
            found.append(Detection(frame, box, 0.9, points, track.keypoint_scores[row]))
        for _ in range(clutter):
            x, y = rng.uniform(0, tracks.width - 20), rng.uniform(0, tracks.height - 20)
            found.append(Detection(frame, [x, y, x + 15, y + 15], 0.4))
        rng.shuffle(found)
        frames.append(found)
    return frames


def test_clean_detections_give_one_track_per_person(small_conversation):
    c = small_conversation
    tracks = track_people(detections_from_truth(c, np.random.default_rng(0)))
    score = score_tracking(tracks, c.tracks.tracks, c.tracks.num_frames)
    assert len(tracks) == c.spec.num_people
    assert score.id_switches == 0 and score.misses == 0 and score.false_positives == 0 and score.mota == 1.0


def test_noise_jitter_and_dropped_frames(small_conversation):
    c = small_conversation
    rng = np.random.default_rng(1)
    gaps = [(0, 40, 48), (2, 100, 110)]  # two people unseen for 8 and 10 frames: bridged
    noisy = detections_from_truth(c, rng, box_noise=3.0, point_noise=2.0, drop=0.1, gaps=gaps, clutter=2)
    tracks = track_people(noisy)
    score = score_tracking(tracks, c.tracks.tracks, c.tracks.num_frames)
    print(f"MOTA {score.mota:.3f}: {score}")
    assert score.id_switches == 0
    assert score.false_positives == 0  # clutter never lasts min_length frames as one track
    assert len(tracks) == c.spec.num_people
    assert score.mota > 0.85
    assert sorted(t.track_id for t in tracks) == [0, 1, 2]  # clutter tracks were dropped without leaving gaps


def test_tracks_end_at_shot_cuts(small_conversation):
    c = small_conversation
    cut = c.tracks.num_frames // 2
    tracks = track_people(detections_from_truth(c, np.random.default_rng(2)), shots=[(0, cut), (cut, c.tracks.num_frames)])
    assert len(tracks) == 2 * c.spec.num_people
    for track in tracks:
        assert track.frames[-1] < cut or track.frames[0] >= cut
        assert track.shot == (0 if track.frames[0] < cut else 1)
    assert len({t.track_id for t in tracks}) == len(tracks)


def test_a_long_occlusion_is_bridged_only_with_reidentification(small_conversation):
    c = small_conversation
    frames = [c.render_frame(k) for k in range(c.tracks.num_frames)]
    gaps = [(1, 60, 110)]  # 50 frames: longer than max_missing
    found = detections_from_truth(c, np.random.default_rng(3), gaps=gaps)
    looks = [[appearance_descriptor(frames[k], d.box) for d in found[k]] for k in range(len(found))]
    plain = track_people(found)
    assert len(plain) == c.spec.num_people + 1  # the person came back under a new id
    revived = track_people(found, config=TrackerConfig(reid=True), appearances=looks)
    assert len(revived) == c.spec.num_people
    score = score_tracking(revived, c.tracks.tracks, c.tracks.num_frames)
    assert score.id_switches == 0


def test_edge_cases():
    assert track_people([]) == []
    assert track_people([[] for _ in range(10)]) == []
    one = [[Detection(0, [0, 0, 10, 10], 0.9)]]
    assert len(track_people(one, config=TrackerConfig(min_length=1))) == 1
    crowd = [[Detection(f, [60 * i, 0, 60 * i + 50, 100], 0.9) for i in range(6)] for f in range(20)]
    tracks = track_people(crowd)
    assert len(tracks) == 6 and all(len(t) == 20 for t in tracks)


def test_bad_shots_are_clipped_to_the_frames():
    found = [[Detection(f, [0, 0, 10, 10], 0.9)] for f in range(8)]
    tracks = track_people(found, shots=[(0, 100)])
    assert len(tracks) == 1 and tracks[0].frames[-1] == 7
    with pytest.raises(ValueError):
        Detection(0, [0, 0, 10], 0.9)


def test_short_gaps_are_interpolated_and_long_ones_are_not():
    def seen(frame, x):
        points = np.full((133, 2), x, np.float32)
        scores = np.where(np.arange(133) < 10, 0.9, 0.1).astype(np.float32)
        return [Detection(frame, [x, 0, x + 50, 100], 0.9, points, scores)]

    frames = [seen(f, 2.0 * f) if f < 10 or f >= 14 else [] for f in range(20)]
    track = track_people(frames)[0]
    np.testing.assert_array_equal(track.frames, np.arange(20))
    np.testing.assert_allclose(track.boxes[10:14, 0], [20, 22, 24, 26])  # on the line through the two ends
    np.testing.assert_allclose(track.keypoints[12, 0], [24, 24])
    assert (track.keypoint_scores[12, :10] == np.float32(0.9)).all() and (track.keypoint_scores[12, 10:] < 0.3).all()
    raw = track_people(frames, config=TrackerConfig(fill_gaps=False))[0]
    assert len(raw) == 16
    far = [seen(f, 1.0) if f < 10 or f >= 50 else [] for f in range(60)]
    bridged = track_people(far, config=TrackerConfig(max_missing=45))[0]
    assert len(bridged) == 60  # a 40-frame gap is filled when max_missing allows it ...
    assert len(track_people(far, config=TrackerConfig(max_missing=45, fill_gaps=False))[0]) == 20


# Adversarial scenes built detection by detection: each person has their own skeleton (a fixed random layout of the
# 17 body keypoints inside their box), so keypoint similarity (OKS) can tell people apart where their boxes cannot.

def skeleton(seed):
    """A person's body layout: 17 points as fractions of the box, the other 116 unseen."""
    layout = np.full((kp.NUM_KEYPOINTS, 2), 0.5, np.float32)
    layout[:17] = np.random.default_rng(seed).uniform(0.05, 0.95, (17, 2))
    scores = np.where(np.arange(kp.NUM_KEYPOINTS) < 17, 0.9, 0.05).astype(np.float32)
    return layout, scores


def person(frame, x, y, layout, width=100.0, height=200.0):
    box = np.array([x, y, x + width, y + height], np.float32)
    points = np.array([x, y], np.float32) + layout[0] * np.array([width, height], np.float32)
    return Detection(frame, box, 0.9, points, layout[1])


def who_is_where(tracks, frame):
    """Track id -> the left edge of its box in `frame`."""
    return {t.track_id: float(t.boxes[t.row_of(frame)][0]) for t in tracks if t.row_of(frame) is not None}


def test_keypoints_keep_identities_apart_while_boxes_overlap():
    """Two people walk up to each other, stand overlapping (box IoU > 0.5) for 10 frames while the detector's boxes
    jitter, and walk back where they came from. Boxes alone (even the predicted ones, which carry each person on
    past the turn) say they swapped; their skeletons say they did not."""
    a, b = skeleton(1), skeleton(2)

    def gap(frame):  # horizontal distance between the two left edges: 200 -> 10 -> 200
        return 200.0 - 19.0 * min(frame, 10) if frame < 20 else 10.0 + 19.0 * min(frame - 20, 10)

    jitter = np.random.default_rng(0).normal(0, 4.0, (31, 2))
    frames, overlapping = [], 0
    for f in range(31):
        xa, xb = 300.0 - gap(f) / 2 + jitter[f, 0], 300.0 + gap(f) / 2 + jitter[f, 1]
        found = [person(f, xb, 50, b), person(f, xa, 50, a)]
        overlapping += box_iou(found[0].box, found[1].box) > 0.5
        frames.append(found)
    assert overlapping >= 10
    tracks = track_people(frames)
    assert len(tracks) == 2
    for t in tracks:  # every frame's box is the one with that track's own skeleton
        assert len(t) == 31
        first = t.keypoints[0] - t.boxes[0, :2]
        for row in range(31):
            np.testing.assert_allclose(t.keypoints[row] - t.boxes[row, :2], first, atol=1e-3)
    left, right = sorted(tracks, key=lambda t: t.boxes[0, 0])
    assert left.boxes[-1, 0] < right.boxes[-1, 0]  # the one who came from the left went back to the left


def test_a_fast_mover_hidden_for_three_frames_keeps_their_id():
    """A person crossing the frame at 20 px a frame is hidden for 3 frames (behind a pillar, a missed detection):
    where they reappear, 80 px on, their last box hardly overlaps them; the box predicted from their motion does."""
    mover, sitter = skeleton(3), skeleton(4)
    frames = []
    for f in range(30):
        found = [person(f, 600.0, 100, sitter)]
        if not 12 <= f < 15:
            found.append(person(f, 20.0 * f, 40, mover))
        frames.append(found)
    tracks = track_people(frames)
    assert len(tracks) == 2  # no new id for the mover after the gap
    moving = next(t for t in tracks if t.boxes[0, 0] < 500)
    np.testing.assert_array_equal(moving.frames, np.arange(30))  # the gap is bridged (and filled)
    np.testing.assert_allclose(moving.boxes[12:15, 0], [240, 260, 280])


def test_ids_follow_first_appearance_not_detection_order():
    """People appear one after another but the detector lists them in another order every frame; the first one
    leaves early (lost before the shot ends); a short false detection comes and goes. Ids are 0, 1, 2 in order of
    first appearance with no gap."""
    layouts = [skeleton(10), skeleton(11), skeleton(12)]
    starts, ends = [0, 6, 12], [30, 90, 90]
    x = [50.0, 300.0, 550.0]
    frames = []
    for f in range(90):
        found = [person(f, x[p], 60, layouts[p]) for p in (2, 1, 0) if starts[p] <= f < ends[p]]  # newest first
        if 2 <= f < 4:
            found.insert(0, Detection(f, [800, 10, 830, 40], 0.4))  # clutter: never confirmed
        frames.append(found)
    tracks = track_people(frames)
    assert [t.track_id for t in tracks] == [0, 1, 2]
    assert {t.track_id: int(t.frames[0]) for t in tracks} == {0: 0, 1: 6, 2: 12}
    assert {t.track_id: float(t.boxes[0, 0]) for t in tracks} == {0: 50.0, 1: 300.0, 2: 550.0}
    assert [len(t) for t in tracks] == [30, 84, 78]


def test_the_appearance_descriptor_reads_the_clothes_in_the_middle_of_the_box():
    """The middle of the box (20-80% across, 25-75% down: the clothes) holds four colours in equal parts, the rest of
    the box is green, the frame blue: the descriptor is a quarter in each of the four colours' bins."""
    frame = np.zeros((300, 320, 3), np.uint8)
    frame[:] = (0, 0, 255)
    frame[40:240, 100:200] = (0, 255, 0)
    # the clothes in four dark, saturated colours (saturation 255, value 128): red, yellow, cyan, magenta
    frame[90:140, 120:150], frame[90:140, 150:180] = (128, 0, 0), (128, 128, 0)
    frame[140:190, 120:150], frame[140:190, 150:180] = (0, 128, 128), (128, 0, 128)
    descriptor = appearance_descriptor(frame, np.array([100, 40, 200, 240], np.float32))
    assert descriptor.shape == (16 * 8,)
    hue_bins = [0, 2, 8, 13]  # OpenCV hues 0, 30, 90, 150 of 180 in 16 bins; saturation bin 7 of 8
    np.testing.assert_allclose(descriptor[[8 * h + 7 for h in hue_bins]], 0.25, atol=1e-6)
    assert descriptor.sum() == pytest.approx(1.0)
    edge = appearance_descriptor(frame, np.array([-50, -40, 60, 80], np.float32))  # partly outside the frame
    assert edge.sum() == pytest.approx(1.0)


def test_reidentification_revives_the_most_alike_recent_person_only():
    """Two people who dress alike (histogram correlation about 0.9, both above reid_min_similarity) are hidden for
    60 frames (longer than max_missing; a third, X, was lost before them and too long ago to come back); A comes back
    elsewhere and gets A's id, not B's; someone who looks like no one
    gets a new id; a person who looks like B (and A) but comes when both have been gone longer than reid_max_gap
    frames gets a new id too."""
    rng = np.random.default_rng(5)
    looks = {name: rng.dirichlet(np.ones(128)).astype(np.float32) for name in "ACX"}
    looks["B"] = (0.7 * looks["A"] + 0.3 * rng.dirichlet(np.ones(128))).astype(np.float32)
    looks["D"] = looks["B"]
    layouts = {name: skeleton(20 + k) for k, name in enumerate("ABCDX")}
    seen = {"A": (0, 30, 0.0), "B": (0, 30, 400.0), "X": (0, 6, 1000.0), "a": (90, 120, 200.0),
            "C": (90, 120, 600.0), "D": (200, 230, 800.0)}
    frames, appearances = [], []
    for f in range(230):
        found, seen_looks = [], []
        for name, (start, end, x) in seen.items():
            if start <= f < end:
                who = name.upper()
                found.append(person(f, x, 50, layouts[who]))
                seen_looks.append(looks[who] * (1 + 0.05 * rng.random(128)).astype(np.float32))
        frames.append(found)
        appearances.append(seen_looks)
    assert appearance_similarity(looks["A"], looks["B"]) > TrackerConfig().reid_min_similarity
    assert len(track_people(frames, appearances=appearances)) == 6  # re-identification is off by default
    tracks = track_people(frames, config=TrackerConfig(reid=True), appearances=appearances)
    starts = {t.track_id: (int(t.frames[0]), float(t.boxes[0, 0])) for t in tracks}
    assert starts == {0: (0, 0.0), 1: (0, 400.0), 2: (0, 1000.0), 3: (90, 600.0), 4: (200, 800.0)}
    a = next(t for t in tracks if t.track_id == 0)
    assert a.frames[-1] == 119 and 200.0 in a.boxes[:, 0]  # A came back at x = 200 under their own id
    assert len(next(t for t in tracks if t.track_id == 1)) == 30  # B never came back


def appearance_similarity(a, b):
    import cv2

    return cv2.compareHist(a, b, cv2.HISTCMP_CORREL)


def test_box_overlap_by_hand():
    a = np.array([0, 0, 10, 10], np.float32)
    assert box_iou(a, a) == 1.0
    assert box_iou(a, np.array([5, 0, 15, 10], np.float32)) == pytest.approx(50 / 150)
    assert box_iou(np.array([2, 2, 8, 8], np.float32), a) == pytest.approx(36 / 100)
    assert box_iou(a, np.array([10, 0, 20, 10], np.float32)) == 0.0  # touching edges
    assert box_iou(a, np.array([0, 10, 10, 20], np.float32)) == 0.0
    assert box_iou(a, np.array([30, 30, 40, 40], np.float32)) == 0.0
    assert box_iou(np.array([3, 3, 3, 3], np.float32), np.array([3, 3, 3, 3], np.float32)) == 0.0  # no area
    c, d = np.array([10, 20, 30, 60], np.float32), np.array([20, 30, 40, 50], np.float32)  # 200 of 800 + 400 - 200
    assert box_iou(c, d) == pytest.approx(200 / 1000) and box_iou(d, c) == pytest.approx(200 / 1000)
    tiny = np.array([1.0, 1.0, 1.5, 1.5], np.float32)  # a quarter of a pixel
    assert box_iou(tiny, tiny) == 1.0


def test_keypoint_similarity_by_hand():
    def pose(x, box, seen):
        points = np.zeros((kp.NUM_KEYPOINTS, 2), np.float32)
        points[:, 0] = x
        scores = np.zeros(kp.NUM_KEYPOINTS, np.float32)
        scores[list(seen)] = 0.9
        return Detection(0, box, 0.9, points, scores)

    box = [50, 20, 150, 220]  # 100 x 200: scale 20000; sigma 0.1: exp(-d^2 / 400)
    a = pose(60.0, box, range(10))
    assert keypoint_similarity(a, pose(60.0, [0, 0, 10, 10], range(10)), 0.1) == pytest.approx(1.0)
    assert keypoint_similarity(a, pose(80.0, [0, 0, 10, 10], range(10)), 0.1) == pytest.approx(np.exp(-1))
    # only the points both see count (here 5-9), and the scale is the first pose's box
    b = pose(80.0, [0, 0, 10, 10], range(5, 20))
    b.keypoints[15:] += 500
    assert keypoint_similarity(a, b, 0.1) == pytest.approx(np.exp(-1))
    assert keypoint_similarity(a, pose(80.0, box, range(8, 20)), 0.1) is None  # 2 points in common
    assert keypoint_similarity(a, pose(80.0, box, range(7, 20)), 0.1) == pytest.approx(np.exp(-1))  # 3 are enough
    assert keypoint_similarity(a, Detection(0, box, 0.9), 0.1) is None
    assert keypoint_similarity(Detection(0, box, 0.9), a, 0.1) is None


def test_a_weak_match_is_not_taken():
    """Boxes overlapping by IoU 0.15 (above min_iou) and poses alike by OKS 0.3 make a similarity of 0.225, under
    min_similarity 0.25: a new person, not the same one."""
    layout = skeleton(30)
    first = person(0, 0.0, 0, layout)
    overlap = 200 * 0.15 / 1.15  # 26.1 px of the 100 px wide boxes: IoU 0.15
    second = person(1, 100 - overlap, 0, layout)
    second.keypoints = first.keypoints + np.array([np.sqrt(-400 * np.log(0.3)), 0], np.float32)  # OKS 0.3
    assert box_iou(first.box, second.box) == pytest.approx(0.15, abs=1e-3)
    assert keypoint_similarity(first, second, 0.1) == pytest.approx(0.3, abs=1e-3)
    assert len(track_people([[first], [second]], config=TrackerConfig(min_length=1))) == 2


def test_a_track_is_confirmed_by_its_fifth_sighting():
    """Seen 5 times (min_length), then missing for 10 frames: confirmed, so bridged; seen 4 times: dropped."""
    layout = skeleton(31)
    for sightings, expected in ((5, [21]), (4, [6])):
        frames = [[person(f, 100.0, 0, layout)] if f < sightings or f >= sightings + 10 else []
                  for f in range(sightings + 10 + 6)]
        assert [len(t) for t in track_people(frames)] == expected


def test_gaps_are_filled_up_to_max_missing_frames_exactly():
    layout = skeleton(32)
    seen = set(range(0, 5)) | set(range(8, 13)) | set(range(38, 43)) | set(range(44, 49)) | {51}  # gaps 3, 25, 1, 2
    x = 100.0 + 0.01 * np.arange(52) ** 2  # accelerating: each gap is filled on the line between its own two ends
    frames = [[person(f, x[f], 0, layout)] if f in seen else [] for f in range(52)]
    track = track_people(frames)[0]
    np.testing.assert_array_equal(track.frames, np.arange(52))
    sightings = np.array(sorted(seen))
    np.testing.assert_allclose(track.boxes[:, 0], np.interp(np.arange(52), sightings, x[sightings]), atol=1e-3)
    longer = [[person(f, 100.0, 0, layout)] if f < 5 or f >= 31 else [] for f in range(36)]  # a gap of 26
    assert [len(t) for t in track_people(longer, config=TrackerConfig(max_missing=25))] == [5, 5]
    raw = track_people(frames, config=TrackerConfig(fill_gaps=False))[0]
    assert len(raw) == len(seen)  # not even the 1-frame gap is filled
