"""Person detection with a YOLOX detector (COCO-80 classes) on ONNX Runtime, keeping class 0 (person).

Works with DWPose's `yolox_l.onnx` and any YOLOX export without NMS inside (one output (1, N, 5 + classes) of
grid-relative predictions), whatever its input size. Frames come in as RGB; YOLOX was trained on BGR.

The letterbox is the model's square input ("square"), or that square cut to the frame's shape in whole stride-32
cells ("fit": a 16:9 frame fills 234 of YOLOX-Nano's 416 rows, and of the 182 rows of padding below it only 54 are
computed; the frame is scaled as for the square). The fit keeps at least one cell of padding below (or beside) the
frame: cut flush, the network's zero padding meets the picture's edge, which YOLOX never saw in training, and
YOLOX-Nano lost drawn people standing on the bottom edge (MOTA 0.827 -> 0.734 on the synthetic conversations;
BENCHMARKS.md).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import cv2
import numpy as np
from rtmlib.tools.object_detection.post_processings import nms

from mit_annotator.core.models import KNOWN_MODELS, resolve_model
from mit_annotator.core.onnx_session import open_session

log = logging.getLogger("mit_annotator")

PERSON = 0
STRIDES = (8, 16, 32)
PAD_VALUE = 114  # YOLOX's letterbox fill
CANVASES = ("square", "fit")


class PersonDetector:
    def __init__(self, model: str | os.PathLike = "yolox_l", score_threshold: float = 0.5,
                 nms_threshold: float = 0.45, input_size: int = 640, device: str = "auto",
                 models_dir: str | os.PathLike | None = None, download: bool = False, canvas: str = "square"):
        if canvas not in CANVASES:
            raise ValueError(f"canvas must be one of {', '.join(CANVASES)}, got {canvas!r}")
        path = resolve_model(model, models_dir, download)
        fitted = _any_size_session(path, device, input_size) if canvas == "fit" else None
        self.session = fitted[0] if fitted else open_session(path, device)
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        if len(inputs) != 1 or len(inputs[0].shape) != 4 or len(outputs) != 1 or len(outputs[0].shape) != 3:
            raise ValueError(f"{path}: not a YOLOX detector (expected one (1, 3, H, W) input and one "
                             f"(1, N, 5 + classes) output, got {[i.shape for i in inputs]} -> "
                             f"{[o.shape for o in outputs]})")
        height, width = fitted[1] if fitted else inputs[0].shape[2:]
        self.input_hw = (height if isinstance(height, int) else input_size,
                         width if isinstance(width, int) else input_size)
        known = KNOWN_MODELS.get(str(model))
        self.bgr = known is None or known.colour_order == "BGR"  # YOLOX exports are BGR unless known otherwise
        self.input_name = inputs[0].name
        self.score_threshold = score_threshold
        self.nms_threshold = nms_threshold
        self._grids_by_canvas = {self.input_hw: _grids(self.input_hw)}
        self.canvas = "fit" if fitted else "square"
        if canvas == "fit" and not fitted:
            log.info("[mit_annotator] %s takes only its %dx%d input: frames are letterboxed into the square",
                     Path(path).name, self.input_hw[1], self.input_hw[0])

    def __call__(self, frame: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """People in one RGB frame: boxes (M, 4) x1 y1 x2 y2 in frame pixels, scores (M,), best first."""
        blob, ratio = self.preprocess(frame)
        raw = self.session.run(None, {self.input_name: blob})[0][0]
        return self.postprocess(raw, ratio, frame.shape[:2], blob.shape[2:])

    def preprocess(self, frame: np.ndarray) -> tuple[np.ndarray, float]:
        """Letterbox into the model's input, or its fit to the frame (top-left aligned, as YOLOX was trained), as a
        (1, 3, H, W) float32."""
        if frame.ndim != 3 or frame.shape[2] != 3:
            raise ValueError(f"frame must be (H, W, 3) RGB, got shape {frame.shape}")
        height, width = self.input_hw
        ratio = min(height / frame.shape[0], width / frame.shape[1])
        resized = cv2.resize(frame, (max(1, int(frame.shape[1] * ratio)), max(1, int(frame.shape[0] * ratio))),
                             interpolation=cv2.INTER_LINEAR)
        if self.bgr:
            resized = cv2.cvtColor(resized, cv2.COLOR_RGB2BGR)
        if self.canvas == "fit":  # whole cells, and at least one cell of padding where the square has some
            cell = STRIDES[-1]
            height, width = (min(side, -(-(got + cell) // cell) * cell)
                             for side, got in ((height, resized.shape[0]), (width, resized.shape[1])))
        canvas = np.full((height, width, 3), PAD_VALUE, dtype=np.uint8)
        canvas[:resized.shape[0], :resized.shape[1]] = resized
        return canvas.transpose(2, 0, 1)[None].astype(np.float32), ratio

    def postprocess(self, raw: np.ndarray, ratio: float, frame_hw: tuple[int, int],
                    canvas_hw: tuple[int, int] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Boxes and scores in frame pixels from the raw output for a letterbox of `canvas_hw` (default: the model's
        input)."""
        canvas_hw = tuple(canvas_hw or self.input_hw)
        if canvas_hw not in self._grids_by_canvas:
            self._grids_by_canvas[canvas_hw] = _grids(canvas_hw)
        grids, strides = self._grids_by_canvas[canvas_hw]
        if raw.shape[0] != len(grids) or raw.shape[1] < 6:
            raise ValueError(f"detector output has shape {raw.shape}; a YOLOX model of input {canvas_hw} "
                             f"gives ({len(grids)}, 5 + classes)")
        scores = raw[:, 4] * raw[:, 5 + PERSON]
        keep = scores > self.score_threshold
        if not keep.any():
            return np.zeros((0, 4), np.float32), np.zeros(0, np.float32)
        raw, scores = raw[keep], scores[keep]
        centre = (raw[:, :2] + grids[keep]) * strides[keep]
        size = np.exp(raw[:, 2:4]) * strides[keep]
        boxes = np.concatenate([centre - size / 2, centre + size / 2], axis=1) / ratio
        boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, frame_hw[1])
        boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, frame_hw[0])
        sizable = (boxes[:, 2] - boxes[:, 0] > 1) & (boxes[:, 3] - boxes[:, 1] > 1)
        boxes, scores = boxes[sizable], scores[sizable]
        kept = nms(boxes, scores, self.nms_threshold)
        return boxes[kept].astype(np.float32), scores[kept].astype(np.float32)


def _any_size_session(path: Path, device: str, input_size: int):
    """A session of the model at `path` with its input's height and width left free, and the square input they had
    (`input_size` where the file leaves them free already); None where its graph does not allow it: YOLOX's own
    exports reshape each level to (1, 85, -1) and upsample by a scale, so one export runs at any size a multiple of
    32; an export with the cell counts written in does not (a run on a canvas of another shape fails). One session
    either way: a large detector is not loaded twice."""
    import onnx
    import onnxruntime as ort

    quiet = ort.RunOptions()
    quiet.log_severity_level = 4  # the probe's failure is an answer, not an error to print
    try:
        model = onnx.load(str(path))
        dims = model.graph.input[0].type.tensor_type.shape.dim
        square = (dims[2].dim_value or input_size, dims[3].dim_value or input_size)
        probe = (max(STRIDES[-1], square[0] // 2 // STRIDES[-1] * STRIDES[-1]), square[1])
        dims[2].dim_param, dims[3].dim_param = "height", "width"
        model.graph.output[0].type.tensor_type.shape.dim[1].dim_param = "anchors"
        del model.graph.value_info[:]  # shapes inferred at the square input
        session = open_session(model.SerializeToString(), device, name=f"{Path(path).name} (input fitted to frames)")
        session.run(None, {session.get_inputs()[0].name: np.zeros((1, 3, *probe), np.float32)}, quiet)
    except Exception:  # onnx's and onnxruntime's own error types: the graph fixes the input's size somewhere
        return None
    return session, square


def _grids(input_hw: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    grids, strides = [], []
    for stride in STRIDES:
        rows, cols = input_hw[0] // stride, input_hw[1] // stride
        xs, ys = np.meshgrid(np.arange(cols), np.arange(rows))
        grids.append(np.stack([xs, ys], axis=-1).reshape(-1, 2))
        strides.append(np.full((rows * cols, 1), stride))
    return np.concatenate(grids).astype(np.float32), np.concatenate(strides).astype(np.float32)
