import numpy as np
import pytest
import torch
from tiny_onnx import TinyPose

from mit_annotator.vision.pose import WholeBodyPose


def frame_with_dots(dots, shape=(400, 600)):
    frame = np.zeros((*shape, 3), np.uint8)
    for x, y in dots:
        frame[y - 1:y + 2, x - 1:x + 2] = 255
    return frame


def test_simcc_decoding_maps_keypoints_back_to_the_frame(tiny_models):
    pose = WholeBodyPose(tiny_models["pose"])
    dots = [(300, 200), (100, 100), (520, 330)]
    boxes = np.array([[250, 140, 360, 260], [40, 50, 170, 160], [470, 250, 590, 390]], np.float32)
    keypoints, scores = pose(frame_with_dots(dots), boxes)
    assert keypoints.shape == (3, 133, 2) and scores.shape == (3, 133)
    for person, dot in enumerate(dots):
        np.testing.assert_allclose(keypoints[person], np.tile(dot, (133, 1)), atol=1.6)
    assert (scores > 0.5).all()


def test_batched_and_one_by_one_agree(tiny_models):
    batched, single = WholeBodyPose(tiny_models["pose"], max_batch=2), WholeBodyPose(tiny_models["pose_fixed"])
    assert batched.dynamic_batch and not single.dynamic_batch and single.batch == 1
    frame = frame_with_dots([(300, 200), (100, 100), (520, 330)])
    boxes = np.array([[250, 140, 360, 260], [40, 50, 170, 160], [470, 250, 590, 390]], np.float32)
    np.testing.assert_allclose(batched(frame, boxes)[0], single(frame, boxes)[0], atol=1e-4)


def test_no_boxes_and_boxes_at_the_edge(tiny_models):
    pose = WholeBodyPose(tiny_models["pose"])
    keypoints, scores = pose(frame_with_dots([(5, 5)]), np.zeros((0, 4)))
    assert keypoints.shape == (0, 133, 2) and scores.shape == (0, 133)
    keypoints, _ = pose(frame_with_dots([(5, 5)]), np.array([[-20, -20, 30, 30]]))
    np.testing.assert_allclose(keypoints[0, 0], (5, 5), atol=1.6)


def test_a_model_with_other_keypoints_is_refused(tmp_path, tiny_models):
    class Body17(TinyPose):
        def forward(self, crops):
            x, y = super().forward(crops)
            return x[:, :17], y[:, :17]

    path = tmp_path / "body17.onnx"
    torch.onnx.export(Body17(), (torch.zeros(1, 3, 256, 192),), str(path), input_names=["input"],
                      output_names=["simcc_x", "simcc_y"], opset_version=17, dynamo=False)
    with pytest.raises(ValueError, match="predicts 17 keypoints"):
        WholeBodyPose(path)
    with pytest.raises(ValueError, match="not a SimCC pose model"):
        WholeBodyPose(tiny_models["detector"])
