"""Scores for the annotator's stages against ground truth (CLEAR-MOT for tracking)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment

from .records import PersonTrack
from .tracking import box_iou


@dataclass
class TrackingScore:
    ground_truth: int  # person-frames in the truth
    matches: int
    misses: int  # truth person-frames with no tracked box
    false_positives: int  # tracked boxes with no truth
    id_switches: int  # a truth person's matched track id changed

    @property
    def mota(self) -> float:
        """1 - (misses + false positives + id switches) / truth person-frames."""
        return 1.0 - (self.misses + self.false_positives + self.id_switches) / max(self.ground_truth, 1)


def score_tracking(predicted: list[PersonTrack], truth: list[PersonTrack], num_frames: int,
                   min_iou: float = 0.5) -> TrackingScore:
    """CLEAR-MOT counts: per frame, boxes are matched one-to-one by IoU (Hungarian), then identities compared."""
    last_match: dict[int, int] = {}
    total = matches = misses = false_positives = switches = 0
    for frame in range(num_frames):
        gt = [(t.track_id, t.boxes[r]) for t in truth if (r := t.row_of(frame)) is not None]
        pr = [(t.track_id, t.boxes[r]) for t in predicted if (r := t.row_of(frame)) is not None]
        total += len(gt)
        pairs = []
        if gt and pr:
            iou = np.array([[box_iou(g, p) for _, p in pr] for _, g in gt])
            rows, cols = linear_sum_assignment(-iou)
            pairs = [(r, c) for r, c in zip(rows, cols) if iou[r, c] >= min_iou]
        matches += len(pairs)
        misses += len(gt) - len(pairs)
        false_positives += len(pr) - len(pairs)
        for r, c in pairs:
            truth_id, predicted_id = gt[r][0], pr[c][0]
            if truth_id in last_match and last_match[truth_id] != predicted_id:
                switches += 1
            last_match[truth_id] = predicted_id
    return TrackingScore(total, matches, misses, false_positives, switches)
