"""Whole-body pose (133 COCO-WholeBody keypoints) with DWPose, or any RTMPose-style SimCC model, on ONNX Runtime.

Each person box is cropped by rtmlib's top-down affine (box widened by 1.25, fitted to the model's aspect ratio),
normalised with ImageNet's mean and std, and the SimCC outputs are decoded by rtmlib back to frame pixels. Crops
run as one batch when the model's batch axis is dynamic, one at a time otherwise.
"""

from __future__ import annotations

import os

import numpy as np
from rtmlib.tools.pose_estimation.post_processings import get_simcc_maximum
from rtmlib.tools.pose_estimation.pre_processings import bbox_xyxy2cs, top_down_affine

from mit_annotator.core.keypoints import NUM_KEYPOINTS
from mit_annotator.core.models import KNOWN_MODELS, resolve_model
from mit_annotator.core.onnx_session import open_session

MEAN = np.array([123.675, 116.28, 103.53], dtype=np.float32)  # RGB, mmpose's ImageNet statistics
STD = np.array([58.395, 57.12, 57.375], dtype=np.float32)
BOX_PADDING = 1.25  # mmpose's top-down default


class WholeBodyPose:
    def __init__(self, model: str | os.PathLike = "dwpose", device: str = "auto",
                 models_dir: str | os.PathLike | None = None, download: bool = False, max_batch: int = 16):
        path = resolve_model(model, models_dir, download)
        self.session = open_session(path, device)
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        shape = inputs[0].shape if len(inputs) == 1 else []
        if len(shape) != 4 or len(outputs) != 2 or not all(isinstance(v, int) for v in shape[2:]):
            raise ValueError(f"{path}: not a SimCC pose model (expected one (B, 3, H, W) input of fixed H, W and "
                             f"two outputs, got {[i.shape for i in inputs]} -> {[o.shape for o in outputs]})")
        self.input_name = inputs[0].name
        self.input_wh = (shape[3], shape[2])
        self.path = path
        self._check_keypoints(outputs[0].shape[1])  # a symbolic count is checked on the first run
        self.dynamic_batch = not isinstance(shape[0], int)
        self.batch = max_batch if self.dynamic_batch else shape[0]
        known = KNOWN_MODELS.get(str(model))
        self.rgb = known is None or known.colour_order == "RGB"

    def __call__(self, frame: np.ndarray, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Keypoints (M, 133, 2) in frame pixels and their scores (M, 133) for M person boxes in an RGB frame."""
        boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
        if len(boxes) == 0:
            return np.zeros((0, NUM_KEYPOINTS, 2), np.float32), np.zeros((0, NUM_KEYPOINTS), np.float32)
        image = frame if self.rgb else frame[..., ::-1]
        crops, centres, scales = [], [], []
        for box in boxes:
            centre, scale = bbox_xyxy2cs(box, padding=BOX_PADDING)
            crop, scale = top_down_affine(self.input_wh, scale, centre, image)
            crops.append(((crop - MEAN) / STD).transpose(2, 0, 1))
            centres.append(centre)
            scales.append(scale)
        simcc_x, simcc_y = self._infer(np.stack(crops).astype(np.float32))
        self._check_keypoints(simcc_x.shape[1])
        split = simcc_x.shape[2] / self.input_wh[0]  # SimCC bins per input pixel (2 for DWPose)
        locations, scores = get_simcc_maximum(simcc_x, simcc_y)
        keypoints = locations / split / np.asarray(self.input_wh, np.float32)
        keypoints = keypoints * np.stack(scales)[:, None] + (np.stack(centres) - np.stack(scales) / 2)[:, None]
        return keypoints.astype(np.float32), scores.astype(np.float32)

    def _check_keypoints(self, count) -> None:
        if isinstance(count, int) and count != NUM_KEYPOINTS:
            raise ValueError(f"{self.path}: predicts {count} keypoints; the annotator needs a {NUM_KEYPOINTS}-point "
                             "whole-body model such as DWPose")

    def _infer(self, crops: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        xs, ys = [], []
        for start in range(0, len(crops), self.batch):
            chunk = crops[start:start + self.batch]
            if len(chunk) < self.batch and not self.dynamic_batch:  # a fixed batch is filled up
                chunk = np.concatenate([chunk, np.zeros((self.batch - len(chunk), *chunk.shape[1:]), chunk.dtype)])
            x, y = self.session.run(None, {self.input_name: chunk})
            count = min(self.batch, len(crops) - start)
            xs.append(x[:count])
            ys.append(y[:count])
        return np.concatenate(xs), np.concatenate(ys)

