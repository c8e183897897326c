"""Reading a training clip folder, whatever wrote it, as the annotator's records.

Two layouts:
- the MIT dataset's (the released clips, and what `annotate` exports): `speaker_info_with_instance_bbox.json` (or
  `speaker_info.json`), `pose/*.json` per frame, and the frames as `frames/*.png` or `video.mp4` (see `export` for
  the files). A person's poses are found in each frame's `instance_info` by our `track_id` when the instances carry
  one, else as the published training code finds them: the instance with the most keypoints (score >= 0.4) inside
  the person's `instance_bbox` (one instance per person, Hungarian). Face boxes come from the face keypoints by the
  paper's rule where enough are seen (as the published training code makes its face masks), else from `face_track`;
- ours from before (what `synthesize_conversation(...).save` writes): `video.mp4`, `tracks.json`, `speaking.json`.

`open_clip` checks the folder once (files present, documents well formed, a pose file for every frame the speaking
scores cover) and every problem is a `ClipReadError` naming the clip folder and the file.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from scipy.optimize import linear_sum_assignment

from mit_annotator.core import media
from mit_annotator.core.documents import FormatError
from mit_annotator.core.keypoints import NUM_KEYPOINTS, face_box_from_keypoints
from mit_annotator.core.records import PROCESSING_FPS, PersonSpeaking, PersonTrack, SpeakingActivity, VideoTracks
from mit_annotator.dataset.layout import (
    FRAMES_DIR,
    META,
    POSE_DIR,
    SPEAKER_INFO,
    SPEAKER_INFO_BBOX,
    SPEAKING,
    TRACKS,
    VIDEO,
)

SPEAKER_FILES = (SPEAKER_INFO_BBOX, SPEAKER_INFO)
LEGACY_FILES = (VIDEO, TRACKS, SPEAKING)
MATCH_SCORE = 0.4  # the published training code counts keypoints at least this sure inside a person's box
NUMBERED = re.compile(r"^(?P<stem>.*?)(?P<number>\d+)$")


class ClipReadError(FormatError):
    """A clip folder that cannot be read; the message names the folder and the file."""


def is_clip(folder: str | os.PathLike) -> bool:
    """Whether `folder` holds a clip in either layout; a folder with some of a layout's files but not all is an
    error naming what is missing."""
    folder = Path(folder)
    if any((folder / name).is_file() for name in SPEAKER_FILES):
        missing = [] if (folder / POSE_DIR).is_dir() else [f"{POSE_DIR}/"]
        if not (folder / VIDEO).is_file() and not (folder / FRAMES_DIR).is_dir():
            missing.append(f"{VIDEO} (or {FRAMES_DIR}/)")
        if missing:
            raise ClipReadError(f"{folder}: incomplete clip folder, missing {', '.join(missing)}")
        return True
    present = [name for name in LEGACY_FILES if (folder / name).is_file()]
    if present and len(present) < len(LEGACY_FILES):
        missing = [name for name in LEGACY_FILES if name not in present]
        raise ClipReadError(f"{folder}: incomplete clip folder, missing {', '.join(missing)}")
    return bool(present)


def open_clip(folder: str | os.PathLike) -> MitClip | RecordsClip:
    folder = Path(folder)
    if not folder.is_dir():
        raise ClipReadError(f"{folder}: no such clip folder")
    if not is_clip(folder):
        raise ClipReadError(f"{folder}: not a clip folder (it holds neither {SPEAKER_FILES[0]} nor "
                            f"{', '.join(LEGACY_FILES)})")
    if any((folder / name).is_file() for name in SPEAKER_FILES):
        return MitClip(folder)
    return RecordsClip(folder)


class RecordsClip:
    """A clip folder of our records: video.mp4, tracks.json, speaking.json."""

    layout = "records"

    def __init__(self, folder: Path):
        self.folder = folder
        tracks = VideoTracks.load(folder / TRACKS)
        self.num_frames, self.fps, self.people = tracks.num_frames, tracks.fps, len(tracks.tracks)
        self.size = (tracks.width, tracks.height)
        self.has_keypoints = all(t.keypoints is not None for t in tracks.tracks)
        self.missing_keypoints = [t.track_id for t in tracks.tracks if t.keypoints is None]
        self.speaking_frames = SpeakingActivity.load(folder / SPEAKING).num_frames

    def tracks(self, frames: Iterable[int] | None = None) -> VideoTracks:
        return VideoTracks.load(self.folder / TRACKS)

    def speaking(self) -> SpeakingActivity:
        return SpeakingActivity.load(self.folder / SPEAKING)

    def read_frames(self, start: int, stop: int, size: tuple[int, int]) -> np.ndarray:
        return media.read_frames(self.folder / VIDEO, start, stop, size=size, fps=self.fps)

    @property
    def audio_media(self) -> Path:
        return self.folder / VIDEO


class MitClip:
    """A clip folder in the MIT layout."""

    layout = "mit"

    def __init__(self, folder: Path):
        self.folder = folder
        self.info_file = next(folder / name for name in SPEAKER_FILES if (folder / name).is_file())
        self.entries = _speaker_entries(self.info_file)
        self.num_frames = len(self.entries[0]["speaking_score"])
        self.people = len(self.entries)
        self.meta = _meta(folder)
        self.fps = float(self.meta.get("fps") or PROCESSING_FPS)
        self.pose_files = _pose_files(folder, self.num_frames)
        self.frame_files = _frame_files(folder) if (folder / FRAMES_DIR).is_dir() else None
        if self.frame_files is not None and len(self.frame_files) < self.num_frames:
            raise ClipReadError(f"{folder}: frames/ holds {len(self.frame_files)} images; {self.info_file.name} "
                                f"covers {self.num_frames} frames")
        self.size = self._size()
        self.has_keypoints, self.missing_keypoints = True, []
        self.speaking_frames = self.num_frames

    def _size(self) -> tuple[int, int]:
        if self.meta.get("width") and self.meta.get("height"):
            return int(self.meta["width"]), int(self.meta["height"])
        if self.frame_files is not None:
            image = cv2.imread(str(self.frame_files[0]), cv2.IMREAD_UNCHANGED)
            if image is None:
                raise ClipReadError(f"{self.frame_files[0]}: not an image")
            return image.shape[1], image.shape[0]
        info = media.probe(self.folder / VIDEO)
        return info.width, info.height

    def tracks(self, frames: Iterable[int] | None = None) -> VideoTracks:
        """The people's tracks (in speaker_info's order, ids 0, 1, ...) over the clip, with rows only for `frames`
        (default: every frame)."""
        wanted = sorted(set(range(self.num_frames) if frames is None else (int(f) for f in frames)))
        rows: list[list[tuple]] = [[] for _ in self.entries]
        for frame in wanted:
            if not 0 <= frame < self.num_frames:
                raise ClipReadError(f"{self.folder}: frame {frame} is outside its {self.num_frames} frames")
            instances = _instances(self.pose_files[frame])
            for person, instance in self._match(frame, instances).items():
                rows[person].append((frame, instance))
        tracks = []
        for person, found in enumerate(rows):
            frames_seen = [f for f, _ in found]
            points = np.stack([i["keypoints"] for _, i in found]) if found else np.zeros((0, NUM_KEYPOINTS, 2))
            scores = np.stack([i["scores"] for _, i in found]) if found else np.zeros((0, NUM_KEYPOINTS))
            boxes = np.stack([i["box"] for _, i in found]) if found else np.zeros((0, 4))
            faces = np.stack([self._face_box(person, f, i) for f, i in found]) if found else np.zeros((0, 4))
            tracks.append(PersonTrack(person, frames_seen, boxes, points, scores, faces, shot=0))
        return VideoTracks(self.size[0], self.size[1], self.fps, self.num_frames, tracks, [(0, self.num_frames)],
                           source=str(self.folder))

    def _match(self, frame: int, instances: list[dict[str, Any]]) -> dict[int, dict[str, Any]]:
        if not instances:
            return {}
        if all(i["track_id"] is not None for i in instances):  # ours: people in track order
            order = sorted({i["track_id"] for i in instances})
            if len(order) == len(instances) <= self.people:
                return {order.index(i["track_id"]): i for i in instances}
        counts = np.zeros((self.people, len(instances)))
        for person, entry in enumerate(self.entries):
            region = entry.get("instance_bbox")
            if region is None:
                region = _face_region(entry["face_track"][frame])
            if region is None:
                continue
            x1, y1, x2, y2 = region
            for k, instance in enumerate(instances):
                points, sure = instance["keypoints"], instance["scores"] >= MATCH_SCORE
                inside = (points[:, 0] >= x1) & (points[:, 0] <= x2) & (points[:, 1] >= y1) & (points[:, 1] <= y2)
                counts[person, k] = np.count_nonzero(inside & sure)
        people, chosen = linear_sum_assignment(-counts)
        return {int(p): instances[k] for p, k in zip(people, chosen) if counts[p, k] > 0}

    def _face_box(self, person: int, frame: int, instance: dict[str, Any]) -> np.ndarray:
        box = face_box_from_keypoints(instance["keypoints"], instance["scores"])
        if np.isnan(box).any():
            given = self.entries[person]["face_track"][frame]
            if given is not None:
                box = np.asarray(given, dtype=np.float32)
        return box

    def speaking(self) -> SpeakingActivity:
        people = [PersonSpeaking(person, np.asarray(entry["speaking_score"], np.float32), None,
                                 [tuple(s) for s in entry["speak"]], [tuple(s) for s in entry["listen"]])
                  for person, entry in enumerate(self.entries)]
        return SpeakingActivity(self.fps, self.num_frames, people)

    def read_frames(self, start: int, stop: int, size: tuple[int, int]) -> np.ndarray:
        if self.frame_files is None:
            return media.read_frames(self.folder / VIDEO, start, stop, size=size, fps=self.fps)
        images = []
        for path in self.frame_files[start:stop]:
            image = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if image is None:
                raise ClipReadError(f"{path}: not an image")
            images.append(cv2.resize(cv2.cvtColor(image, cv2.COLOR_BGR2RGB), size, interpolation=cv2.INTER_AREA))
        return np.stack(images)

    @property
    def audio_media(self) -> Path:
        return self.folder / VIDEO


def _speaker_entries(path: Path) -> list[dict[str, Any]]:
    folder = path.parent
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ClipReadError(f"{folder}: {path.name} is not valid JSON ({error})") from None
    if not isinstance(data, list) or not data:
        raise ClipReadError(f"{folder}: {path.name} must be a non-empty list with one entry per person")
    lengths = set()
    for person, entry in enumerate(data):
        where = f"{folder}: {path.name}, person {person}"
        if not isinstance(entry, dict):
            raise ClipReadError(f"{where}: expected an object, got {type(entry).__name__}")
        missing = [k for k in ("face_track", "speak", "listen", "speaking_score") if k not in entry]
        if missing:
            raise ClipReadError(f"{where}: missing {', '.join(missing)}")
        scores = entry["speaking_score"]
        if not isinstance(scores, list) or not scores or not all(isinstance(v, (int, float)) for v in scores):
            raise ClipReadError(f"{where}: speaking_score must be a non-empty list of numbers")
        if not isinstance(entry["face_track"], list) or len(entry["face_track"]) != len(scores):
            raise ClipReadError(f"{where}: face_track must hold one box per frame ({len(scores)}, as "
                                "speaking_score)")
        for key in ("speak", "listen"):
            ranges = entry[key]
            if not isinstance(ranges, list) or not all(
                    isinstance(r, list) and len(r) == 2 and 0 <= r[0] <= r[1] <= len(scores) for r in ranges):
                raise ClipReadError(f"{where}: {key} must be a list of [start, end] frame ranges within "
                                    f"0..{len(scores)}")
        box = entry.get("instance_bbox")
        if box is not None and (not isinstance(box, list) or len(box) != 4):
            raise ClipReadError(f"{where}: instance_bbox must be [x1, y1, x2, y2]")
        lengths.add(len(scores))
    if len(lengths) > 1:
        raise ClipReadError(f"{folder}: {path.name}: the people's speaking_score lists differ in length "
                            f"({sorted(lengths)})")
    return data


def _meta(folder: Path) -> dict[str, Any]:
    path = folder / META
    if not path.is_file():
        return {}
    try:
        meta = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ClipReadError(f"{folder}: meta.json is not valid JSON ({error})") from None
    if not isinstance(meta, dict):
        raise ClipReadError(f"{folder}: meta.json must be an object")
    return meta


def _numbered(files: list[Path]) -> list[Path]:
    """Files in frame order: by the number ending their stem when every stem ends in one, else by name."""
    numbers = [NUMBERED.match(p.stem) for p in files]
    if files and all(numbers):
        return [p for _, p in sorted(zip((int(m.group("number")) for m in numbers), files))]
    return sorted(files)


def _pose_files(folder: Path, count: int) -> list[Path]:
    files = _numbered([p for p in (folder / POSE_DIR).iterdir() if p.suffix == ".json" and not p.name.startswith(".")])
    matches = [NUMBERED.match(p.stem) for p in files]
    if files and all(matches):
        numbers = [int(m.group("number")) for m in matches]
        first = numbers[0]
        for k in range(count):
            if k >= len(numbers) or numbers[k] != first + k:
                stem, width = matches[0].group("stem"), len(matches[0].group("number"))
                raise ClipReadError(f"{folder}: pose/{stem}{first + k:0{width}d}.json is missing (frame {k + 1} "
                                    f"of the {count} that speaker_info covers)")
    if len(files) < count:
        raise ClipReadError(f"{folder}: pose/ holds {len(files)} frames; speaker_info covers {count}")
    return files[:count]


def _frame_files(folder: Path) -> list[Path]:
    return _numbered([p for p in (folder / FRAMES_DIR).iterdir()
                      if p.suffix.lower() in (".png", ".jpg", ".jpeg") and not p.name.startswith(".")])


def _instances(path: Path) -> list[dict[str, Any]]:
    folder = path.parent.parent
    try:
        document = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ClipReadError(f"{folder}: pose/{path.name} is not valid JSON ({error})") from None
    instances = document.get("instance_info") if isinstance(document, dict) else None
    if not isinstance(instances, list):
        raise ClipReadError(f"{folder}: pose/{path.name} has no 'instance_info' list")
    out = []
    for k, instance in enumerate(instances):
        try:
            points = np.asarray(instance["keypoints"], dtype=np.float32)
            scores = np.asarray(instance["keypoint_scores"], dtype=np.float32)
        except (KeyError, TypeError, ValueError) as error:
            raise ClipReadError(f"{folder}: pose/{path.name}, instance {k}: needs 'keypoints' and 'keypoint_scores' "
                                f"({error})") from None
        if points.shape != (NUM_KEYPOINTS, 2) or scores.shape != (NUM_KEYPOINTS,):
            raise ClipReadError(f"{folder}: pose/{path.name}, instance {k}: expected {NUM_KEYPOINTS} [x, y] keypoints "
                                f"and scores, got shapes {points.shape} and {scores.shape}")
        box = instance.get("bbox")
        if box is not None:
            box = np.asarray(box, dtype=np.float32).reshape(-1)[:4]
        if box is None or box.shape != (4,):
            box = _extent(points, scores)
        track_id = instance.get("track_id")
        out.append({"keypoints": points, "scores": scores, "box": box,
                    "track_id": int(track_id) if track_id is not None else None})
    return out


def _extent(points: np.ndarray, scores: np.ndarray) -> np.ndarray:
    seen = points[scores >= 0.3]
    if len(seen) == 0:
        return np.full(4, np.nan, np.float32)
    return np.concatenate([seen.min(axis=0), seen.max(axis=0)]).astype(np.float32)


def _face_region(box) -> list[float] | None:
    """A face box widened to about the person's upper body, to find their keypoints in when no instance_bbox is
    given."""
    if box is None:
        return None
    x1, y1, x2, y2 = box
    w, h = x2 - x1, y2 - y1
    return [x1 - w, y1 - 0.5 * h, x2 + w, y2 + 2.5 * h]
