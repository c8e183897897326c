import numpy as np
import pytest

from mit_annotator import keypoints as kp
from mit_annotator.metrics import score_tracking
from mit_annotator.records import Detection
from mit_annotator.tracking import TrackerConfig, appearance_descriptor, track_people


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
