"""Detect + whole-body pose speed: this pack's PersonDetector + WholeBodyPose against rtmlib's own Wholebody
pipeline, on the same models and the same frames, in the same run.

The detector is the real YOLOX-Nano (../shared/data/models). DWPose's weights are not available offline, so the
pose model is a random network exported with DWPose's exact signature (input (B, 3, 384, 288), SimCC outputs
(B, 133, 576) and (B, 133, 768)) and a few stride-2 convolutions; pass --pose-model to use the real
dw-ll_ucoco_384.onnx where you have it.

    .venv/bin/python benchmarks/bench_vision.py [--frames 60] [--people 3] [--device cpu|cuda] [--pose-model PATH]
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime
import torch
from torch import nn

from mit_annotator.synthetic import ConversationSpec, default_speech_source, synthesize_conversation
from mit_annotator.vision.detection import PersonDetector
from mit_annotator.vision.people import annotate_frames
from mit_annotator.vision.pose import WholeBodyPose

SHARED_MODELS = Path(__file__).resolve().parents[2] / "shared" / "data" / "models"


class DWPoseShaped(nn.Module):
    """Random weights, DWPose's input and outputs."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 32, 3, 2, 1), nn.SiLU(), nn.Conv2d(32, 64, 3, 2, 1), nn.SiLU(),
            nn.Conv2d(64, 128, 3, 2, 1), nn.SiLU(), nn.Conv2d(128, 256, 3, 2, 1), nn.SiLU(),
            nn.Conv2d(256, 133, 3, 2, 1))  # (B, 133, 12, 9)
        self.to_x = nn.Linear(108, 576)
        self.to_y = nn.Linear(108, 768)

    def forward(self, crops):
        features = self.features(crops).flatten(2)
        return self.to_x(features), self.to_y(features)


def export_pose(path: Path) -> Path:
    torch.onnx.export(DWPoseShaped().eval(), (torch.zeros(1, 3, 384, 288),), str(path), input_names=["input"],
                      output_names=["simcc_x", "simcc_y"], opset_version=17, dynamo=False,
                      dynamic_axes={"input": {0: "batch"}, "simcc_x": {0: "batch"}, "simcc_y": {0: "batch"}})
    return path


def per_frame_seconds(work, frames, runs: int) -> float:
    best = float("inf")
    for _ in range(runs):
        start = time.perf_counter()
        for frame in frames:
            work(frame)
        best = min(best, (time.perf_counter() - start) / len(frames))
    return best


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--people", type=int, default=3)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--det-model", default=str(SHARED_MODELS / "yolox_nano.onnx"))
    parser.add_argument("--pose-model", default=None)
    args = parser.parse_args()

    from rtmlib import Wholebody

    spec = ConversationSpec(num_people=args.people, seconds=args.frames / 25, width=640, height=384, seed=0)
    conversation = synthesize_conversation(spec, default_speech_source())
    frames = [conversation.render_frame(k) for k in range(spec.num_frames)]
    bgr_frames = [np.ascontiguousarray(f[..., ::-1]) for f in frames]
    with tempfile.TemporaryDirectory() as tmp:
        pose_path = args.pose_model or str(export_pose(Path(tmp) / "dwpose_shaped.onnx"))
        detector = PersonDetector(args.det_model, device=args.device)
        pose = WholeBodyPose(pose_path, device=args.device)
        size = detector.input_hw
        reference = Wholebody(det=args.det_model, det_input_size=size, pose=pose_path, pose_input_size=(288, 384),
                              backend="onnxruntime", device=args.device)

        def ours(frame):
            boxes, _ = detector(frame)
            return pose(frame, boxes)

        def full(frame_list):
            annotate_frames(frame_list, 25.0, detector, pose)

        boxes_per_frame = np.mean([len(detector(f)[0]) for f in frames])
        best = {"rtmlib": np.inf, "ours": np.inf, "detect": np.inf, "full": np.inf}
        for _ in range(args.runs):  # interleaved, best of each: the shared machine's noise hits all alike
            best["rtmlib"] = min(best["rtmlib"], per_frame_seconds(reference, bgr_frames, 1))
            best["ours"] = min(best["ours"], per_frame_seconds(ours, frames, 1))
            best["detect"] = min(best["detect"], per_frame_seconds(detector, frames, 1))
            best["full"] = min(best["full"], per_frame_seconds(full, [frames], 1) / len(frames))
        rtmlib_s, ours_s, detect_s, full_s = best["rtmlib"], best["ours"], best["detect"], best["full"]

    print(f"machine: {platform.machine()}, {onnxruntime.get_device()} onnxruntime {onnxruntime.__version__} "
          f"({args.device}), {torch.get_num_threads()} torch threads")
    print(f"frames: {len(frames)} synthetic 640x384, {args.people} people, {boxes_per_frame:.1f} boxes per frame; "
          f"detector {Path(args.det_model).name} at {size[1]}x{size[0]}; pose {Path(pose_path).name}\n")
    print("| pipeline | ms per frame | frames/s | vs rtmlib |")
    print("|---|---|---|---|")
    print(f"| rtmlib Wholebody (baseline) | {1000 * rtmlib_s:.1f} | {1 / rtmlib_s:.1f} | 1.00 |")
    print(f"| ours: detect + pose | {1000 * ours_s:.1f} | {1 / ours_s:.1f} | {ours_s / rtmlib_s:.2f} |")
    print(f"| ours: detect only | {1000 * detect_s:.1f} | {1 / detect_s:.1f} | |")
    print(f"| ours: full pass (+ shots, tracking, face boxes) | {1000 * full_s:.1f} | {1 / full_s:.1f} | "
          f"{full_s / rtmlib_s:.2f} |")


if __name__ == "__main__":
    main()
