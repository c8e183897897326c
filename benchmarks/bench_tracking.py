"""Tracking quality (CLEAR-MOT) on synthetic conversations.

1. The tracker alone, fed detections made from the ground truth, clean and degraded (box jitter, keypoint noise,
   dropped detections, occlusion gaps, clutter), for 2, 3 and 4 people.
2. The whole vision pass with the real YOLOX-Nano detector on the rendered and encoded video (boxes only: DWPose's
   weights are not available offline).

    .venv/bin/python benchmarks/bench_tracking.py [--seeds 3]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

from mit_annotator.synthetic import ConversationSpec, default_speech_source, synthesize_conversation
from mit_annotator.vision.detection import PersonDetector
from mit_annotator.vision.metrics import score_tracking
from mit_annotator.vision.people import annotate_people
from mit_annotator.vision.tracking import track_people

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from test_tracking import detections_from_truth  # noqa: E402  (the same degradations the tests use)

SHARED_MODELS = Path(__file__).resolve().parents[2] / "shared" / "data" / "models"
CONDITIONS = {
    "clean": {},
    "jitter 3 px, keypoints 2 px": dict(box_noise=3.0, point_noise=2.0),
    "+ 10% dropped, 2 clutter boxes/frame": dict(box_noise=3.0, point_noise=2.0, drop=0.1, clutter=2),
    "+ 0.4 s occlusion of one person": dict(box_noise=3.0, point_noise=2.0, drop=0.1, clutter=2,
                                            gaps=[(0, 50, 60)]),
}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args()
    speech = default_speech_source()
    print("| people | condition | MOTA | misses | false positives | id switches |")
    print("|---|---|---|---|---|---|")
    for people in (2, 3, 4):
        conversations = [synthesize_conversation(ConversationSpec(num_people=people, seconds=8.0, width=320 * people // 2,
                                                                  height=192, seed=seed), speech)
                         for seed in range(args.seeds)]
        for name, degradation in CONDITIONS.items():
            totals = np.zeros(4)
            for seed, c in enumerate(conversations):
                found = detections_from_truth(c, np.random.default_rng(seed), **degradation)
                score = score_tracking(track_people(found), c.tracks.tracks, c.tracks.num_frames)
                totals += [score.ground_truth, score.misses, score.false_positives, score.id_switches]
            mota = 1 - totals[1:].sum() / totals[0]
            print(f"| {people} | {name} | {mota:.3f} | {int(totals[1])} | {int(totals[2])} | {int(totals[3])} |")

    print("\n| people | whole pass: YOLOX-Nano on the encoded 640x384 video | MOTA | misses | false positives | "
          "id switches |")
    print("|---|---|---|---|---|---|")
    for threshold in (0.5, 0.35):
        detector = PersonDetector(SHARED_MODELS / "yolox_nano.onnx", score_threshold=threshold)
        for people in (2, 3, 4):
            totals = np.zeros(4)
            for seed in range(args.seeds):
                c = synthesize_conversation(ConversationSpec(num_people=people, seconds=8.0, width=640, height=384,
                                                             seed=seed), speech)
                with tempfile.TemporaryDirectory() as tmp:
                    tracks = annotate_people(c.save(tmp)["video"], detector)
                score = score_tracking(tracks.tracks, c.tracks.tracks, c.tracks.num_frames)
                totals += [score.ground_truth, score.misses, score.false_positives, score.id_switches]
            mota = 1 - totals[1:].sum() / totals[0]
            print(f"| {people} | detection threshold {threshold}, {args.seeds} videos of 8 s | {mota:.3f} | "
                  f"{int(totals[1])} | {int(totals[2])} | {int(totals[3])} |")

if __name__ == "__main__":
    main()
