"""The shared data model: the typed records that flow between the annotator's stages, CovOG and the nodes.

Frames are indices into the video at its (constant) processing frame rate; ranges are half-open [start, end).
Boxes are (x1, y1, x2, y2) in source pixels. Every document saves as versioned JSON: {"format", "version", ...}.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mit_annotator.core.documents import (
    FormatError,
    array_from_json,
    checked_array,
    envelope,
    field_errors,
    json_numbers,
    load_json,
    open_envelope,
    optional_checked_array,
    save_json,
    write_text_atomic,
)
from mit_annotator.core.keypoints import NUM_KEYPOINTS
from mit_annotator.core.segments import MERGE_SHORTER_THAN_S, speak_listen_segments

PROCESSING_FPS = 25.0  # the rate the annotator counts frames at: the MIT dataset's
SAMPLE_RATE = 16000  # Hz: the audio every stage reads, and the clips' audio (the MIT dataset's: 16 kHz mono)
COORD_DECIMALS = 2  # 0.01 px: JSON stays compact, and a save -> load -> save is exact
SCORE_DECIMALS = 4

# What a record may hold: beyond these a file is crafted or broken, and reading it would plan unbounded work.
MAX_FPS = 1000.0
MAX_SIDE = 16384  # px
MAX_FRAMES = 10_000_000  # 4.6 days at 25 fps
MAX_SECONDS = 1_000_000.0  # 11.6 days


# ---------------------------------------------------------------------------------------------------------------------
# Detections and tracks


@dataclass
class Detection:
    """One person found in one frame, before tracking."""

    frame: int
    box: np.ndarray  # (4,) float32
    score: float
    keypoints: np.ndarray | None = None  # (133, 2) float32
    keypoint_scores: np.ndarray | None = None  # (133,) float32

    def __post_init__(self):
        self.box = checked_array(self.box, (4,), "box", finite=True)
        self.keypoints = optional_checked_array(self.keypoints, (NUM_KEYPOINTS, 2), "keypoints")
        self.keypoint_scores = optional_checked_array(self.keypoint_scores, (NUM_KEYPOINTS,), "keypoint_scores")


@dataclass(eq=False)
class PersonTrack:
    """One person followed through a shot: a row per frame where the person is seen."""

    track_id: int
    frames: np.ndarray  # (N,) int64, strictly increasing
    boxes: np.ndarray  # (N, 4) float32
    keypoints: np.ndarray | None = None  # (N, 133, 2) float32
    keypoint_scores: np.ndarray | None = None  # (N, 133) float32, the pose model's real confidences
    face_boxes: np.ndarray | None = None  # (N, 4) float32, NaN rows where no face was found
    shot: int | None = None
    face_landmarks: np.ndarray | None = None  # (N, 5, 2) from a face detector (eyes, nose, mouth corners); NaN rows
    identity: np.ndarray | None = None  # (D,) unit-length face embedding (ArcFace), to find a person across shots

    def __post_init__(self):
        self.frames = np.asarray(self.frames, dtype=np.int64).reshape(-1)
        n = len(self.frames)
        if n and np.any(np.diff(self.frames) <= 0):
            raise ValueError(f"track {self.track_id}: frames must be strictly increasing")
        self.boxes = checked_array(self.boxes, (n, 4), f"track {self.track_id} boxes", finite=True)
        self.keypoints = optional_checked_array(self.keypoints, (n, NUM_KEYPOINTS, 2),
                                                f"track {self.track_id} keypoints")
        self.keypoint_scores = optional_checked_array(
            self.keypoint_scores, (n, NUM_KEYPOINTS), f"track {self.track_id} keypoint_scores")
        if (self.keypoints is None) != (self.keypoint_scores is None):
            raise ValueError(f"track {self.track_id}: keypoints and keypoint_scores come together")
        self.face_boxes = optional_checked_array(self.face_boxes, (n, 4), f"track {self.track_id} face_boxes")
        self.face_landmarks = optional_checked_array(self.face_landmarks, (n, 5, 2),
                                                     f"track {self.track_id} face_landmarks")
        if self.identity is not None:
            self.identity = np.asarray(self.identity, dtype=np.float32).reshape(-1)

    def __len__(self) -> int:
        return len(self.frames)

    def row_of(self, frame: int) -> int | None:
        """The row holding `frame`, or None when the person is not seen in it."""
        row = int(np.searchsorted(self.frames, frame))
        return row if row < len(self.frames) and self.frames[row] == frame else None

    def select(self, rows: np.ndarray, frames: np.ndarray, shot: int | None) -> PersonTrack:
        """The track's `rows` (indices or a mask) as a new track whose rows are seen at `frames`."""
        def cut(values):
            return None if values is None else values[rows]

        return PersonTrack(self.track_id, frames, self.boxes[rows], cut(self.keypoints), cut(self.keypoint_scores),
                           cut(self.face_boxes), shot, cut(self.face_landmarks), self.identity)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"track_id": self.track_id, "shot": self.shot, "frames": self.frames.tolist(),
                               "boxes": json_numbers(self.boxes, COORD_DECIMALS)}
        if self.keypoints is not None:
            out["keypoints"] = json_numbers(self.keypoints, COORD_DECIMALS)
            out["keypoint_scores"] = json_numbers(self.keypoint_scores, SCORE_DECIMALS)
        if self.face_boxes is not None:
            out["face_boxes"] = json_numbers(self.face_boxes, COORD_DECIMALS)
        if self.face_landmarks is not None:
            out["face_landmarks"] = json_numbers(self.face_landmarks, COORD_DECIMALS)
        if self.identity is not None:
            out["identity"] = json_numbers(self.identity, 5)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PersonTrack:
        n = len(data["frames"])
        return cls(
            track_id=int(data["track_id"]), frames=data["frames"],
            boxes=array_from_json(data["boxes"], (n, 4)),
            keypoints=array_from_json(data.get("keypoints"), (n, NUM_KEYPOINTS, 2)),
            keypoint_scores=array_from_json(data.get("keypoint_scores"), (n, NUM_KEYPOINTS)),
            face_boxes=array_from_json(data.get("face_boxes"), (n, 4)),
            shot=data.get("shot"),
            face_landmarks=array_from_json(data.get("face_landmarks"), (n, 5, 2)),
            identity=data.get("identity"),
        )


@dataclass(eq=False)
class VideoTracks:
    """Everyone tracked in one video: the document `poses` writes and every later stage reads."""

    width: int
    height: int
    fps: float
    num_frames: int
    tracks: list[PersonTrack] = field(default_factory=list)
    shots: list[tuple[int, int]] = field(default_factory=list)  # half-open frame ranges
    source: str | None = None

    FORMAT = "mit_annotator.tracks"

    def __post_init__(self):
        check_video_numbers(self.width, self.height, self.fps, self.num_frames)
        ids = [t.track_id for t in self.tracks]
        if len(set(ids)) != len(ids):
            raise ValueError(f"track ids must be unique, got {ids}")
        for track in self.tracks:
            if len(track) and (track.frames[0] < 0 or track.frames[-1] >= self.num_frames):
                raise ValueError(f"track {track.track_id} has frames outside 0..{self.num_frames - 1}")
        self.shots = [(int(s), int(e)) for s, e in self.shots]

    def track(self, track_id: int) -> PersonTrack:
        for t in self.tracks:
            if t.track_id == track_id:
                return t
        raise KeyError(f"no track with id {track_id}; ids are {[t.track_id for t in self.tracks]}")

    def people_at(self, frame: int) -> list[tuple[PersonTrack, int]]:
        """(track, row) for every person seen in `frame`, in track order."""
        found = []
        for t in self.tracks:
            row = t.row_of(frame)
            if row is not None:
                found.append((t, row))
        return found

    def clip(self, start: int, end: int, track_ids: Iterable[int]) -> VideoTracks:
        """The tracks of `track_ids` over frames [start, end), counted from 0, as one shot."""
        kept = []
        for track_id in track_ids:
            track = self.track(track_id)
            rows = (track.frames >= start) & (track.frames < end)
            kept.append(track.select(rows, track.frames[rows] - start, 0))
        return VideoTracks(self.width, self.height, self.fps, end - start, kept, [(0, end - start)], self.source)

    def at_rate(self, rate: float) -> VideoTracks:
        """The tracks counted at `rate`: frame j holds what the source frame nearest in time holds."""
        if abs(self.fps - rate) < 1e-6:
            return self
        picks = nearest_frames(self.num_frames, self.fps, rate)
        kept = []
        for track in self.tracks:
            rows = np.array([-1 if (row := track.row_of(int(f))) is None else row for f in picks], np.int64)
            seen = np.flatnonzero(rows >= 0)
            kept.append(track.select(rows[seen], seen, track.shot))
        shots = [(int(np.searchsorted(picks, s)), int(np.searchsorted(picks, e))) for s, e in self.shots]
        return VideoTracks(self.width, self.height, rate, len(picks), kept, shots, self.source)

    def to_dict(self) -> dict[str, Any]:
        return envelope(self.FORMAT, {
            "source": self.source, "width": self.width, "height": self.height, "fps": self.fps,
            "num_frames": self.num_frames, "shots": [list(s) for s in self.shots],
            "tracks": [t.to_dict() for t in self.tracks]})

    @classmethod
    def from_dict(cls, data: dict[str, Any], origin: str = "tracks") -> VideoTracks:
        body = open_envelope(data, cls.FORMAT, origin)
        with field_errors(origin):
            return cls(width=int(body["width"]), height=int(body["height"]), fps=float(body["fps"]),
                       num_frames=int(body["num_frames"]),
                       tracks=[PersonTrack.from_dict(t) for t in body["tracks"]],
                       shots=[tuple(s) for s in body.get("shots", [])], source=body.get("source"))

    def save(self, path: str | os.PathLike) -> Path:
        return save_json(self.to_dict(), path)

    @classmethod
    def load(cls, path: str | os.PathLike) -> VideoTracks:
        return cls.from_dict(load_json(path), origin=str(path))


# ---------------------------------------------------------------------------------------------------------------------
# Who speaks when


@dataclass(frozen=True)
class SpeakerTurn:
    speaker: str
    start: float  # seconds
    end: float

    def __post_init__(self):
        if not (MAX_SECONDS >= self.end >= self.start >= 0):  # NaN fails every comparison
            raise ValueError(f"speaker turn of {self.speaker!r} has start {self.start} and end {self.end} (0 <= start "
                             f"<= end <= {MAX_SECONDS:g} s)")

    @property
    def duration(self) -> float:
        return self.end - self.start


@dataclass(eq=False)
class Diarization:
    """Speaker turns of one recording, as pyannote's RTTM holds them."""

    turns: list[SpeakerTurn] = field(default_factory=list)
    uri: str = "recording"

    FORMAT = "mit_annotator.diarization"

    def __post_init__(self):
        self.turns = sorted(self.turns, key=lambda t: (t.start, t.end, t.speaker))

    @property
    def speakers(self) -> list[str]:
        return sorted({t.speaker for t in self.turns})

    def activity(self, speaker: str, fps: float, num_frames: int) -> np.ndarray:
        """Share of each frame's interval [k/fps, (k+1)/fps) covered by `speaker`'s turns, in 0..1."""
        covered = np.zeros(num_frames, dtype=np.float64)
        for turn in self.turns:
            if turn.speaker != speaker:
                continue
            first, last = int(turn.start * fps), min(num_frames - 1, int(math.ceil(turn.end * fps)) - 1)
            for k in range(max(first, 0), last + 1):
                covered[k] += max(0.0, min(turn.end, (k + 1) / fps) - max(turn.start, k / fps)) * fps
        return np.clip(covered, 0.0, 1.0).astype(np.float32)

    def clip(self, start: float, end: float) -> Diarization:
        """The turns inside [start, end) seconds, cut to it and counted from its start."""
        turns = [SpeakerTurn(t.speaker, max(t.start, start) - start, min(t.end, end) - start)
                 for t in self.turns if t.end > start and t.start < end]
        return Diarization([t for t in turns if t.end > t.start], uri=self.uri)

    def to_rttm(self) -> str:
        uri = self.uri.replace(" ", "_")
        return "".join(f"SPEAKER {uri} 1 {t.start:.3f} {t.duration:.3f} <NA> <NA> {t.speaker} <NA> <NA>\n"
                       for t in self.turns)

    @classmethod
    def from_rttm(cls, text: str, origin: str = "rttm") -> Diarization:
        turns, uris = [], set()
        for number, line in enumerate(text.splitlines(), 1):
            parts = line.split()
            if not parts or parts[0].startswith("#"):
                continue
            if parts[0] != "SPEAKER" or len(parts) < 8:
                raise FormatError(f"{origin}, line {number}: not an RTTM SPEAKER line: {line!r}")
            try:
                start, duration = float(parts[3]), float(parts[4])
            except ValueError:
                raise FormatError(f"{origin}, line {number}: onset and duration must be numbers: {line!r}") from None
            uris.add(parts[1])
            try:
                turns.append(SpeakerTurn(parts[7], start, start + duration))
            except ValueError as error:
                raise FormatError(f"{origin}, line {number}: {error}") from None
        return cls(turns, uri=uris.pop() if len(uris) == 1 else "recording")

    def save_rttm(self, path: str | os.PathLike) -> Path:
        return write_text_atomic(path, self.to_rttm())

    @classmethod
    def load_rttm(cls, path: str | os.PathLike) -> Diarization:
        return cls.from_rttm(Path(path).read_text(), origin=str(path))

    def to_dict(self) -> dict[str, Any]:
        return envelope(self.FORMAT, {"uri": self.uri, "turns": [
            {"speaker": t.speaker, "start": round(t.start, 3), "end": round(t.end, 3)} for t in self.turns]})

    @classmethod
    def from_dict(cls, data: dict[str, Any], origin: str = "diarization") -> Diarization:
        body = open_envelope(data, cls.FORMAT, origin)
        with field_errors(origin):
            return cls([SpeakerTurn(t["speaker"], float(t["start"]), float(t["end"])) for t in body["turns"]],
                       uri=body.get("uri", "recording"))


@dataclass(eq=False)
class PersonSpeaking:
    """One on-screen person's speaking activity: what CovOG's audio driver is conditioned on."""

    track_id: int
    scores: np.ndarray  # (num_frames,) float32; positive while speaking, like TalkNet's scores
    voice: str | None = None  # the diarized speaker assigned to this person; None for a pure listener
    speak: list[tuple[int, int]] = field(default_factory=list)  # half-open frame ranges
    listen: list[tuple[int, int]] = field(default_factory=list)
    evidence: str | None = None  # what the scores rest on: "active_speaker", "lips", "own_audio"; None: given

    def __post_init__(self):
        self.scores = np.asarray(self.scores, dtype=np.float32).reshape(-1)
        if np.isinf(self.scores).any():  # NaN is a frame nobody scored (the person unseen)
            raise ValueError(f"person {self.track_id} has infinite speaking scores")
        self.speak = [(int(s), int(e)) for s, e in self.speak]
        self.listen = [(int(s), int(e)) for s, e in self.listen]


@dataclass(eq=False)
class SpeakingActivity:
    """Per-person speaking scores and segments for one clip or video, and the voices left off screen."""

    fps: float
    num_frames: int
    people: list[PersonSpeaking] = field(default_factory=list)
    unassigned_voices: list[str] = field(default_factory=list)  # off-screen speakers, narrators

    FORMAT = "mit_annotator.speaking"

    def __post_init__(self):
        check_rate_and_length(self.fps, self.num_frames)
        for person in self.people:
            if len(person.scores) != self.num_frames:
                raise ValueError(f"person {person.track_id} has {len(person.scores)} speaking scores "
                                 f"for {self.num_frames} frames")
            for start, end in person.speak + person.listen:
                if not 0 <= start < end <= self.num_frames:
                    raise ValueError(f"person {person.track_id} has the segment [{start}, {end}) outside the "
                                     f"{self.num_frames} frames (0 <= start < end <= frames)")

    def person(self, track_id: int) -> PersonSpeaking:
        for p in self.people:
            if p.track_id == track_id:
                return p
        raise KeyError(f"no person with track id {track_id}; ids are {[p.track_id for p in self.people]}")

    def at_rate(self, fps: float, num_frames: int) -> SpeakingActivity:
        """The activity counted at `fps` over `num_frames` frames: each frame takes the score of the frame nearest in
        time; speak/listen segments recomputed by the same rules (the merged variant, as the assignment makes them)."""
        if abs(self.fps - fps) < 1e-6 and self.num_frames == num_frames:
            return self
        picks = np.clip(np.round(np.arange(num_frames) * self.fps / fps).astype(np.int64), 0, self.num_frames - 1)
        people = []
        for person in self.people:
            scores = person.scores[picks]
            speak, listen = speak_listen_segments(scores, fps, merge_shorter_than=MERGE_SHORTER_THAN_S)
            people.append(PersonSpeaking(person.track_id, scores, person.voice, speak, listen, person.evidence))
        return SpeakingActivity(fps, num_frames, people, list(self.unassigned_voices))

    def to_dict(self) -> dict[str, Any]:
        return envelope(self.FORMAT, {
            "fps": self.fps, "num_frames": self.num_frames, "unassigned_voices": list(self.unassigned_voices),
            "people": [{"track_id": p.track_id, "voice": p.voice, "scores": json_numbers(p.scores, SCORE_DECIMALS),
                        "speak": [list(s) for s in p.speak], "listen": [list(s) for s in p.listen],
                        **({"evidence": p.evidence} if p.evidence else {})}
                       for p in self.people]})

    @classmethod
    def from_dict(cls, data: dict[str, Any], origin: str = "speaking") -> SpeakingActivity:
        body = open_envelope(data, cls.FORMAT, origin)
        with field_errors(origin):
            people = [PersonSpeaking(int(p["track_id"]), np.asarray(p["scores"], dtype=np.float32), p.get("voice"),
                                     [tuple(s) for s in p.get("speak", [])], [tuple(s) for s in p.get("listen", [])],
                                     p.get("evidence"))
                      for p in body["people"]]
            return cls(float(body["fps"]), int(body["num_frames"]), people, list(body.get("unassigned_voices", [])))

    def save(self, path: str | os.PathLike) -> Path:
        return save_json(self.to_dict(), path)

    @classmethod
    def load(cls, path: str | os.PathLike) -> SpeakingActivity:
        return cls.from_dict(load_json(path), origin=str(path))


def nearest_frames(num_frames: int, fps: float, rate: float) -> np.ndarray:
    """For each frame at `rate` covering the video's length, the index of the nearest of its `num_frames` frames."""
    count = max(int(round(num_frames / fps * rate)), 1)
    return np.clip(np.round(np.arange(count) * fps / rate).astype(np.int64), 0, num_frames - 1)


def check_rate_and_length(fps: float, num_frames: int) -> None:
    if not 0 < fps <= MAX_FPS:  # NaN fails too
        raise ValueError(f"fps {fps} must be above 0 and at most {MAX_FPS:g}")
    if not 0 <= num_frames <= MAX_FRAMES:
        raise ValueError(f"num_frames {num_frames} must be between 0 and {MAX_FRAMES}")


def check_video_numbers(width: int, height: int, fps: float, num_frames: int) -> None:
    if not (1 <= width <= MAX_SIDE and 1 <= height <= MAX_SIDE):
        raise ValueError(f"the video size {width}x{height} must be between 1 and {MAX_SIDE} px a side")
    check_rate_and_length(fps, num_frames)


def check_same_video(tracks: VideoTracks, width: int, height: int, seconds: float, origin: str = "the video") -> None:
    """Tracks used with a video must have been made from it: its size, and no frame past its end (the tracks count
    frames at their own processing rate)."""
    if (tracks.width, tracks.height) != (width, height):
        raise ValueError(f"the tracks are of a {tracks.width}x{tracks.height} video, {origin} is {width}x{height}: "
                         "give the tracks made from it")
    if tracks.num_frames / tracks.fps > seconds + 2 / tracks.fps:  # a frame's slack each side
        raise ValueError(f"the tracks cover {tracks.num_frames / tracks.fps:.2f} s, {origin} lasts {seconds:.2f} s: "
                         "give the tracks made from it")


def check_speaking_matches(speaking: SpeakingActivity, tracks: VideoTracks) -> None:
    """An assignment used with tracks must be of their people, at their frame rate."""
    known = [t.track_id for t in tracks.tracks]
    missing = [p.track_id for p in speaking.people if p.track_id not in known]
    if missing:
        raise ValueError(f"the assignment names person {', '.join(map(str, missing))}, whom the tracks do not hold "
                         f"(their people: {known or 'none'}); give the tracks the assignment was made from")
    if abs(speaking.fps - tracks.fps) > 1e-3 * tracks.fps:
        raise ValueError(f"the assignment counts frames at {speaking.fps:g} fps, the tracks at {tracks.fps:g} fps: "
                         "give the assignment made from these tracks")
