import logging

import cv2
import numpy as np
import pytest
from conftest import SHARED_DATA
from tiny_onnx import cell_box

from mit_annotator.vision.detection import CANVASES, PersonDetector
from mit_annotator.vision.tracking import box_iou

RED, GREEN = (255, 0, 0), (0, 255, 0)


def paint(frame, box, colour):
    x1, y1, x2, y2 = (int(round(v)) for v in box)
    frame[y1:y2, x1:x2] = colour


@pytest.mark.parametrize("height, width", [(832, 832), (624, 1248), (1248, 624)])
def test_letterbox_and_decoding_map_back_to_frame_pixels(tiny_models, height, width):
    detector = PersonDetector(tiny_models["detector"])
    ratio = min(416 / height, 416 / width)
    frame = np.zeros((height, width, 3), np.uint8)
    person, other = cell_box(5, 1, ratio), cell_box(2, 3, ratio)
    paint(frame, person, RED)
    paint(frame, other, GREEN)  # another COCO class: must be dropped
    boxes, scores = detector(frame)
    assert len(boxes) == 1 and scores[0] > 0.99
    np.testing.assert_allclose(boxes[0], person, atol=1.0)


def test_the_input_size_comes_from_the_model(tiny_models):
    detector = PersonDetector(tiny_models["detector_320"])
    assert detector.input_hw == (320, 320)
    frame = np.zeros((640, 640, 3), np.uint8)
    paint(frame, cell_box(3, 4, 0.5), RED)
    boxes, _ = detector(frame)
    np.testing.assert_allclose(boxes, [cell_box(3, 4, 0.5)], atol=1.0)


@pytest.mark.parametrize("shape", [(16, 16), (1, 400), (2160, 3840)])
def test_tiny_and_4k_frames_give_a_result(tiny_models, shape):
    detector = PersonDetector(tiny_models["detector"])
    boxes, scores = detector(np.zeros((*shape, 3), np.uint8))
    assert boxes.shape == (0, 4) and scores.shape == (0,)


def test_many_people_and_thresholds(tiny_models):
    detector = PersonDetector(tiny_models["detector"], score_threshold=0.5)
    frame = np.zeros((416, 416, 3), np.uint8)
    cells = [(1, 1), (4, 1), (7, 1), (10, 1), (1, 6), (4, 6), (7, 6)]
    for cell in cells:
        paint(frame, cell_box(*cell, 1.0), RED)
    boxes, scores = detector(frame)
    assert len(boxes) == len(cells) and (np.diff(scores) <= 0).all()
    assert len(PersonDetector(tiny_models["detector"], score_threshold=0.99999999)(frame)[0]) == 0


def test_a_model_of_the_wrong_kind_is_refused(tiny_models, tmp_path):
    with pytest.raises(ValueError, match="not a YOLOX detector"):
        PersonDetector(tiny_models["pose"])
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not a model")
    with pytest.raises(ValueError, match="junk.onnx: not a usable ONNX model"):
        PersonDetector(junk)
    with pytest.raises(ValueError, match=r"frame must be \(H, W, 3\)"):
        PersonDetector(tiny_models["detector"])(np.zeros((10, 10), np.uint8))


def test_real_yolox_nano_finds_the_people_in_a_photo_like_rtmlib(yolox_nano):
    from rtmlib import YOLOX

    image_path = SHARED_DATA / "images" / "rtmlib_demo.jpg"
    bgr = cv2.imread(str(image_path))
    boxes, scores = PersonDetector(yolox_nano, score_threshold=0.5)(bgr[..., ::-1].copy())
    assert len(boxes) >= 4 and (scores > 0.5).all()
    reference = YOLOX(str(yolox_nano), model_input_size=(416, 416), det_mode="multiclass", score_thr=0.5)
    ref_boxes, classes = reference(bgr)
    people = ref_boxes[classes == 0]
    assert len(people) == len(boxes)
    for box in boxes:  # the same boxes as rtmlib's own pipeline, class 0 only
        assert max(box_iou(box, ref) for ref in people) > 0.99


def test_real_yolox_nano_finds_the_drawn_people(yolox_nano, small_conversation):
    detector = PersonDetector(yolox_nano, score_threshold=0.3)
    found = []
    for frame_index in range(0, small_conversation.spec.num_frames, 25):
        boxes, _ = detector(small_conversation.render_frame(frame_index))
        for track, row in small_conversation.tracks.people_at(frame_index):
            truth = track.boxes[row]
            found.append(max((box_iou(truth, b) for b in boxes), default=0.0) > 0.5)
    assert np.mean(found) > 0.9, np.mean(found)


@pytest.mark.parametrize("height, width, cell, rows_cols", [(360, 640, (12, 6), (288, 416)),
                                                            (1080, 1920, (12, 6), (288, 416)),
                                                            (640, 360, (6, 12), (416, 288)),
                                                            (416, 800, (12, 5), (256, 416))])
def test_a_letterbox_fitted_to_the_frame_finds_what_the_square_finds(tiny_models, height, width, cell, rows_cols):
    square, fit = (PersonDetector(tiny_models["detector"], canvas=canvas) for canvas in CANVASES)
    assert (square.canvas, fit.canvas) == CANVASES == ("square", "fit")
    ratio = min(416 / height, 416 / width)
    frame = np.zeros((height, width, 3), np.uint8)
    person = cell_box(*cell, ratio)  # the last whole cell inside the scaled frame
    # the fit: whole 32 px cells, one of them at least below (beside) the scaled frame, no more than the square
    paint(frame, person, RED)
    assert fit.preprocess(frame)[0].shape == (1, 3, *rows_cols)
    assert square.preprocess(frame)[0].shape == (1, 3, 416, 416)
    for detector in (square, fit):
        boxes, scores = detector(frame)
        assert len(boxes) == 1 and scores[0] > 0.99
        np.testing.assert_allclose(boxes[0], person, atol=1.0)


def test_a_model_with_its_size_written_in_keeps_the_square_input(tiny_models, caplog):
    with caplog.at_level(logging.INFO, logger="mit_annotator"):
        detector = PersonDetector(tiny_models["detector_fixed_size"], canvas="fit")
    assert detector.canvas == "square" and "takes only its 416x416 input" in caplog.text
    frame = np.zeros((360, 640, 3), np.uint8)
    paint(frame, cell_box(12, 6, 0.65), RED)
    assert detector.preprocess(frame)[0].shape == (1, 3, 416, 416)
    np.testing.assert_allclose(detector(frame)[0], [cell_box(12, 6, 0.65)], atol=1.0)
    with pytest.raises(ValueError, match="canvas must be one of square, fit, got 'round'"):
        PersonDetector(tiny_models["detector"], canvas="round")


def test_real_yolox_nano_fitted_to_wide_frames_finds_the_same_people(yolox_nano):
    from mit_annotator.core import media

    square, fit = (PersonDetector(yolox_nano, canvas=canvas) for canvas in CANVASES)
    assert fit.canvas == "fit"
    frames = media.read_frames(SHARED_DATA / "video" / "interact_11.mp4", fps=25)[::20]  # 832x448
    assert fit.preprocess(frames[0])[0].shape == (1, 3, 256, 416)  # 224 rows of picture, one cell of padding
    for frame in frames:
        (boxes, scores), (fitted, fitted_scores) = square(frame), fit(frame)
        assert len(boxes) == len(fitted) == 2
        for box, score in zip(boxes, scores):
            best = int(np.argmax([box_iou(box, other) for other in fitted]))
            assert box_iou(box, fitted[best]) > 0.9 and abs(score - fitted_scores[best]) < 0.05


def test_a_fitted_detector_is_loaded_once(tiny_models, monkeypatch):
    from mit_annotator.vision import detection

    opened = []

    def counted(path, *rest, **options):
        opened.append(path)
        return open_session(path, *rest, **options)

    open_session = detection.open_session
    monkeypatch.setattr(detection, "open_session", counted)
    assert PersonDetector(tiny_models["detector"], canvas="fit").input_hw == (416, 416)
    assert len(opened) == 1  # the square input read from the file, not from a second session
    opened.clear()
    assert PersonDetector(tiny_models["detector_fixed_size"], canvas="fit").canvas == "square"
    assert len(opened) == 2  # the fitted one failed its probe, then the file as it is
