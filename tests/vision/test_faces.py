import numpy as np
import pytest
from conftest import MODELS

from mit_annotator.vision.faces import Face, YuNetFaceDetector, match_faces


@pytest.fixture(scope="module")
def yunet():
    path = MODELS / "face_detection_yunet.onnx"
    if not path.is_file():
        pytest.skip("YuNet model not in shared data")
    return YuNetFaceDetector(path)


def test_yunet_finds_the_drawn_faces_with_mouth_landmarks(yunet, speech):
    from mit_annotator.synthetic import ConversationSpec, synthesize_conversation

    c = synthesize_conversation(ConversationSpec(num_people=3, seconds=2.0, seed=4), speech)
    hits = []
    for frame_index in (0, 20, 40):
        faces = yunet(c.render_frame(frame_index))
        for track, row in c.tracks.people_at(frame_index):
            x1, y1, x2, y2 = track.face_boxes[row]
            inside = [f for f in faces if x1 <= f.landmarks[3, 0] <= x2 and y1 <= f.landmarks[3, 1] <= y2]
            hits.append(len(inside) == 1)
    assert np.mean(hits) >= 0.9


def test_faces_go_to_the_person_they_belong_to():
    people = np.array([[0, 0, 100, 300], [200, 0, 300, 300]], np.float32)
    hints = np.full((2, 4), np.nan, np.float32)
    face_b = Face(np.array([220, 20, 280, 90], np.float32), np.zeros((5, 2)), 0.9)
    face_a = Face(np.array([20, 10, 80, 80], np.float32), np.zeros((5, 2)), 0.8)
    far = Face(np.array([500, 500, 540, 540], np.float32), np.zeros((5, 2)), 0.99)
    assert match_faces(people, hints, [face_b, far, face_a]) == [face_a, face_b]
    assert match_faces(people, hints, [far]) == [None, None]
    assert match_faces(np.zeros((0, 4)), np.zeros((0, 4)), [face_a]) == []


def test_bad_face_model(tmp_path):
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not a model")
    with pytest.raises(ValueError, match="not a YuNet face model|not an ONNX model"):
        YuNetFaceDetector(junk)


@pytest.mark.parametrize("location", ["../outside/weights.bin", "weights.bin"])
def test_a_face_model_with_external_data_is_refused_before_opencv_reads_it(tmp_path, monkeypatch, location):
    """OpenCV once followed a model's external-data reference out of the model folder (it read /etc/passwd's bytes
    as weights). A face model must be one self-contained file; the reference is refused, wherever it points, before
    OpenCV is given the model."""
    import onnx

    source = MODELS / "face_detection_yunet.onnx"
    if not source.is_file():
        pytest.skip("YuNet model not in shared data")
    model = onnx.load(source)
    tensor = max(model.graph.initializer, key=lambda t: len(t.raw_data))
    tensor.ClearField("raw_data")
    tensor.data_location = onnx.TensorProto.EXTERNAL
    tensor.external_data.add(key="location", value=location)
    folder = tmp_path / "models"
    folder.mkdir()
    (tmp_path / "outside").mkdir()
    for target in (folder / "weights.bin", tmp_path / "outside" / "weights.bin"):
        target.write_bytes(b"\0" * 10**6)
    onnx.save(model, folder / "yunet.onnx")
    created = []
    monkeypatch.setattr("cv2.FaceDetectorYN.create", lambda *args: created.append(args))
    with pytest.raises(ValueError, match=f"yunet.onnx: its weights \\({tensor.name}, ...\\) are in external files; a "
                                         "face model must be one self-contained .onnx file"):
        YuNetFaceDetector(folder / "yunet.onnx")
    assert created == []
    monkeypatch.undo()
    assert YuNetFaceDetector(source)(np.zeros((96, 128, 3), np.uint8)) == []  # the released file still loads


@pytest.fixture(scope="module")
def insightface_models(tmp_path_factory):
    pytest.importorskip("insightface.model_zoo.scrfd")
    from tiny_onnx import export_arcface, export_scrfd

    folder = tmp_path_factory.mktemp("insightface")
    return export_scrfd(folder / "det_10g.onnx"), export_arcface(folder / "w600k_r50.onnx")


def test_scrfd_faces_come_back_in_frame_pixels_with_landmarks(insightface_models):
    from tiny_onnx import TinySCRFD

    from mit_annotator.vision.faces import ScrfdFaceDetector

    detector = ScrfdFaceDetector(insightface_models[0], device="cpu")
    frame = np.zeros((640, 640, 3), np.uint8)
    frame[96:128, 160:192] = 255  # stride-32 cell (5, 3)
    frame[320:352, 448:480] = 255  # cell (14, 10)
    faces = detector(frame)
    assert len(faces) == 2
    boxes = sorted(tuple(f.box.round()) for f in faces)
    assert boxes == [(160, 96, 192, 128), (448, 320, 480, 352)]
    face = min(faces, key=lambda f: f.box[0])
    expected = np.array(TinySCRFD.LANDMARKS) * 32 + (160, 96)
    np.testing.assert_allclose(face.landmarks, expected, atol=0.5)
    assert detector(np.zeros((480, 640, 3), np.uint8)) == []


def test_identity_embeddings_tell_people_apart(insightface_models, small_conversation):
    from mit_annotator.core import keypoints as kp
    from mit_annotator.vision.faces import FaceIdentity

    identity = FaceIdentity(insightface_models[1], device="cpu")
    c = small_conversation

    def face_of(track, row):  # the 5 landmarks from the drawn face's keypoints
        points = track.keypoints[row]
        five = np.stack([points[[60, 61, 62, 63, 64, 65]].mean(0), points[[66, 67, 68, 69, 70, 65]].mean(0),
                         points[53], points[kp.MOUTH_CORNER_IMAGE_LEFT], points[kp.MOUTH_CORNER_IMAGE_RIGHT]])
        return Face(track.face_boxes[row], five.astype(np.float32), 1.0)

    embeddings = {}
    for frame in (10, 120):
        image = c.render_frame(frame)
        for track, row in c.tracks.people_at(frame):
            embeddings[(track.track_id, frame)] = identity.embed(image, face_of(track, row))
    for vector in embeddings.values():
        assert np.linalg.norm(vector) == pytest.approx(1.0, abs=1e-5)
    for person in range(c.spec.num_people):
        same = embeddings[(person, 10)] @ embeddings[(person, 120)]
        others = [embeddings[(person, 10)] @ embeddings[(other, 120)]
                  for other in range(c.spec.num_people) if other != person]
        assert same > max(others), (person, same, others)


def test_insightface_missing_gives_a_clear_error(monkeypatch, tmp_path):
    import sys

    from mit_annotator.vision.faces import ScrfdFaceDetector

    monkeypatch.setitem(sys.modules, "insightface.model_zoo.scrfd", None)
    with pytest.raises(RuntimeError, match="needs insightface.*pip install --no-deps insightface"):
        ScrfdFaceDetector(tmp_path / "det_10g.onnx")
