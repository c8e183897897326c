"""Tiny ONNX models with the real input/output signatures of the annotator's models, built and exported here.

Their outputs are designed so that the right answer is known: the detector finds pure red squares that fill one
stride-32 cell (green ones are another COCO class), and the pose model puts every keypoint on the brightest spot.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F


class TinyYOLOX(nn.Module):
    """(1, 3, H, W) BGR 0..255 -> (1, N, 85): raw YOLOX predictions over strides 8, 16 and 32. `any_size`: the graph
    runs at any input size, as YOLOX's own exports do; else its cell counts are written in at the export's size."""

    def __init__(self, any_size: bool = True):
        super().__init__()
        self.any_size = any_size

    def forward(self, images):
        outputs = []
        for stride in (8, 16, 32):
            pooled = F.avg_pool2d(images, stride)  # (1, 3, h, w)
            blue, green, red = pooled[:, 0], pooled[:, 1], pooled[:, 2]
            cells = pooled.shape[2] * pooled.shape[3]
            colour = torch.maximum(red, green) - blue
            objectness = torch.sigmoid(0.2 * (colour - 200.0)) * (1.0 if stride == 32 else 0.0)
            person = torch.sigmoid((red - green) / 10.0)
            other = torch.sigmoid((green - red) / 10.0)
            log_size = red * 0.0  # exp(0) * stride: boxes one cell wide (from the input: the tracer would write
            offsets = log_size + 0.5  # zeros_like's shape in)
            rest = (log_size[:, None].repeat(1, 78, 1, 1) if self.any_size
                    else torch.zeros((1, 78, *red.shape[1:]), dtype=images.dtype))
            cell = torch.cat([offsets[:, None], offsets[:, None], log_size[:, None], log_size[:, None],
                              objectness[:, None], person[:, None], other[:, None], rest], dim=1)
            outputs.append(cell.reshape(1, 85, -1 if self.any_size else cells).transpose(1, 2))
        return torch.cat(outputs, dim=1)


class TinyPose(nn.Module):
    """(B, 3, H, W) normalised RGB -> SimCC x (B, 133, 2W) and y (B, 133, 2H) peaking at the brightest spot."""

    def forward(self, crops):
        brightness = crops.mean(dim=1)  # (B, H, W)
        along_x = torch.sigmoid(brightness.amax(dim=1))  # (B, W)
        along_y = torch.sigmoid(brightness.amax(dim=2))  # (B, H)
        simcc_x = along_x.repeat_interleave(2, dim=1)[:, None].expand(-1, 133, -1)
        simcc_y = along_y.repeat_interleave(2, dim=1)[:, None].expand(-1, 133, -1)
        return simcc_x.contiguous(), simcc_y.contiguous()


def export_detector(path: Path, size: int = 416, any_size: bool = True) -> Path:
    torch.onnx.export(TinyYOLOX(any_size), (torch.zeros(1, 3, size, size),), str(path), input_names=["images"],
                      output_names=["output"], opset_version=17, dynamo=False,
                      do_constant_folding=not any_size)  # folding writes the export's shapes in
    return path


def export_pose(path: Path, dynamic_batch: bool = True, height: int = 384, width: int = 288) -> Path:
    axes = {"input": {0: "batch"}, "simcc_x": {0: "batch"}, "simcc_y": {0: "batch"}} if dynamic_batch else None
    torch.onnx.export(TinyPose(), (torch.zeros(1, 3, height, width),), str(path), input_names=["input"],
                      output_names=["simcc_x", "simcc_y"], dynamic_axes=axes, opset_version=17, dynamo=False)
    return path


def cell_box(cell_x: int, cell_y: int, ratio: float) -> tuple[float, float, float, float]:
    """The frame box that the letterbox maps onto stride-32 cell (cell_x, cell_y)."""
    return tuple(v / ratio for v in (32 * cell_x, 32 * cell_y, 32 * (cell_x + 1), 32 * (cell_y + 1)))




class TinySCRFD(nn.Module):
    """(1, 3, 640, 640) normalised RGB -> SCRFD's 9 outputs (scores, box distances, landmarks for strides 8, 16,
    32; two anchors per cell): a face fills each white stride-32 cell."""

    LANDMARKS = ((0.3, 0.35), (0.7, 0.35), (0.5, 0.55), (0.35, 0.75), (0.65, 0.75))  # in cell units

    def __init__(self):
        super().__init__()
        self.register_buffer("landmark_row", torch.tensor([[v for xy in self.LANDMARKS for v in xy]]))

    def forward(self, blob):
        scores, boxes, landmarks = [], [], []
        for stride in (8, 16, 32):
            pooled = F.avg_pool2d(blob, stride).mean(dim=1).reshape(-1, 1)  # (cells, 1)
            score = torch.sigmoid(20.0 * (pooled - 0.9)) * (1.0 if stride == 32 else 0.0)
            box = torch.cat([torch.zeros_like(pooled)] * 2 + [torch.ones_like(pooled)] * 2, dim=1)
            points = torch.ones_like(pooled) * self.landmark_row  # (cells, 10)
            scores.append(score.repeat_interleave(2, dim=0))
            boxes.append(box.repeat_interleave(2, dim=0))
            landmarks.append(points.repeat_interleave(2, dim=0))
        return (*scores, *boxes, *landmarks)


class TinyArcFace(nn.Module):
    """(1, 3, 112, 112) -> (1, 512): a fixed random projection of the face's pooled colours."""

    def __init__(self):
        super().__init__()
        generator = torch.Generator().manual_seed(0)
        self.projection = nn.Parameter(torch.randn(48, 512, generator=generator), requires_grad=False)

    def forward(self, crops):
        pooled = F.adaptive_avg_pool2d(crops, 4).reshape(crops.shape[0], 48)
        return pooled @ self.projection


def export_scrfd(path: Path) -> Path:
    names = [f"{kind}_{stride}" for kind in ("score", "bbox", "kps") for stride in (8, 16, 32)]
    torch.onnx.export(TinySCRFD(), (torch.zeros(1, 3, 640, 640),), str(path), input_names=["input.1"],
                      output_names=names, opset_version=17, dynamo=False)
    return path


def export_arcface(path: Path) -> Path:
    torch.onnx.export(TinyArcFace(), (torch.zeros(1, 3, 112, 112),), str(path), input_names=["input.1"],
                      output_names=["embedding"], opset_version=17, dynamo=False)
    return path
