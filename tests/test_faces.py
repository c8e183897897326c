import numpy as np
import pytest
from conftest import MODELS

from mit_annotator.faces import Face, YuNetFaceDetector, match_faces


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
    with pytest.raises(ValueError, match="not a YuNet face model"):
        YuNetFaceDetector(junk)
