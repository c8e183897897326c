"""Each node's settings reach the work it does, and what it hands on keeps what it was given (found by mutation
testing: these settings could be dropped without any other test noticing)."""

import sys

import numpy as np
import pytest
import torch
from conftest import PACK_ROOT

sys.path.insert(0, str(PACK_ROOT))
from nodes.comfy_bridge import frames_to_image, image_to_frames  # noqa: E402


@pytest.fixture(scope="module")
def small(speech):
    from mit_annotator.synthetic import ConversationSpec, synthesize_conversation

    c = synthesize_conversation(ConversationSpec(num_people=2, seconds=1.0, width=256, height=128, seed=4), speech)
    return c, frames_to_image(np.stack(list(c.frames())))


def test_the_synthetic_conversation_has_the_people_size_and_length_asked_for(speech):
    from nodes.conversation_nodes import SyntheticConversation

    images, audio, tracks, speaking, _, fps = SyntheticConversation.execute(3, 1.2, 4, 384, 128, 25.0, 0.0, False)
    assert len(tracks.tracks) == 3 and len(speaking.people) == 3
    assert tuple(images.shape) == (30, 128, 384, 3) and tracks.num_frames == 30 and fps == 25.0
    assert audio["waveform"].shape[-1] == pytest.approx(1.2 * audio["sample_rate"], abs=1)


class Stop(Exception):
    pass


def recorder(calls, name, stop=False):
    def make(*args, **kwargs):
        calls[name] = (args, kwargs)
        if stop:
            raise Stop
        return object()
    return make


def test_track_people_hands_the_threshold_and_device_to_the_models(small, monkeypatch):
    import nodes.vision_nodes as vision

    calls = {}
    monkeypatch.setattr(vision, "PersonDetector", recorder(calls, "detector"))
    monkeypatch.setattr(vision, "WholeBodyPose", recorder(calls, "pose", stop=True))
    with pytest.raises(Stop):
        vision.TrackPeople.execute(small[1], 25.0, "yolox_nano", "dwpose", 0.77, "cpu", False)
    assert calls["detector"][0] == ("yolox_nano",) and calls["pose"][0] == ("dwpose",)
    assert calls["detector"][1]["score_threshold"] == 0.77
    assert calls["detector"][1]["device"] == calls["pose"][1]["device"] == "cpu"


def test_whole_body_pose_keeps_the_detections_rate_and_shots(small, tiny_models):
    from nodes.vision_nodes import DetectPeople, WholeBodyPoseNode

    _, images = small
    detections, = DetectPeople.execute(images, 25.0, str(tiny_models["detector"]), 0.5, "cpu", False)
    detections.shots = [(0, 10), (10, 25)]
    posed, pose_keypoint = WholeBodyPoseNode.execute(images, detections, str(tiny_models["pose"]), "cpu", False)
    assert (posed.width, posed.height, posed.fps) == (detections.width, detections.height, 25.0)
    assert posed.shots == [(0, 10), (10, 25)] and len(posed.frames) == len(detections.frames) == 25

    # each detection carries the model's own keypoints and scores for its box (the library run on the same box)
    from mit_annotator.core.records import Detection
    from mit_annotator.vision.pose import WholeBodyPose

    boxes = np.float32([[20, 10, 90, 120], [150, 5, 230, 125]])  # the tiny random detector finds no one here
    detections.frames = [[Detection(k, box, 0.9) for box in boxes[:1 + k % 2]] for k in range(25)]
    posed, pose_keypoint = WholeBodyPoseNode.execute(images, detections, str(tiny_models["pose"]), "cpu", False)
    model, frames = WholeBodyPose(tiny_models["pose"]), list(image_to_frames(images))
    for k in (0, 1, 24):
        points, scores = model(frames[k], boxes[:1 + k % 2])
        assert len(posed.frames[k]) == len(pose_keypoint[k]["people"]) == 1 + k % 2
        for detection, p, s in zip(posed.frames[k], points, scores):
            np.testing.assert_array_equal(detection.keypoints, p)
            np.testing.assert_array_equal(detection.keypoint_scores, s)


@pytest.mark.parametrize("source, video_name, named", [("my source", "clip", "source 'my source'"),
                                                       ("test", "clip_1", "video_name 'clip_1'"),
                                                       ("", "clip", "source ''")])
def test_export_clip_names_the_bad_folder_name(small, source, video_name, named):
    from nodes.comfy_bridge import audio_to_comfy
    from nodes.export_nodes import ExportClip

    c, images = small
    with pytest.raises(ValueError) as caught:
        ExportClip.execute(images, audio_to_comfy(c.mix, 16000), c.tracks, c.speaking, "out", source, video_name,
                            False)
    assert str(caught.value) == f"{named}: use letters, digits and '-' (it names the clip folder)"


def test_widget_values_are_checked_before_the_run_and_linked_values_when_it_runs():
    """validate_inputs, which ComfyUI runs on the prompt before anything executes: values fed by a link come as None
    (not known yet) and pass, to be checked by the node itself."""
    from nodes.export_nodes import ExportClip
    from nodes.speaker_nodes import Diarize

    assert Diarize.validate_inputs(min_speakers=3, max_speakers=2) == "min_speakers (3) is more than max_speakers (2)"
    assert Diarize.validate_inputs(min_speakers=0, max_speakers=2) == "min_speakers 0 must be between 1 and 16"
    assert Diarize.validate_inputs(min_speakers=2, max_speakers=17) == "max_speakers 17 must be between 1 and 16"
    assert Diarize.validate_inputs(min_speakers=2, max_speakers=2) is True
    assert Diarize.validate_inputs(min_speakers=None, max_speakers=1) is True
    assert Diarize.validate_inputs(min_speakers=3, max_speakers=None) is True
    assert ExportClip.validate_inputs(source="a b", video_name="clip") == ("source 'a b': use letters, digits and '-' "
                                                                          "(it names the clip folder)")
    assert ExportClip.validate_inputs(source="test", video_name="") == ("video_name '': use letters, digits and '-' "
                                                                        "(it names the clip folder)")
    assert ExportClip.validate_inputs(source=None, video_name="clip-1") is True


@pytest.mark.parametrize("write_frames", [False, True])
def test_export_clip_writes_the_frames_only_when_asked(small, tmp_path, monkeypatch, write_frames):
    from pathlib import Path

    from mit_annotator.dataset.layout import FRAMES_DIR
    from nodes.comfy_bridge import audio_to_comfy
    from nodes.export_nodes import ExportClip

    c, images = small
    monkeypatch.chdir(tmp_path)  # outside ComfyUI the node writes under ./output/
    result = ExportClip.execute(images, audio_to_comfy(c.mix, 16000), c.tracks, c.speaking, "ds", "test", "clip",
                                 write_frames)
    folder = Path(result.result[0])
    assert folder.resolve().is_relative_to((tmp_path / "output" / "ds").resolve())
    pngs = sorted((folder / FRAMES_DIR).glob("*.png"))
    assert len(pngs) == (25 if write_frames else 0) and (folder / "video.mp4").is_file()  # 1 s at 25 fps


def test_track_people_takes_detections_or_pose_keypoint_and_says_so():
    from nodes.vision_nodes import TrackDetections

    for given in ({}, {"detections": object(), "pose_keypoint": []}):
        with pytest.raises(ValueError) as caught:
            TrackDetections.execute(5, 3, **given)
        assert str(caught.value) == ("Track People needs either detections (Detect People / Whole-Body Pose) or a "
                                     "POSE_KEYPOINT input, not both and not neither")


def test_an_image_of_the_wrong_shape_is_named_with_its_shape():
    with pytest.raises(ValueError) as caught:
        next(image_to_frames(torch.zeros(2, 8, 8)))
    assert str(caught.value) == "images must be a batch of RGB frames (F, H, W, 3), got shape (2, 8, 8)"


def test_the_reference_stays_white_where_resizing_overshoots():
    """Bicubic resizing rings past 1 beside a sharp edge: those pixels must stay white (255), not wrap around."""
    from nodes.covog_nodes import reference_image

    image = torch.ones(1, 64, 64, 3)
    image[:, :, 32:] = 0.0
    resized = reference_image(image, (48, 48))
    assert resized[:, :24].min() >= 240 and resized[:, 24:].max() <= 15  # the edge falls at column 24


def test_track_people_from_detections_keeps_the_video_and_draw_tracks_marks_the_people(small):
    """The conversation's own tracks, as detections, tracked again by the node: the same people in the same place;
    Draw Tracks then changes the frames inside the people's boxes, and refuses tracks of another video."""
    from mit_annotator.core.records import Detection
    from nodes.vision_nodes import DrawTracks, FrameDetections, TrackDetections

    c, images = small
    frames = [[Detection(k, t.boxes[k], 0.9, t.keypoints[k], t.keypoint_scores[k]) for t in c.tracks.tracks]
              for k in range(c.tracks.num_frames)]
    detections = FrameDetections(c.tracks.width, c.tracks.height, 25.0, frames, [])
    tracks, = TrackDetections.execute(5, 3, detections=detections)
    assert (tracks.width, tracks.height, tracks.fps, tracks.num_frames) == (256, 128, 25.0, 25)
    assert tracks.shots == [(0, 25)] and len(tracks.tracks) == 2
    for track, truth in zip(sorted(tracks.tracks, key=lambda t: t.boxes[0, 0]),
                            sorted(c.tracks.tracks, key=lambda t: t.boxes[0, 0])):
        np.testing.assert_allclose(track.boxes, truth.boxes)
    drawn, = DrawTracks.execute(images, tracks)
    changed = (drawn - images).abs().amax(dim=-1) > 0.05  # (frames, H, W)
    x1, y1, x2, y2 = tracks.tracks[0].boxes[0].astype(int)
    assert changed[0, y1:y2 + 1, x1:x2 + 1].any()
    with pytest.raises(ValueError, match="the tracks were made for 25 frames of 256x128, the images are 24 frames of "
                                         "256x128"):
        DrawTracks.execute(images[:24], tracks)


def test_model_folders_are_the_subfolders_holding_the_marker(tmp_path, monkeypatch):
    import nodes.comfy_bridge as bridge

    for name, files in (("covog-a", ["model_index.json"]), ("covog-b", ["model_index.json", "x"]), ("other", ["y"])):
        (tmp_path / name).mkdir()
        for file in files:
            (tmp_path / name / file).write_text("{}")
    monkeypatch.setattr(bridge, "_folder_paths", lambda folder: [str(tmp_path), str(tmp_path / "missing")])
    assert bridge.model_folders("covog", "model_index.json") == ["covog-a", "covog-b"]


def test_track_people_from_detections_uses_its_gap_and_length_settings(small):
    from mit_annotator.core.records import Detection
    from nodes.vision_nodes import FrameDetections, TrackDetections

    c, _ = small
    frames = [[Detection(k, t.boxes[k], 0.9, t.keypoints[k], t.keypoint_scores[k]) for t in c.tracks.tracks]
              for k in range(c.tracks.num_frames)]
    for k in (10, 11, 12):  # the first person unseen for 3 frames
        frames[k] = frames[k][1:]
    for k in range(4):  # someone passing by for 4 frames, far from both
        frames[k].append(Detection(k, np.array([230.0, 90, 250, 126]), 0.9))
    detections = FrameDetections(256, 128, 25.0, frames, [])

    def track_lengths(max_missing, min_length):
        tracks, = TrackDetections.execute(max_missing, min_length, detections=detections)
        return sorted(len(t) for t in tracks.tracks)

    assert track_lengths(5, 3) == [4, 25, 25]  # bridged (the gap filled in)
    assert track_lengths(5, 5) == [25, 25]  # the passer-by is too short
    assert track_lengths(2, 5) == [10, 12, 25]  # not bridged: two tracks


def test_detect_faces_gives_tracked_people_their_landmarks_and_leaves_its_input_alone():
    """With tracks, Detect Faces gives each person the landmarks of their face (here the tracks of its own run
    without tracks, their landmarks taken away: the same landmarks come back), on a copy: ComfyUI caches the input."""
    import copy

    from conftest import shared_path

    from mit_annotator.core import media
    from nodes.vision_nodes import DetectFaces

    yunet = shared_path("models", "face_detection_yunet.onnx")
    images = frames_to_image(media.read_frames(shared_path("video", "interact_11.mp4"), 0, 20))
    tracks, = DetectFaces.execute(images, 24.0, str(yunet), 0.6)
    assert len(tracks.tracks) == 2 and all(np.isfinite(t.face_landmarks).all() for t in tracks.tracks)
    bare = copy.deepcopy(tracks)
    for track in bare.tracks:
        track.face_landmarks = None
    again, = DetectFaces.execute(images, 24.0, str(yunet), 0.6, tracks=bare)
    for found, given in zip(again.tracks, tracks.tracks):
        np.testing.assert_array_equal(found.face_landmarks, given.face_landmarks)
    assert all(track.face_landmarks is None for track in bare.tracks)
