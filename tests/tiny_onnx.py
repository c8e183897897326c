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
    """(1, 3, H, W) BGR 0..255 -> (1, N, 85): raw YOLOX predictions over strides 8, 16 and 32."""

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
            offsets = torch.full_like(red, 0.5)
            log_size = torch.zeros_like(red)  # exp(0) * stride: boxes one cell wide
            rest = torch.zeros((1, 78, *red.shape[1:]), dtype=images.dtype)
            cell = torch.cat([offsets[:, None], offsets[:, None], log_size[:, None], log_size[:, None],
                              objectness[:, None], person[:, None], other[:, None], rest], dim=1)
            outputs.append(cell.reshape(1, 85, cells).transpose(1, 2))
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


def export_detector(path: Path, size: int = 416) -> Path:
    torch.onnx.export(TinyYOLOX(), (torch.zeros(1, 3, size, size),), str(path), input_names=["images"],
                      output_names=["output"], opset_version=17, dynamo=False)
    return path


def export_pose(path: Path, dynamic_batch: bool = True, height: int = 384, width: int = 288) -> Path:
    axes = {"input": {0: "batch"}, "simcc_x": {0: "batch"}, "simcc_y": {0: "batch"}} if dynamic_batch else None
    torch.onnx.export(TinyPose(), (torch.zeros(1, 3, height, width),), str(path), input_names=["input"],
                      output_names=["simcc_x", "simcc_y"], dynamic_axes=axes, opset_version=17, dynamo=False)
    return path


def cell_box(cell_x: int, cell_y: int, ratio: float) -> tuple[float, float, float, float]:
    """The frame box that the letterbox maps onto stride-32 cell (cell_x, cell_y)."""
    return tuple(v / ratio for v in (32 * cell_x, 32 * cell_y, 32 * (cell_x + 1), 32 * (cell_y + 1)))


