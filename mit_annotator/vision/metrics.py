"""Scores for the annotator's stages against ground truth (CLEAR-MOT for tracking)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment

from mit_annotator.core.records import Diarization, PersonSpeaking, PersonTrack, SpeakingActivity
from mit_annotator.vision.tracking import box_iou


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


# ---------------------------------------------------------------------------------------------------------------------
# Diarization error rate


@dataclass
class DiarizationScore:
    total: float  # seconds of reference speech (overlaps counted per speaker)
    missed: float
    false_alarm: float
    confusion: float

    @property
    def der(self) -> float:
        """(missed + false alarm + confusion) / reference speech."""
        return (self.missed + self.false_alarm + self.confusion) / self.total if self.total > 0 else 0.0


def diarization_error(reference: Diarization, hypothesis: Diarization, collar: float = 0.0,
                      skip_overlap: bool = False) -> DiarizationScore:
    """DER as NIST md-eval and pyannote.metrics count it, with the speaker mapping that maximises overlap.

    `collar`: seconds around each reference turn boundary left out of scoring, half on each side (pyannote's
    meaning: 0.5 leaves out 0.25 s before and after each boundary);
    `skip_overlap`: leave out the regions where the reference has more than one speaker.
    """
    bounds = sorted({0.0, *(t.start for t in reference.turns + hypothesis.turns),
                     *(t.end for t in reference.turns + hypothesis.turns)})
    ref_speakers, hyp_speakers = reference.speakers, hypothesis.speakers
    half = collar / 2
    excluded = [(b - half, b + half) for t in reference.turns for b in (t.start, t.end)] if collar > 0 else []
    bounds = sorted(set(bounds) | {max(0.0, b) for span in excluded for b in span})
    overlap = np.zeros((len(ref_speakers), len(hyp_speakers)))
    pieces = []
    for start, end in zip(bounds[:-1], bounds[1:]):
        duration = end - start
        middle = (start + end) / 2
        if duration <= 0 or any(a < middle < b for a, b in excluded):
            continue
        active_ref = [i for i, s in enumerate(ref_speakers) if _speaks(reference, s, middle)]
        if skip_overlap and len(active_ref) > 1:
            continue
        active_hyp = [j for j, s in enumerate(hyp_speakers) if _speaks(hypothesis, s, middle)]
        for i in active_ref:
            for j in active_hyp:
                overlap[i, j] += duration
        pieces.append((duration, active_ref, active_hyp))
    mapping = {}
    if overlap.size:
        rows, cols = linear_sum_assignment(-overlap)
        mapping = {j: i for i, j in zip(rows, cols) if overlap[i, j] > 0}
    total = missed = false_alarm = confusion = 0.0
    for duration, active_ref, active_hyp in pieces:
        n_ref, n_hyp = len(active_ref), len(active_hyp)
        correct = sum(1 for j in active_hyp if mapping.get(j) in active_ref)
        total += n_ref * duration
        missed += max(0, n_ref - n_hyp) * duration
        false_alarm += max(0, n_hyp - n_ref) * duration
        confusion += (min(n_ref, n_hyp) - correct) * duration
    return DiarizationScore(total, missed, false_alarm, confusion)


def _speaks(diarization: Diarization, speaker: str, time: float) -> bool:
    return any(t.speaker == speaker and t.start <= time < t.end for t in diarization.turns)


def speaking_f1(predicted: SpeakingActivity, truth: SpeakingActivity,
                person_map: dict[int, int] | None = None) -> float:
    """Frame-level F1 of "this person is speaking" (score > 0) over everyone; `person_map` maps predicted track
    ids to truth track ids (default: the same ids)."""
    tp = fp = fn = 0
    for person in predicted.people:
        truth_id = (person_map or {}).get(person.track_id, person.track_id)
        speaking = person.scores > 0
        actual = truth.person(truth_id).scores > 0
        n = min(len(speaking), len(actual))
        tp += int((speaking[:n] & actual[:n]).sum())
        fp += int((speaking[:n] & ~actual[:n]).sum())
        fn += int((~speaking[:n] & actual[:n]).sum())
    return 2 * tp / max(2 * tp + fp + fn, 1)


def speaking_frames(person: PersonSpeaking, num_frames: int) -> np.ndarray:
    """(num_frames,) bool: the frames inside the person's speak segments."""
    frames = np.zeros(num_frames, dtype=bool)
    for start, end in person.speak:
        frames[start:end] = True
    return frames


@dataclass
class FrameScore:
    f1: float  # of "speaking" (1.0 when neither the truth nor the prediction has any)
    accuracy: float  # share of frames where speaking / not speaking is right


def frame_score(predicted: np.ndarray, actual: np.ndarray) -> FrameScore:
    """Frame-level F1 and accuracy of two (frames,) bool arrays of "speaking"."""
    predicted, actual = np.asarray(predicted, bool), np.asarray(actual, bool)
    if predicted.shape != actual.shape:
        raise ValueError(f"{predicted.shape[0]} predicted frames for {actual.shape[0]} true ones")
    tp, fp = int((predicted & actual).sum()), int((predicted & ~actual).sum())
    fn = int((~predicted & actual).sum())
    f1 = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 1.0
    return FrameScore(f1, float((predicted == actual).mean()) if len(actual) else 1.0)


def voice_mapping(hypothesis: Diarization, reference: Diarization) -> dict[str, str]:
    """Each hypothesis speaker -> the reference speaker it overlaps most (for checking assignments)."""
    mapping = {}
    for speaker in hypothesis.speakers:
        overlap = {r: sum(max(0.0, min(a.end, b.end) - max(a.start, b.start))
                          for a in hypothesis.turns if a.speaker == speaker
                          for b in reference.turns if b.speaker == r) for r in reference.speakers}
        if overlap and max(overlap.values()) > 0:
            mapping[speaker] = max(overlap, key=overlap.get)
    return mapping
