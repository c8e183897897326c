"""covog.evaluate: the scores of a generated conversation, checked on hand-made arrays and tracks (each measure's
values), on real footage (interact_11.mp4 as the "generated" video: its true schedule scores >= 0.9, a shuffled one
near chance, swapped people near 0; the audio moved against the lips moves the sync peak by as much), and its
command line (reports, figures, clear errors)."""

import json

import cv2
import numpy as np
import pytest
import torch
from conftest import MODELS, PACK_ROOT, SHARED_DATA

from covog import evaluate as ev
from covog.evaluation import figure as charts
from covog.evaluation import mouths, observation, scoring
from covog.evaluation import video_metrics as vm
from mit_annotator.core import keypoints as kp
from mit_annotator.core import media
from mit_annotator.core.records import PersonSpeaking, PersonTrack, SpeakingActivity, VideoTracks
from mit_annotator.core.segments import speak_listen_segments

INTERACT = SHARED_DATA / "video" / "interact_11.mp4"
AVA_WEIGHTS = MODELS / "lr_asd" / "pretrain_AVA.model"
YUNET = MODELS / "face_detection_yunet.onnx"


# ---------------------------------------------------------------------------------------------------------------------
# Attribution scores


def test_attribution_score_values():
    annotated = np.array([1, 1, 0, 0, 1, 0, 0, 0], bool)
    intended = np.array([1, 1, 1, 0, 0, 0, 0, 0], bool)
    score = vm.attribution_score(annotated, intended)
    assert score.accuracy == pytest.approx(6 / 8)
    assert score.f1 == pytest.approx(2 * 2 / (2 * 2 + 1 + 1))
    p, q = 3 / 8, 3 / 8
    assert score.chance == pytest.approx(p * q + (1 - p) * (1 - q))
    assert score.kappa == pytest.approx((6 / 8 - score.chance) / (1 - score.chance))
    assert (score.intended_share, score.annotated_share) == (3 / 8, 3 / 8)
    inverted = vm.attribution_score(~intended, intended)
    assert inverted.accuracy == 0 and inverted.kappa == pytest.approx(-inverted.chance / (1 - inverted.chance))
    silent = vm.attribution_score(np.zeros(8, bool), np.zeros(8, bool))
    assert silent.f1 == 1.0 and silent.accuracy == 1.0 and silent.kappa == 0.0
    with pytest.raises(ValueError, match="same"):
        vm.attribution_score(annotated[:5], intended)


def test_confusion_counts_whose_voice_against_whose_lips():
    intended = {0: np.array([1, 1, 0, 0, 0, 1], bool), 1: np.array([0, 0, 1, 1, 0, 1], bool)}
    annotated = {0: np.array([1, 0, 0, 0, 0, 0], bool), 1: np.array([0, 1, 1, 0, 1, 1], bool)}
    rows, columns, counts = vm.speaking_confusion(annotated, intended)
    assert rows == columns == ["0", "1", "nobody"]
    # frame 0: 0 -> 0; 1: 0 -> 1; 2: 1 -> 1; 3: 1 -> nobody; 4: nobody -> 1; 5: both talk, 1 moves: 0 -> 1, 1 -> 1
    assert counts.tolist() == [[1, 2, 0], [0, 2, 1], [0, 1, 0]]
    with pytest.raises(ValueError, match="differ"):
        vm.speaking_confusion({0: annotated[0]}, intended)


# ---------------------------------------------------------------------------------------------------------------------
# Sync


def test_delayed_moves_samples_later_or_earlier():
    samples = np.arange(1, 6, dtype=np.float32)
    assert vm.delayed(samples, 2).tolist() == [0, 0, 1, 2, 3]
    assert vm.delayed(samples, -2).tolist() == [3, 4, 5, 0, 0]
    assert vm.delayed(samples, 0).tolist() == samples.tolist()


def test_sync_score_peak_and_margin():
    speaking = np.array([0, 1, 1, 1, 0], bool)
    scores = {-1: np.array([9, 0, 0, 0, 9.0]), 0: np.array([9, 1, 1, 1, 9.0]), 1: np.array([-9, 3, 2, 4, -9.0]),
              2: np.array([0, np.nan, 2, 2, 0])}
    score = vm.sync_score(scores, speaking)
    # frame 1 has no score at delay 2: the curve averages frames 2 and 3 at every delay
    assert score.frames == 2 and score.curve == [0.0, 1.0, 3.0, 2.0]
    assert score.offset_frames == 1 and score.confidence == pytest.approx(3.0 - 1.5)
    assert vm.sync_score(scores, speaking, min_frames=3) is None


# ---------------------------------------------------------------------------------------------------------------------
# Hands, fingers, identity


def hand(open_fingers: int, origin=(0.0, 0.0), size: float = 10.0) -> np.ndarray:
    """21 points: the wrist, then five fingers straight up (open) or folded back towards the palm."""
    points = [origin]
    for finger in range(5):
        x = origin[0] + (finger - 2) * size * 0.2
        for joint in range(1, 5):
            if finger < open_fingers:
                points.append((x, origin[1] - size * 0.25 * joint))
            else:  # up two joints, then back down: the tip ends nearer the wrist than the second joint
                height = [0.3, 0.45, 0.25, 0.1][joint - 1]
                points.append((x, origin[1] - size * height))
    return np.array(points)


def test_finger_counts_and_flicker():
    counts = vm.finger_counts(np.stack([hand(k) for k in (5, 3, 0, 2, 2)]))
    assert counts.tolist() == [5, 3, 0, 2, 2]
    hidden = np.stack([hand(5), hand(5)])
    hidden[1, 0] = np.nan  # no wrist: not measured
    hidden[0, 4] = np.nan  # a thumb tip unseen: that finger is not counted
    assert vm.finger_counts(hidden).tolist() == [4, -1]
    flicker = vm.count_flicker(np.array([5, 5, 4, 5, 5, 3, 3, -1, 3]))
    assert flicker["change_rate"] == pytest.approx(3 / 6)  # 5-4, 4-5, 5-3 of the 6 measured pairs
    assert flicker["blip_rate"] == pytest.approx(1 / 5)  # 5 4 5 of the 5 measured triples
    assert flicker["measured_frames"] == 8


def test_hand_jitter_tells_shaking_from_smooth_motion():
    frames = 40
    smooth = np.stack([hand(5, origin=(2.0 * t, 0.5 * t)) for t in range(frames)])  # steady drift
    assert vm.hand_jitter(smooth) == pytest.approx(0.0, abs=1e-9)
    rng = np.random.default_rng(0)
    shaking = smooth + rng.normal(0, 1.0, smooth.shape)  # hand about 10 px: 1 px noise
    assert 0.1 < vm.hand_jitter(shaking) < 0.4
    assert vm.hand_jitter(shaking * 2) == pytest.approx(vm.hand_jitter(shaking), rel=1e-6)  # size-relative
    assert np.isnan(vm.hand_jitter(np.full((5, 21, 2), np.nan)))


def test_hand_points_hide_unsure_points():
    keypoints = np.zeros((2, kp.NUM_KEYPOINTS, 2))
    keypoints[:, kp.RIGHT_HAND_ROOT:kp.RIGHT_HAND_ROOT + 21] = hand(5)
    scores = np.ones((2, kp.NUM_KEYPOINTS))
    scores[1, kp.RIGHT_HAND_ROOT + 3] = 0.29
    points = vm.hand_points(keypoints, scores, kp.RIGHT_HAND_ROOT)
    assert np.isnan(points[1, 3]).all() and not np.isnan(points[0]).any()
    assert np.allclose(points[0], hand(5))


def face_image(colour, eyes_y=20, size=64):
    image = np.full((size, size, 3), 200, np.uint8)
    cv2.circle(image, (32, 32), 22, colour, -1)
    for x in (24, 40):
        cv2.circle(image, (x, eyes_y), 3, (20, 20, 20), -1)
    return image


def test_face_descriptor_and_identity_drift():
    box = np.array([4, 4, 60, 60], np.float32)
    same = vm.face_descriptor(face_image((220, 170, 140)), box)
    assert same.shape == (24 * 24 + 64,) and np.linalg.norm(same) == pytest.approx(1.0, abs=1e-5)
    assert vm.face_descriptor(face_image((220, 170, 140)), np.array([0, 0, 5, 60])) is None  # too narrow
    assert vm.face_descriptor(face_image((220, 170, 140)), np.array([np.nan] * 4)) is None
    steady = [vm.face_descriptor(face_image((220, 170, 140)), box) for _ in range(50)]
    # a face whose skin turns from one colour to another over the second half
    turning = [vm.face_descriptor(face_image((220, 170 - max(0, t - 25) * 4, 140 - max(0, t - 25) * 4)), box)
               for t in range(50)]
    other = [vm.face_descriptor(face_image((90, 60, 40), eyes_y=30), box) for _ in range(50)]
    drift = vm.identity_drift({0: steady, 1: turning, 2: other[:20] + [None] * 30}, fps=10, reference_seconds=1.0)
    assert drift[0]["mean_drift"] == pytest.approx(0.0, abs=1e-6) and drift[0]["growth"] == pytest.approx(0, abs=1e-6)
    assert drift[1]["growth"] > 0.05 and drift[1]["max_drift"] > drift[1]["mean_drift"]
    assert drift[2]["faces"] == 20 and np.isnan(drift[2]["drift"][20:]).all()
    assert drift[0]["closer_to_other_share"] == 0.0
    swapped = vm.identity_drift({0: steady[:10] + other[:40], 1: other[:10] + steady[:40]}, fps=10)
    assert swapped[0]["closer_to_other_share"] == pytest.approx(40 / 50)


# ---------------------------------------------------------------------------------------------------------------------
# Fidelity


def test_psnr_ssim_and_frechet_distance():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    b = a.copy()
    b[0, 0, 0] = (int(a[0, 0, 0]) + 16) % 256
    assert vm.psnr(a, a) == float("inf")
    mse = (int(b[0, 0, 0]) - int(a[0, 0, 0])) ** 2 / a.size
    assert vm.psnr(a, b) == pytest.approx(10 * np.log10(255 ** 2 / mse))
    assert vm.ssim(a, a) == pytest.approx(1.0) and vm.ssim(a, 255 - a) < 0
    x = rng.normal(0, 1, (400, 3))
    assert vm.frechet_distance(x, x) == pytest.approx(0.0, abs=1e-6)
    # same spread, mean moved by (2, 0, 0): the distance is the squared shift
    assert vm.frechet_distance(x, x + [2, 0, 0]) == pytest.approx(4.0, abs=1e-6)
    with pytest.raises(ValueError, match="feature sets"):
        vm.frechet_distance(x[:1], x)


# ---------------------------------------------------------------------------------------------------------------------
# Matching detected faces to the schedule's people


def face_track(track_id, frames, boxes, landmarks=None):
    boxes = np.asarray(boxes, np.float32)
    return PersonTrack(track_id, frames, boxes, face_boxes=boxes.copy(),
                       face_landmarks=landmarks if landmarks is not None else np.zeros((len(frames), 5, 2),
                                                                                       np.float32))


def posed_track(track_id, frames, centre):
    """A track with keypoints: a face around `centre` (jaw, nose and eyes, mouth corners) at 200x100 pixels."""
    points = np.zeros((len(frames), kp.NUM_KEYPOINTS, 2), np.float32)
    scores = np.zeros((len(frames), kp.NUM_KEYPOINTS), np.float32)
    cx, cy = centre
    face = kp.FACE_OFFSET + np.arange(68)
    angles = np.linspace(0, 2 * np.pi, 68)
    points[:, face] = np.stack([cx + 8 * np.cos(angles), cy + 8 * np.sin(angles)], axis=1)
    points[:, kp.MOUTH_CORNER_IMAGE_LEFT] = (cx - 4, cy + 5)
    points[:, kp.MOUTH_CORNER_IMAGE_RIGHT] = (cx + 4, cy + 5)
    scores[:, face] = 1.0
    return PersonTrack(track_id, frames, np.tile([cx - 20, cy - 10, cx + 20, cy + 60], (len(frames), 1)), points,
                       scores)


def test_faces_are_matched_to_the_poses_frame_by_frame():
    intended = VideoTracks(200, 100, 25.0, 4, [posed_track(7, range(4), (50, 40)), posed_track(3, range(4), (150, 40))])
    # at half the size; person 3's face is found in frames 0-2 (frame 2 too far away), person 7's in frame 1 only
    found = VideoTracks(100, 50, 25.0, 4, [
        face_track(0, [0, 1, 2], [[70, 15, 80, 25], [71, 15, 81, 25], [90, 40, 99, 49]]),
        face_track(1, [1], [[20, 15, 30, 25]]),
    ])
    observed, detected, from_poses, matching = observation.align_people(found, [7, 3], 4, (100, 50), intended)
    assert "per frame" in matching
    assert detected[3].tolist() == [True, True, False, False] and from_poses[3].tolist() == [False, False, True, True]
    assert detected[7].tolist() == [False, True, False, False] and from_poses[7].tolist() == [True, False, True, True]
    person = observed.track(3)
    assert person.boxes[1].tolist() == [71, 15, 81, 25]
    # where the poses give the face: their face box by the paper's rule, at the video's size
    expected = kp.face_box_from_keypoints(intended.track(3).keypoints[3], intended.track(3).keypoint_scores[3]) / 2
    assert np.allclose(person.boxes[3], expected)
    # and their mouth corners as landmarks (for the mouth-motion evidence), but never their keypoints
    assert np.allclose(person.face_landmarks[3, 3:], [[73, 22.5], [77, 22.5]])
    assert person.keypoints is None and observed.width == 100


def test_without_poses_faces_go_left_to_right_in_id_order():
    found = VideoTracks(100, 50, 25.0, 6, [
        face_track(0, range(6), [[70, 10, 80, 20]] * 6),  # right
        face_track(1, range(5), [[10, 10, 20, 20]] * 5),  # left
        face_track(2, [5], [[12, 10, 22, 20]]),  # a fragment of the left face, in the frame its track lost
        face_track(3, [1], [[40, 10, 50, 20]]),  # a short false face in the middle, nearer the left one
    ])
    observed, detected, from_poses, matching = observation.align_people(found, [4, 2], 6, (100, 50))
    assert "left to right" in matching
    assert observed.track(2).boxes[:, 0].tolist() == [10, 10, 10, 10, 10, 12]  # left: track 1, then the fragment
    assert observed.track(4).boxes[:, 0].tolist() == [70] * 6
    assert detected[2].all() and not from_poses[2].any()


def test_with_a_pose_model_people_come_with_keypoints_and_hands_are_measured(small_video, tiny_models, yolox_nano):
    """The pose path (DWPose's place taken by a tiny random model with its signature): people found by the detector
    get keypoints, and the hands report runs on them; rows filled from the poses carry no keypoints of the video."""
    frames = media.read_frames(small_video["video"], fps=25)
    settings = observation.EvaluationSettings(models_dir=str(MODELS), pose_model=str(tiny_models["pose"]),
                                     det_model=str(yolox_nano))
    notes = []
    found, pose_model = observation.find_people(small_video["video"], frames, settings, notes)
    assert pose_model == tiny_models["pose"].name and notes == []
    assert found.tracks and all(t.keypoints is not None for t in found.tracks)
    intended = VideoTracks.load(small_video["tracks"])
    observed, detected, from_poses, _ = observation.align_people(found, [0, 1], len(frames), (256, 128), intended)
    for person in (0, 1):
        track = observed.track(person)
        assert track.keypoints is not None
        filled = from_poses[person][track.frames]
        assert not track.keypoint_scores[filled].any()
    hands = scoring.hands_report(observed, pose_model)
    assert hands["ran"] and hands["model"] == pose_model
    assert [sorted(p) for p in hands["per_person"]] == [["left", "right", "track_id"]] * 2
    assert scoring.hands_report(observed, None)["ran"] is False


# ---------------------------------------------------------------------------------------------------------------------
# Real footage


def interact_schedule(frames: int, sides: dict[int, str] | None = None, stretch: float = 25 / 24,
                      shuffle_seed: int | None = None) -> SpeakingActivity:
    """interact_11's true who-speaks-when at 25 fps (the turns file's times stretched by 25/24, see
    test_who_speaks_real); person 0 on the left, 1 on the right. With `shuffle_seed`, each person's schedule in
    one-second blocks put in a random order."""
    sides = sides or {0: "left", 1: "right"}
    turns = json.loads(INTERACT.with_suffix(".turns.json").read_text())["speaking_seconds"]
    rng = np.random.default_rng(shuffle_seed)
    people = []
    for person, side in sides.items():
        scores = np.full(frames, -2.0, np.float32)
        for start, end in turns[side]:
            scores[int(round(start * stretch * 25)):int(round(end * stretch * 25))] = 2.0
        if shuffle_seed is not None:
            blocks = np.array_split(scores, int(np.ceil(frames / 25)))
            scores = np.concatenate([blocks[k] for k in rng.permutation(len(blocks))])
        speak, listen = speak_listen_segments(scores, 25.0)
        people.append(PersonSpeaking(person, scores, side, speak, listen))
    return SpeakingActivity(25.0, frames, people)


@pytest.fixture(scope="module")
def interact():
    """interact_11 annotated once as a generated video, for people 0 (left) and 1 (right)."""
    for path in (INTERACT, AVA_WEIGHTS, YUNET):
        if not path.is_file():
            pytest.skip(f"needs {path} (shared test data: ../shared/data beside the checkout)")
    frames = int(round(media.probe(INTERACT).duration * 25))
    settings = observation.EvaluationSettings(models_dir=str(MODELS), asd_model=str(AVA_WEIGHTS), sync_max_offset=4)
    return observation.observe_video(INTERACT, [0, 1], frames=frames, settings=settings), settings


def test_real_footage_scores_its_true_schedule(interact):
    annotation, settings = interact
    report = scoring.score_video(annotation, interact_schedule(annotation.num_frames), settings=settings)
    a = report["attribution"]
    print(json.dumps({k: a[k] for k in ("frame_accuracy", "f1", "chance", "kappa")}))
    assert [p["accuracy"] >= 0.9 for p in a["per_person"]] == [True, True]
    assert a["frame_accuracy"] >= 0.93 and a["f1"] >= 0.9 and a["kappa"] >= 0.85
    counts = np.array(a["confusion"]["frames"])
    assert counts[0, 0] > 8 * counts[0, 1] and counts[1, 1] > 8 * counts[1, 0]  # lips move to their own voice
    assert all(v["annotated_owner"] == v["schedule_owner"] for v in a["voices"] if v["seconds"] > 1)
    assert sorted(v["schedule_owner"] for v in a["voices"] if v["seconds"] > 1) == [0, 1]
    print("margins", [(v["voice"], v["seconds"], v["margin"]) for v in a["voices"]])
    assert all(v["margin"] >= scoring.MIN_MARGIN for v in a["voices"] if v["seconds"] > 1)  # each voice told apart
    assert not [note for note in report["notes"] if "is a guess" in note]
    assert a["active_speaker_only"]["frame_accuracy"] >= 0.85
    assert [p["face_detected_share"] for p in report["people"]] == [1.0, 1.0]
    assert report["models"]["pose"] is None and report["temporal"]["hands"]["ran"] is False
    assert any("pose model" in note for note in report["notes"])
    left = report["sync"]["per_person"][0]
    assert left["offset_frames"] in range(0, 4) and left["offset_frames"] < 4  # a peak near 0, inside the range
    assert left["confidence"] > 0.15 and max(left["curve"]) - min(left["curve"]) > 0.5


def test_a_voice_everyone_agrees_with_alike_is_reported_as_a_guess():
    """As on a video of noise whose active-speaker scores follow the audio alone (held-out conversation 9002 of the
    learning proof as noise: margins 0.18 and 0.13, scored like the real video, whose margins are 0.94 and 1.12)."""
    assert scoring.agreement_margin(np.array([0.52, 0.36])) == pytest.approx(0.16)
    assert scoring.agreement_margin(np.array([0.1, np.nan, 0.9, 0.5])) == pytest.approx(0.4)
    assert scoring.agreement_margin(np.array([0.7, np.nan])) is None  # one person measured: nothing to tell apart
    attribution = {"voices": [{"voice": "SPEAKER_00", "seconds": 1.8, "margin": 0.16},
                              {"voice": "SPEAKER_01", "seconds": 2.4, "margin": 0.94},
                              {"voice": "SPEAKER_02", "seconds": 0.3, "margin": None}]}
    notes = scoring.undecided_voices(attribution)
    assert len(notes) == 1 and notes[0].startswith("voice SPEAKER_00 (1.8 s)") and "is a guess" in notes[0]


def test_real_footage_scores_a_shuffled_schedule_near_chance_and_swapped_people_near_zero(interact):
    annotation, settings = interact
    n = annotation.num_frames
    swapped = scoring.score_video(annotation, interact_schedule(n, {0: "right", 1: "left"}), settings=settings)
    assert swapped["attribution"]["frame_accuracy"] <= 0.1 and swapped["attribution"]["kappa"] < -0.8
    shuffled = [scoring.score_video(annotation, interact_schedule(n, shuffle_seed=seed), settings=settings)["attribution"]
                for seed in range(8)]
    accuracy = np.mean([a["frame_accuracy"] for a in shuffled])
    chance = np.mean([a["chance"] for a in shuffled])
    print(f"shuffled: accuracy {accuracy:.3f}, chance {chance:.3f}")
    assert abs(accuracy - chance) <= 0.1 and 0.4 <= accuracy <= 0.6
    assert abs(np.mean([a["kappa"] for a in shuffled])) <= 0.2


def test_sync_peak_moves_with_the_audio(interact):
    """The audio advanced by 3 frames (the voice 3 frames earlier: the lips now trail it 3 frames more) moves the
    left person's peak 3 frames up."""
    from mit_annotator.speakers.active_speaker import ActiveSpeakerModel

    annotation, settings = interact
    schedule = interact_schedule(annotation.num_frames)
    before = scoring.score_video(annotation, schedule, settings=settings)["sync"]["per_person"][0]["offset_frames"]
    advanced = vm.delayed(annotation.audio, -3 * 640)
    model = ActiveSpeakerModel(AVA_WEIGHTS, device="cpu")
    offsets = list(range(before, before + 7))
    scores = observation.shifted_scores(model, annotation.crops, advanced, annotation.num_frames, [0, 1], offsets)
    left = observation.intended_speaking(schedule, annotation.num_frames)[0]
    assert vm.sync_score({o: s[0] for o, s in scores.items()}, left).offset_frames == before + 3


def test_shifted_scores_at_zero_are_the_packs_active_speaker_scores(interact):
    from mit_annotator.speakers.active_speaker import ActiveSpeakerModel, active_speaker_scores

    annotation, _ = interact
    n = 60
    tracks = annotation.observed.clip(0, n, [0, 1])
    model = ActiveSpeakerModel(AVA_WEIGHTS, device="cpu")
    audio = annotation.audio[:n * 640]
    ours = observation.shifted_scores(model, observation.face_crops(annotation.frames[:n], tracks, model), audio, n, [0, 1], [0])[0]
    packs = active_speaker_scores(None, tracks, model, audio=audio, frames=iter(annotation.frames[:n]))
    for person in (0, 1):
        assert np.allclose(ours[person], packs[person], atol=1e-4, equal_nan=True)
        assert not np.isnan(ours[person]).any()


def test_report_figure_draws_every_panel(interact, tmp_path):
    annotation, settings = interact
    report = scoring.score_video(annotation, interact_schedule(annotation.num_frames), settings=settings)
    image = charts.report_figure(report)
    assert image.shape[1] == charts.WIDTH and image.dtype == np.uint8
    blue = (image[..., 2] > 150) & (image[..., 0] < 90)  # person 0's annotated speaking bars, (40, 90, 200)
    assert blue.sum() > 500
    assert json.loads(json.dumps(report))["attribution"]["frame_accuracy"] == report["attribution"]["frame_accuracy"]


# ---------------------------------------------------------------------------------------------------------------------
# The command line


@pytest.fixture(scope="module")
def small_video(speech, tmp_path_factory):
    """A synthetic 2-person conversation, 3 s at 256x128, its true poses and schedule."""
    from mit_annotator.synthetic import ConversationSpec, synthesize_conversation

    folder = tmp_path_factory.mktemp("small_video")
    conversation = synthesize_conversation(ConversationSpec(num_people=2, seconds=3.0, width=256, height=128,
                                                            seed=4), speech)
    return conversation.save(folder)


def test_cli_reports_a_video_with_its_poses_and_a_reference(small_video, tmp_path, capsys):
    """Reference = the video darkened: PSNR and SSIM frame for frame; FVD from a stand-in I3D detector (each clip's
    mean and spread of colour) in the models folder; LPIPS not installed, said so."""
    models = tmp_path / "models"
    models.mkdir()
    for path in (YUNET, AVA_WEIGHTS):
        if not path.is_file():
            pytest.skip(f"needs {path}")
        (models / path.name).symlink_to(path)

    class MeanColour(torch.nn.Module):
        def forward(self, x, rescale: bool, resize: bool, return_features: bool):
            return torch.cat([x.mean(dim=(2, 3, 4)), x.std(dim=(2, 3, 4))], dim=1)

    torch.jit.script(MeanColour()).save(str(models / observation.FVD_DETECTOR))
    frames = media.read_frames(small_video["video"], fps=25)
    darker = media.write_video(tmp_path / "darker.mp4", (frames * 0.8).astype(np.uint8), 25.0)
    out = tmp_path / "report.json"
    code = ev.main([str(small_video["video"]), "--reference-speaking", str(small_video["speaking"]), "--tracks",
                    str(small_video["tracks"]), "--reference-video", str(darker), "--out", str(out),
                    "--models", str(models), "--sync-max-offset", "1", "--mouths", "--voices",
                    str(small_video["person_0_audio"]), str(small_video["person_1_audio"])])
    stdout = capsys.readouterr().out
    assert code == 0, stdout
    report = json.loads(out.read_text())
    assert report["frames"] == 75 and report["size"] == [256, 128] and report["sync"]["max_offset_frames"] == 1
    assert "speaker attribution: frame accuracy" in stdout and "wrote" in stdout
    shares = [p["face_detected_share"] + p["face_from_poses_share"] for p in report["people"]]
    assert shares == [1.0, 1.0]  # every frame has a face: detected, or where the poses put it
    reference = report["reference"]
    seen = media.read_frames(darker, fps=25)
    assert reference["frames"] == 75
    assert reference["psnr"] == pytest.approx(np.mean([vm.psnr(a, b) for a, b in zip(frames, seen)]), abs=1e-3)
    assert reference["ssim"] == pytest.approx(np.mean([vm.ssim(a, b) for a, b in zip(frames, seen)]), abs=1e-4)
    assert reference["lpips"] is None and "LPIPS not computed" in reference["lpips_note"]

    def features(video):
        clips = torch.from_numpy(video[:64].astype(np.float32) / 127.5 - 1).reshape(4, 16, 128, 256, 3)
        return MeanColour()(clips.permute(0, 4, 1, 2, 3), False, True, True).numpy()

    expected = vm.frechet_distance(features(frames), features(seen))
    assert expected > 0.01 and reference["fvd"] == pytest.approx(expected, abs=1e-3)
    assert "4 clips" in reference["fvd_note"]
    image = cv2.imread(str(out.with_suffix(".png")))
    assert image is not None and image.shape[1] == charts.WIDTH
    voices = [media.read_audio(small_video[f"person_{k}_audio"], 16000) for k in range(2)]
    expected = mouths.mouth_report(frames, VideoTracks.load(small_video["tracks"]),
                                   SpeakingActivity.load(small_video["speaking"]), voices)
    assert report["mouths"] == json.loads(json.dumps(expected)) and len(expected["voices"]) == 2
    assert f"mouths: speaking/not speaking accuracy {expected['accuracy']:.3f}" in stdout


def write_tracks(path, fps=25.0, ids=(0, 1)):
    tracks = VideoTracks(64, 64, fps, 10, [face_track(i, range(10), [[10, 10, 30, 30]] * 10) for i in ids])
    return tracks.save(path)


def write_schedule(path, ids=(0, 1), frames=10):
    people = [PersonSpeaking(i, np.full(frames, 2.0 if i == 0 else -2.0, np.float32)) for i in ids]
    return SpeakingActivity(25.0, frames, people).save(path)


@pytest.mark.parametrize("case, message", [
    ("no video", "video {tmp}/missing.mp4: no such file"),
    ("no schedule", "--reference-speaking {tmp}/missing.json: no such file"),
    ("bad schedule", "{tmp}/bad.json: not valid JSON"),
    ("tracks at 24 fps", "--tracks: tracks at 24 fps"),
    ("tracks without a person", "--tracks: no track for the schedule's people [1]"),
    ("video without audio", "{tmp}/silent.mp4 has no audio stream"),
    ("negative offset", "--sync-max-offset must be at least 0"),
    ("mouths without poses", "--mouths reads each mouth where the poses put it: give the poses with --tracks"),
    ("voices without mouths", "--voices is read by --mouths: add --mouths"),
    ("missing voice", "--voices {tmp}/gone.wav: no such file"),
])
def test_bad_input_is_one_clear_line(tmp_path, capsys, case, message):
    video = media.write_video(tmp_path / "silent.mp4", np.zeros((10, 64, 64, 3), np.uint8), 25.0)
    schedule = write_schedule(tmp_path / "speaking.json")
    (tmp_path / "bad.json").write_text("{")
    args = {"video": str(video), "--reference-speaking": str(schedule), "--out": str(tmp_path / "r.json")}
    if case == "no video":
        args["video"] = str(tmp_path / "missing.mp4")
    elif case == "no schedule":
        args["--reference-speaking"] = str(tmp_path / "missing.json")
    elif case == "bad schedule":
        args["--reference-speaking"] = str(tmp_path / "bad.json")
    elif case == "tracks at 24 fps":
        args["--tracks"] = str(write_tracks(tmp_path / "t.json", fps=24.0))
    elif case == "tracks without a person":
        args["--tracks"] = str(write_tracks(tmp_path / "t.json", ids=(0,)))
    elif case == "negative offset":
        args["--sync-max-offset"] = "-1"
    elif case in ("voices without mouths", "missing voice"):
        args["--tracks"] = str(write_tracks(tmp_path / "t.json"))
        args["--voices"] = str(video) if case == "voices without mouths" else str(tmp_path / "gone.wav")
    argv = [args.pop("video")] + [x for pair in args.items() for x in pair]
    argv += ["--mouths"] if case in ("mouths without poses", "missing voice") else []
    assert ev.main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message.format(tmp=tmp_path) in err, err
    assert len(err.strip().splitlines()) == 1


def test_the_evaluate_node_scores_the_images_against_the_schedule(small_video, monkeypatch, tmp_path):
    """The node on the conversation's frames and audio: covog.evaluate's report (as JSON) of those frames, that audio,
    schedule and poses, with the node's settings, and its figure; bad input named."""
    import sys

    sys.path.insert(0, str(PACK_ROOT))
    from nodes.comfy_bridge import audio_to_comfy, frames_to_image
    from nodes.evaluate_nodes import EvaluateConversation

    for path in (YUNET, AVA_WEIGHTS):
        if not path.is_file():
            pytest.skip(f"needs {path}")
    monkeypatch.setenv("MIT_MODELS_DIR", str(YUNET.parent))  # where the node looks outside ComfyUI
    frames, audio = media.read_frames(small_video["video"], fps=25), media.read_audio(small_video["video"], 16000)
    schedule, tracks = SpeakingActivity.load(small_video["speaking"]), VideoTracks.load(small_video["tracks"])
    node, images, sound = EvaluateConversation, frames_to_image(frames), audio_to_comfy(audio, 16000)
    result = node.execute(images, sound, schedule, 25.0, str(AVA_WEIGHTS), 2, tracks, reference_images=images)
    text, figure = result.result
    report = json.loads(text)
    assert report["frames"] == 75 and report["sync"]["max_offset_frames"] == 2
    # the same frames as the reference, written the same way: every frame alike (PSNR infinite, so none)
    assert report["reference"]["frames"] == 75 and report["reference"]["ssim"] == 1.0
    assert report["reference"]["psnr"] is None
    assert figure.shape[0] == 1 and figure.shape[2] == charts.WIDTH and figure.shape[3] == 3
    assert result.ui["text"][0].startswith("speaker attribution: frame accuracy")
    # what the library gives on the same frames and audio written the same way, with the same settings
    written = media.write_video(tmp_path / "same.mp4", frames, 25.0, audio, 16000)
    expected = scoring.evaluate(written, schedule, tracks, settings=observation.EvaluationSettings(
        models_dir=str(YUNET.parent), asd_model=str(AVA_WEIGHTS), sync_max_offset=2))
    for part in ("attribution", "sync", "people"):
        assert report[part] == json.loads(json.dumps(expected[part])), part
    assert report["series"]["intended"] == expected["series"]["intended"]
    with pytest.raises(ValueError, match="the audio lasts 1.00 s but the video 3.00 s"):
        node.execute(images, audio_to_comfy(audio[:16000], 16000), schedule, 25.0, str(AVA_WEIGHTS), 2)
    with pytest.raises(ValueError, match=r"the assignment names person 5, whom the tracks do not hold \(their people: "
                                         r"\[0, 1\]\)"):
        node.execute(images, sound, SpeakingActivity(schedule.fps, schedule.num_frames, [
            PersonSpeaking(5, schedule.people[0].scores)]), 25.0, str(AVA_WEIGHTS), 2, tracks)
    with pytest.raises(ValueError, match="the schedule has no people"):
        node.execute(images, sound, SpeakingActivity(25.0, 75, []), 25.0, str(AVA_WEIGHTS), 2)
