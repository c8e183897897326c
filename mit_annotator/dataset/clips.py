"""Clip selection by the MIT paper's rules: which stretches of a tracked video become dataset clips.

Candidates are the runs of frames within a shot with the same people on screen; each rule is a named setting of
`SelectionConfig`, and a candidate that breaks one is kept as a rejection with its reasons. The rules, with the
paper's values and ours, are in docs/dataset-layout.md.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from mit_annotator.core import keypoints as kp
from mit_annotator.core.records import Diarization, SpeakingActivity, VideoTracks

PEOPLE_COUNT, TOO_SHORT, FACE_SIZE, FACE_RATIO, OCCLUSION, CAMERA_MOTION = (
    "people_count", "too_short", "face_size", "face_ratio", "occlusion", "camera_motion")
RULES = (PEOPLE_COUNT, TOO_SHORT, FACE_SIZE, FACE_RATIO, OCCLUSION, CAMERA_MOTION)
VISIBILITY_POINTS = np.concatenate([[kp.LEFT_SHOULDER, kp.RIGHT_SHOULDER], np.arange(kp.FACE.start, kp.FACE.stop)])


@dataclass(frozen=True)
class SelectionConfig:
    people: tuple[int, ...] = (2, 3, 4)  # paper: clips of 2, 3 or 4 people
    min_seconds: float = 5.0  # paper: at least 125 frames at 25 fps
    max_seconds: float = 15.0  # ours: longer runs are cut into equal clips no longer than this
    min_face_px_1080p: float = 64.0  # paper: mean face area at least 64 x 64 px at 1080p
    min_face_area_ratio: float = 0.5  # paper: smallest mean face area / largest > 0.5
    max_occluded_share: float = 0.2  # ours: share of frames a person may be hidden in
    min_keypoint_score: float = 0.3  # ours: DWPose's visibility threshold, for face and shoulder keypoints
    max_camera_motion: float = 0.02  # ours: background motion in frame widths per second (median over the clip)

    def __post_init__(self):
        object.__setattr__(self, "people", tuple(sorted({int(n) for n in self.people})))
        if not self.people or min(self.people) < 1:
            raise ValueError(f"people counts must be at least 1, got {self.people}")
        if self.min_seconds <= 0 or self.max_seconds < 2 * self.min_seconds:
            raise ValueError(f"need min_seconds > 0 and max_seconds >= 2 * min_seconds (so that a long run cuts "
                             f"into clips no shorter than the minimum), got {self.min_seconds} and "
                             f"{self.max_seconds}")
        for name in ("min_face_px_1080p", "min_face_area_ratio", "max_occluded_share", "max_camera_motion"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative, got {getattr(self, name)}")


@dataclass(eq=False)
class Candidate:
    """A stretch of one shot with a fixed set of people: a clip when `reasons` is empty, else a rejection."""

    start: int
    end: int  # exclusive
    track_ids: tuple[int, ...]
    shot: int
    reasons: list[str] = field(default_factory=list)  # rule names, in RULES order
    details: list[str] = field(default_factory=list)  # one line per reason
    measures: dict[str, Any] = field(default_factory=dict)

    @property
    def accepted(self) -> bool:
        return not self.reasons

    @property
    def frames(self) -> int:
        return self.end - self.start

    def reject(self, rule: str, detail: str) -> None:
        self.reasons.append(rule)
        self.details.append(detail)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["track_ids"] = list(self.track_ids)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Candidate:
        return cls(int(data["start"]), int(data["end"]), tuple(data["track_ids"]), int(data["shot"]),
                   list(data.get("reasons", [])), list(data.get("details", [])), dict(data.get("measures", {})))


def select_clips(tracks: VideoTracks, motion: np.ndarray | None = None,
                 config: SelectionConfig | None = None) -> list[Candidate]:
    """Every candidate of the video, in time order (accepted ones and rejections); `motion`: background motion per
    frame in source pixels (see `motion.background_motion`; None: not measured)."""
    config = config or SelectionConfig()
    fps = tracks.fps
    min_frames = int(math.ceil(config.min_seconds * fps - 1e-9))
    max_frames = int(math.floor(config.max_seconds * fps + 1e-9))
    candidates = []
    for shot, (shot_start, shot_end) in enumerate(tracks.shots or [(0, tracks.num_frames)]):
        for start, end, ids in _runs(tracks, shot_start, shot_end):
            if len(ids) not in config.people:
                candidate = Candidate(start, end, ids, shot)
                candidate.reject(PEOPLE_COUNT, f"{len(ids)} people on screen; clips need "
                                               f"{' or '.join(map(str, config.people))}")
                candidates.append(candidate)
                continue
            if end - start < min_frames:
                candidate = Candidate(start, end, ids, shot)
                candidate.reject(TOO_SHORT, f"{end - start} frames together; clips need at least {min_frames} "
                                            f"({config.min_seconds:g} s)")
                candidates.append(candidate)
                continue
            for piece_start, piece_end in split_run(start, end, max_frames):
                candidates.append(check_candidate(tracks, Candidate(piece_start, piece_end, ids, shot), motion,
                                                  config))
    return candidates


def split_run(start: int, end: int, max_frames: int) -> list[tuple[int, int]]:
    """[start, end) cut into the fewest equal pieces no longer than `max_frames`."""
    count = max(1, math.ceil((end - start) / max_frames))
    bounds = [start + round(k * (end - start) / count) for k in range(count + 1)]
    return list(zip(bounds[:-1], bounds[1:]))


def check_candidate(tracks: VideoTracks, candidate: Candidate, motion: np.ndarray | None,
                    config: SelectionConfig) -> Candidate:
    """Measure the face, occlusion and camera-motion rules on `candidate` and record every one it breaks."""
    scale = tracks.height / 1080.0
    frames = np.arange(candidate.start, candidate.end)
    areas, hidden = [], []
    for track_id in candidate.track_ids:
        track = tracks.track(track_id)
        rows = np.searchsorted(track.frames, frames)
        faces = track.face_boxes[rows] if track.face_boxes is not None else np.full((len(rows), 4), np.nan)
        known = ~np.isnan(faces).any(axis=1)
        sizes = (faces[known, 2] - faces[known, 0]) * (faces[known, 3] - faces[known, 1])
        areas.append(float(np.mean(sizes)) if known.any() else 0.0)
        unseen = ~known
        if track.keypoints is not None:
            visible = track.keypoint_scores[rows][:, VISIBILITY_POINTS].mean(axis=1)
            unseen |= visible < config.min_keypoint_score
        hidden.append(float(unseen.mean()))
    candidate.measures.update(
        face_px_1080p=[round(math.sqrt(a) / scale, 2) for a in areas],
        face_area_ratio=round(min(areas) / max(areas), 4) if max(areas) > 0 else 0.0,
        occluded_share=[round(h, 4) for h in hidden])
    least = config.min_face_px_1080p * scale
    small = [t for t, a in zip(candidate.track_ids, areas) if a < least * least]
    if small:
        candidate.reject(FACE_SIZE, f"faces of {small} smaller on average than {config.min_face_px_1080p:g}x"
                                    f"{config.min_face_px_1080p:g} px at 1080p ({least:.1f} px here)")
    if candidate.measures["face_area_ratio"] <= config.min_face_area_ratio:
        candidate.reject(FACE_RATIO, f"smallest face area is {candidate.measures['face_area_ratio']:.2f} of the "
                                     f"largest; clips need more than {config.min_face_area_ratio:g}")
    occluded = [t for t, h in zip(candidate.track_ids, hidden) if h > config.max_occluded_share]
    if occluded:
        candidate.reject(OCCLUSION, f"people {occluded} hidden in more than {config.max_occluded_share:.0%} of "
                                    "the frames")
    speed = clip_camera_motion(motion, candidate.start, candidate.end, tracks.fps, tracks.width)
    candidate.measures["camera_motion"] = None if speed is None else round(speed, 5)
    if speed is not None and speed > config.max_camera_motion:
        candidate.reject(CAMERA_MOTION, f"the background moves {speed:.3f} frame widths per second; at most "
                                        f"{config.max_camera_motion:g} allowed")
    return candidate


def clip_camera_motion(motion: np.ndarray | None, start: int, end: int, fps: float, width: int) -> float | None:
    """Median background motion over frames [start + 1, end) in frame widths per second; None when fewer than half
    of them were measured (or nothing was)."""
    if motion is None:
        return None
    values = np.asarray(motion[start + 1:end], dtype=np.float64)
    seen = values[~np.isnan(values)]
    if len(seen) == 0 or len(seen) < len(values) / 2:
        return None
    return float(np.median(seen)) * fps / width


def _runs(tracks: VideoTracks, start: int, end: int) -> list[tuple[int, int, tuple[int, ...]]]:
    """Maximal runs [a, b) of frames in [start, end) with one non-empty set of people on screen."""
    present = np.zeros((len(tracks.tracks), max(end - start, 0)), dtype=bool)
    for k, track in enumerate(tracks.tracks):
        inside = track.frames[(track.frames >= start) & (track.frames < end)]
        present[k, inside - start] = True
    runs, run_start = [], 0
    for offset in range(1, present.shape[1] + 1):
        if offset == present.shape[1] or not np.array_equal(present[:, offset], present[:, run_start]):
            ids = tuple(tracks.tracks[k].track_id for k in np.flatnonzero(present[:, run_start]))
            if ids:
                runs.append((start + run_start, start + offset, ids))
            run_start = offset
    return runs


@dataclass(eq=False)
class ClipAnnotation:
    """An accepted clip with its records, all counted in clip-local frames from 0."""

    candidate: Candidate
    tracks: VideoTracks
    speaking: SpeakingActivity
    diarization: Diarization
    audio: np.ndarray  # 16 kHz mono, the clip's stretch of the recording
