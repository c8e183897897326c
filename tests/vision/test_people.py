import subprocess
import sys

import numpy as np
import pytest
from conftest import MODELS, PACK_ROOT

from mit_annotator.core import media
from mit_annotator.core.records import VideoTracks
from mit_annotator.vision.detection import PersonDetector
from mit_annotator.vision.faces import YuNetFaceDetector
from mit_annotator.vision.metrics import score_tracking
from mit_annotator.vision.people import annotate_frames, annotate_people
from mit_annotator.vision.pose import WholeBodyPose


def test_the_vision_pass_tracks_everyone_in_a_conversation(saved_conversation, yolox_nano, tiny_models):
    conversation, paths = saved_conversation
    detector = PersonDetector(yolox_nano)
    seen = []
    tracks = annotate_people(paths["video"], detector, WholeBodyPose(tiny_models["pose"]),
                             YuNetFaceDetector(MODELS / "face_detection_yunet.onnx"),
                             progress=lambda done, total: seen.append((done, total)))
    assert (tracks.width, tracks.height, tracks.fps) == (256, 144, 25.0)
    assert tracks.num_frames == conversation.spec.num_frames and tracks.shots == [(0, tracks.num_frames)]
    assert seen[-1] == (tracks.num_frames, tracks.num_frames)
    score = score_tracking(tracks.tracks, conversation.tracks.tracks, tracks.num_frames)
    assert len(tracks.tracks) == 3 and score.id_switches == 0 and score.mota > 0.9, score
    for track in tracks.tracks:
        assert track.keypoints.shape == (len(track), 133, 2) and track.face_landmarks.shape == (len(track), 5, 2)
    assert tracks.source == str(paths["video"])


def test_no_people_one_frame_and_mixed_sizes(tiny_models):
    detector = PersonDetector(tiny_models["detector"])
    empty = annotate_frames([np.zeros((64, 64, 3), np.uint8)] * 10, 25.0, detector)
    assert empty.tracks == [] and empty.num_frames == 10
    single = annotate_frames([np.zeros((64, 64, 3), np.uint8)], 25.0, detector)
    assert single.num_frames == 1 and single.shots == [(0, 1)]
    with pytest.raises(ValueError, match="frame 1 is 32x32, frame 0 was 64x64"):
        annotate_frames([np.zeros((64, 64, 3), np.uint8), np.zeros((32, 32, 3), np.uint8)], 25.0, detector)
    with pytest.raises(ValueError, match="no frames"):
        annotate_frames([], 25.0, detector)


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "mit_annotator", *args], capture_output=True, text=True,
                          cwd=PACK_ROOT, timeout=600)


def test_poses_and_render_poses_commands(saved_conversation, yolox_nano, tiny_models, tmp_path):
    _, paths = saved_conversation
    out = tmp_path / "tracks.json"
    done = run_cli("poses", str(paths["video"]), "--out", str(out), "--det-model", str(yolox_nano),
                   "--pose-model", str(tiny_models["pose"]), "--device", "cpu")
    assert done.returncode == 0, done.stderr
    assert "people tracked" in done.stdout and "runs on CPUExecutionProvider" in done.stderr
    tracks = VideoTracks.load(out)
    assert len(tracks.tracks) == 3
    overlay = tmp_path / "overlay.mp4"
    done = run_cli("render-poses", str(paths["video"]), str(out), "--out", str(overlay))
    assert done.returncode == 0, done.stderr
    info = media.probe(overlay)
    assert info.num_frames == tracks.num_frames and info.has_audio
    done = run_cli("score-tracks", str(out), str(paths["tracks"]))
    assert done.returncode == 0 and "0 identity switches; 3 tracks for 3 people" in done.stdout, done.stdout


def test_boxes_and_faces_only(saved_conversation, yolox_nano, tmp_path):
    _, paths = saved_conversation
    out = tmp_path / "tracks.json"
    done = run_cli("poses", str(paths["video"]), "--out", str(out), "--det-model", str(yolox_nano),
                   "--pose-model", "none", "--faces", "yunet", "--models", str(MODELS))
    assert done.returncode == 0, done.stderr
    tracks = VideoTracks.load(out)
    assert all(t.keypoints is None and t.face_landmarks is not None for t in tracks.tracks)
    found = np.mean([~np.isnan(t.face_boxes[:, 0]) for t in tracks.tracks])
    assert found > 0.9


def test_missing_models_fail_fast_with_a_clear_message(saved_conversation, tmp_path):
    _, paths = saved_conversation
    done = run_cli("poses", str(paths["video"]), "--out", str(tmp_path / "t.json"), "--models", str(tmp_path),
                   "--download")
    assert done.returncode == 2
    assert "yolox_l.onnx" in done.stderr and "HF_HUB_OFFLINE" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "t.json").exists()


def test_tracks_get_a_face_identity(saved_conversation, yolox_nano, tmp_path):
    pytest.importorskip("insightface.model_zoo.arcface_onnx")
    from tiny_onnx import export_arcface

    from mit_annotator.vision.faces import FaceIdentity

    _, paths = saved_conversation
    identity = FaceIdentity(export_arcface(tmp_path / "w600k_r50.onnx"), device="cpu")
    tracks = annotate_people(paths["video"], PersonDetector(yolox_nano),
                             face_detector=YuNetFaceDetector(MODELS / "face_detection_yunet.onnx"),
                             face_identity=identity)
    vectors = [t.identity for t in tracks.tracks]
    assert len(vectors) == 3 and all(v is not None and abs(np.linalg.norm(v) - 1) < 1e-4 for v in vectors)
    assert max(float(a @ b) for i, a in enumerate(vectors) for b in vectors[i + 1:]) < 0.999
    again = VideoTracks.load(tracks.save(tmp_path / "tracks.json"))
    np.testing.assert_allclose(again.tracks[0].identity, vectors[0], atol=1e-5)


def test_identity_needs_a_face_detector(saved_conversation, tmp_path):
    _, paths = saved_conversation
    done = run_cli("poses", str(paths["video"]), "--out", str(tmp_path / "t.json"), "--identity")
    assert done.returncode == 2 and "--identity needs a face detector" in done.stderr
