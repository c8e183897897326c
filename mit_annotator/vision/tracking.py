"""Tracking people through a video: stable ids within a shot, never across a cut.

Each frame's detections are matched to the open tracks by the Hungarian algorithm (scipy) on a similarity that
mixes box overlap (IoU against the box predicted from the track's last motion) and keypoint similarity (OKS); a
track missing for a few frames keeps its id when the person comes back (bridging). Optionally, a person lost for
longer inside the same shot is re-identified by the colours of their clothes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np
from scipy.optimize import linear_sum_assignment

from mit_annotator.core.records import Detection, PersonTrack

KEYPOINT_SEEN = 0.3


@dataclass
class TrackerConfig:
    iou_weight: float = 0.5  # the rest goes to keypoint similarity when both sides have keypoints
    min_similarity: float = 0.25  # a pair less similar than this is not a match
    min_iou: float = 0.1  # keypoints alone never match boxes that hardly overlap
    max_missing: int = 25  # frames (1 s at 25 fps) a track may go unseen and still be matched (bridging)
    min_length: int = 5  # a new track is confirmed after this many sightings; shorter ones are dropped as noise
    tentative_max_missing: int = 2  # frames an unconfirmed track may go unseen before it is dropped
    reid: bool = False  # re-identify people lost for longer than max_missing by appearance
    reid_max_gap: int = 75  # frames
    reid_min_similarity: float = 0.8  # histogram correlation of the clothes' colours
    oks_sigma: float = 0.1  # keypoint spread, as a share of the box's scale
    fill_gaps: bool = True  # interpolate boxes and keypoints over gaps of up to max_missing frames


@dataclass
class _OpenTrack:
    track_id: int
    shot: int
    frames: list[int] = field(default_factory=list)
    detections: list[Detection] = field(default_factory=list)
    appearance: np.ndarray | None = None
    missed: int = 0  # frames looked at since the last sighting, in which this track was not found

    @property
    def last(self) -> Detection:
        return self.detections[-1]

    def predicted_box(self, frame: int) -> np.ndarray:
        """The last box moved on by the track's velocity over its last ~10 sightings (short spans are noise)."""
        if len(self.frames) < 2:
            return self.last.box
        back = max(0, len(self.frames) - 10)
        span = self.frames[-1] - self.frames[back]
        velocity = (self.last.box - self.detections[back].box) / span
        return self.last.box + velocity * min(frame - self.frames[-1], 3)

    def add(self, frame: int, detection: Detection, appearance: np.ndarray | None) -> None:
        self.frames.append(frame)
        self.detections.append(detection)
        self.missed = 0
        if appearance is not None:
            self.appearance = appearance if self.appearance is None else 0.8 * self.appearance + 0.2 * appearance


def track_people(detections: list[list[Detection] | None], shots: list[tuple[int, int]] | None = None,
                 config: TrackerConfig | None = None,
                 appearances: list[list[np.ndarray] | None] | None = None) -> list[PersonTrack]:
    """Tracks from per-frame detections (`detections[frame]`); ids start at 0 and never repeat.

    A frame whose detections are None was not looked at (detection at a stride): the tracks wait over it, and a
    new track's patience counts the frames looked at, so it is confirmed after `min_length` sightings whatever
    the stride. Gaps are filled as any other gap.

    `shots`: half-open frame ranges; no track crosses a boundary (default: one shot). `appearances`, per frame
    and detection (see `appearance_descriptor`), enable re-identification when `config.reid` is set.
    """
    config = config or TrackerConfig()
    shots = shots or [(0, len(detections))]
    finished: list[_OpenTrack] = []
    next_id = 0
    for shot_index, (start, end) in enumerate(shots):
        open_tracks: list[_OpenTrack] = []
        lost: list[_OpenTrack] = []
        for frame in range(start, min(end, len(detections))):
            found = detections[frame]
            if found is None:
                continue
            looks = appearances[frame] if appearances is not None else [None] * len(found)
            for track in [t for t in open_tracks if _unseen(t, frame, config) > _patience(t, config)]:
                open_tracks.remove(track)
                if len(track.frames) >= config.min_length:
                    lost.append(track)
            matched = _match(open_tracks, found, frame, config)
            for track in open_tracks:
                track.missed += 1  # reset by `add` for the matched ones
            for t, d in matched:
                open_tracks[t].add(frame, found[d], looks[d])
            for d in sorted(set(range(len(found))) - {d for _, d in matched}):
                revived = _reidentify(lost, looks[d], frame, config) if config.reid else None
                if revived is not None:
                    lost.remove(revived)
                    open_tracks.append(revived)
                    revived.add(frame, found[d], looks[d])
                    continue
                track = _OpenTrack(next_id, shot_index)
                next_id += 1
                track.add(frame, found[d], looks[d])
                open_tracks.append(track)
        finished += open_tracks + lost
    kept = sorted((t for t in finished if len(t.frames) >= config.min_length), key=lambda t: t.track_id)
    for number, track in enumerate(kept):  # ids 0, 1, 2, ... in order of first appearance, no gaps
        track.track_id = number
    return [_to_record(t, config.max_missing if config.fill_gaps else 0) for t in kept]


def _patience(track: _OpenTrack, config: TrackerConfig) -> int:
    return config.max_missing if len(track.frames) >= config.min_length else config.tentative_max_missing


def _unseen(track: _OpenTrack, frame: int, config: TrackerConfig) -> int:
    """A confirmed track's patience is time (frames since its last sighting); a new one's is frames looked at."""
    return frame - track.frames[-1] - 1 if len(track.frames) >= config.min_length else track.missed


def _match(tracks: list[_OpenTrack], found: list[Detection], frame: int,
           config: TrackerConfig) -> list[tuple[int, int]]:
    if not tracks or not found:
        return []
    similarity = np.zeros((len(tracks), len(found)))
    for i, track in enumerate(tracks):
        predicted = track.predicted_box(frame)
        for j, detection in enumerate(found):
            overlap = box_iou(predicted, detection.box)
            if overlap < config.min_iou:
                continue
            oks = keypoint_similarity(track.last, detection, config.oks_sigma)
            similarity[i, j] = overlap if oks is None else (config.iou_weight * overlap +
                                                            (1 - config.iou_weight) * oks)
    rows, cols = linear_sum_assignment(-similarity)
    return [(r, c) for r, c in zip(rows, cols) if similarity[r, c] >= config.min_similarity]


def _reidentify(lost: list[_OpenTrack], appearance: np.ndarray | None, frame: int,
                config: TrackerConfig) -> _OpenTrack | None:
    if appearance is None:
        return None
    best, best_score = None, config.reid_min_similarity
    for track in lost:
        if track.appearance is None or frame - track.frames[-1] > config.reid_max_gap:
            continue
        score = float(cv2.compareHist(track.appearance.astype(np.float32), appearance.astype(np.float32),
                                      cv2.HISTCMP_CORREL))
        if score >= best_score:
            best, best_score = track, score
    return best


def box_iou(a: np.ndarray, b: np.ndarray) -> float:
    width = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    height = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = width * height
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


def keypoint_similarity(a: Detection, b: Detection, sigma: float) -> float | None:
    """OKS-style similarity of two poses over the keypoints both see; None when either has no keypoints."""
    if a.keypoints is None or b.keypoints is None:
        return None
    both = (a.keypoint_scores > KEYPOINT_SEEN) & (b.keypoint_scores > KEYPOINT_SEEN)
    if both.sum() < 3:
        return None
    scale_sq = max((a.box[2] - a.box[0]) * (a.box[3] - a.box[1]), 1.0)
    distance_sq = ((a.keypoints[both] - b.keypoints[both]) ** 2).sum(axis=1)
    return float(np.mean(np.exp(-distance_sq / (2 * scale_sq * sigma ** 2))))


def appearance_descriptor(frame: np.ndarray, box: np.ndarray) -> np.ndarray:
    """A normalised hue-saturation histogram of the middle of a person box (mostly clothes)."""
    x1, y1, x2, y2 = box
    w, h = x2 - x1, y2 - y1
    left, right = int(max(x1 + 0.2 * w, 0)), int(min(x2 - 0.2 * w, frame.shape[1]))
    top, bottom = int(max(y1 + 0.25 * h, 0)), int(min(y1 + 0.75 * h, frame.shape[0]))
    patch = frame[top:max(bottom, top + 1), left:max(right, left + 1)]
    hsv = cv2.cvtColor(np.ascontiguousarray(patch), cv2.COLOR_RGB2HSV)
    histogram = cv2.calcHist([hsv], [0, 1], None, [16, 8], [0, 180, 0, 256]).reshape(-1)
    return histogram / max(float(histogram.sum()), 1.0)


def _to_record(track: _OpenTrack, fill_gaps_up_to: int) -> PersonTrack:
    detections = track.detections
    has_keypoints = all(d.keypoints is not None for d in detections)
    frames = np.asarray(track.frames)
    boxes = np.stack([d.box for d in detections])
    points = np.stack([d.keypoints for d in detections]) if has_keypoints else None
    scores = np.stack([d.keypoint_scores for d in detections]) if has_keypoints else None
    if fill_gaps_up_to and len(frames) > 1:
        frames, boxes, points, scores = _interpolate(frames, boxes, points, scores, fill_gaps_up_to)
    return PersonTrack(track.track_id, frames, boxes, points, scores, shot=track.shot)


def _interpolate(frames, boxes, points, scores, max_gap: int):
    """Linear interpolation over missing runs of up to `max_gap` frames; an interpolated keypoint's score is the
    lower of its two ends' (a point seen at both ends stays seen)."""
    gaps = np.diff(frames) - 1
    filled = [np.arange(a + 1, b) for a, b, g in zip(frames[:-1], frames[1:], gaps) if 0 < g <= max_gap]
    full = np.sort(np.concatenate([frames, *filled])) if filled else frames
    right = np.searchsorted(frames, full)  # the sighting at or after each frame
    left = np.clip(right - 1, 0, len(frames) - 1)
    exact = frames[np.clip(right, 0, len(frames) - 1)] == full
    left = np.where(exact, right, left)
    span = np.maximum(frames[right] - frames[left], 1)
    weight = ((full - frames[left]) / span).astype(np.float32)

    def blend(values):
        shape = (-1,) + (1,) * (values.ndim - 1)
        return values[left] * (1 - weight.reshape(shape)) + values[right] * weight.reshape(shape)

    return (full, blend(boxes), None if points is None else blend(points),
            None if scores is None else np.minimum(scores[left], scores[right]))
