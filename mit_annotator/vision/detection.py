"""Person detection with a YOLOX detector (COCO-80 classes) on ONNX Runtime, keeping class 0 (person).

Works with DWPose's `yolox_l.onnx` and any YOLOX export without NMS inside (one output (1, N, 5 + classes) of
grid-relative predictions), whatever its input size. Frames come in as RGB; YOLOX was trained on BGR.
"""

from __future__ import annotations

import os

import cv2
import numpy as np
from rtmlib.tools.object_detection.post_processings import nms

from mit_annotator.core.models import KNOWN_MODELS, resolve_model
from mit_annotator.core.onnx_session import open_session

PERSON = 0
STRIDES = (8, 16, 32)
PAD_VALUE = 114  # YOLOX's letterbox fill


class PersonDetector:
    def __init__(self, model: str | os.PathLike = "yolox_l", score_threshold: float = 0.5,
                 nms_threshold: float = 0.45, input_size: int = 640, device: str = "auto",
                 models_dir: str | os.PathLike | None = None, download: bool = False):
        path = resolve_model(model, models_dir, download)
        self.session = open_session(path, device)
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        if len(inputs) != 1 or len(inputs[0].shape) != 4 or len(outputs) != 1 or len(outputs[0].shape) != 3:
            raise ValueError(f"{path}: not a YOLOX detector (expected one (1, 3, H, W) input and one "
                             f"(1, N, 5 + classes) output, got {[i.shape for i in inputs]} -> "
                             f"{[o.shape for o in outputs]})")
        height, width = inputs[0].shape[2:]
        self.input_hw = (height if isinstance(height, int) else input_size,
                         width if isinstance(width, int) else input_size)
        known = KNOWN_MODELS.get(str(model))
        self.bgr = known is None or known.colour_order == "BGR"  # YOLOX exports are BGR unless known otherwise
        self.input_name = inputs[0].name
        self.score_threshold = score_threshold
        self.nms_threshold = nms_threshold
        self.grids, self.strides = _grids(self.input_hw)

    def __call__(self, frame: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """People in one RGB frame: boxes (M, 4) x1 y1 x2 y2 in frame pixels, scores (M,), best first."""
        blob, ratio = self.preprocess(frame)
        raw = self.session.run(None, {self.input_name: blob})[0][0]
        return self.postprocess(raw, ratio, frame.shape[:2])

    def preprocess(self, frame: np.ndarray) -> tuple[np.ndarray, float]:
        """Letterbox into the model's input (top-left aligned, as YOLOX was trained), as a (1, 3, H, W) float32."""
        if frame.ndim != 3 or frame.shape[2] != 3:
            raise ValueError(f"frame must be (H, W, 3) RGB, got shape {frame.shape}")
        height, width = self.input_hw
        ratio = min(height / frame.shape[0], width / frame.shape[1])
        resized = cv2.resize(frame, (max(1, int(frame.shape[1] * ratio)), max(1, int(frame.shape[0] * ratio))),
                             interpolation=cv2.INTER_LINEAR)
        if self.bgr:
            resized = cv2.cvtColor(resized, cv2.COLOR_RGB2BGR)
        canvas = np.full((height, width, 3), PAD_VALUE, dtype=np.uint8)
        canvas[:resized.shape[0], :resized.shape[1]] = resized
        return canvas.transpose(2, 0, 1)[None].astype(np.float32), ratio

    def postprocess(self, raw: np.ndarray, ratio: float, frame_hw: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
        if raw.shape[0] != len(self.grids) or raw.shape[1] < 6:
            raise ValueError(f"detector output has shape {raw.shape}; a YOLOX model of input {self.input_hw} "
                             f"gives ({len(self.grids)}, 5 + classes)")
        scores = raw[:, 4] * raw[:, 5 + PERSON]
        keep = scores > self.score_threshold
        if not keep.any():
            return np.zeros((0, 4), np.float32), np.zeros(0, np.float32)
        raw, scores = raw[keep], scores[keep]
        centre = (raw[:, :2] + self.grids[keep]) * self.strides[keep]
        size = np.exp(raw[:, 2:4]) * self.strides[keep]
        boxes = np.concatenate([centre - size / 2, centre + size / 2], axis=1) / ratio
        boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, frame_hw[1])
        boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, frame_hw[0])
        sizable = (boxes[:, 2] - boxes[:, 0] > 1) & (boxes[:, 3] - boxes[:, 1] > 1)
        boxes, scores = boxes[sizable], scores[sizable]
        kept = nms(boxes, scores, self.nms_threshold)
        return boxes[kept].astype(np.float32), scores[kept].astype(np.float32)


def _grids(input_hw: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    grids, strides = [], []
    for stride in STRIDES:
        rows, cols = input_hw[0] // stride, input_hw[1] // stride
        xs, ys = np.meshgrid(np.arange(cols), np.arange(rows))
        grids.append(np.stack([xs, ys], axis=-1).reshape(-1, 2))
        strides.append(np.full((rows * cols, 1), stride))
    return np.concatenate(grids).astype(np.float32), np.concatenate(strides).astype(np.float32)
