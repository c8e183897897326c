"""Writing an accepted clip in the MIT dataset's layout, with our own records beside it.

The details: docs/dataset-layout.md.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from mit_annotator.core import media
from mit_annotator.core.documents import FORMAT_VERSION, save_json
from mit_annotator.core.files import atomic_path
from mit_annotator.core.keypoints import NUM_KEYPOINTS
from mit_annotator.core.pose_formats import tracks_to_mit_pose
from mit_annotator.core.records import SAMPLE_RATE, VideoTracks
from mit_annotator.core.segments import MERGE_SHORTER_THAN_S, speak_listen_segments
from mit_annotator.dataset.clips import ClipAnnotation
from mit_annotator.dataset.layout import (
    CLIP_RECORD,
    DIARIZATION,
    FRAMES_DIR,
    META,
    POSE_DIR,
    POSE_FRAME_DIR,
    SPEAKER_INFO,
    SPEAKER_INFO_BBOX,
    SPEAKER_INFO_MERGED,
    SPEAKING,
    TRACKS,
    VIDEO,
    frame_file,
)

CLIP_FORMAT = "mit_annotator.clip"
CLIP_PRESET = "veryfast"  # 4-5x faster than x264's medium at 1080p, the same picture at crf 18 (BENCHMARKS.md)


def write_clip(folder: str | os.PathLike, video: str | os.PathLike, clip: ClipAnnotation, source: str,
               video_name: str, url: str | None = None, frames: bool = False,
               provenance: dict[str, Any] | None = None, preset: str = CLIP_PRESET) -> Path:
    """Write one clip folder (every file atomically); `video` is the source the clip is cut from; `preset`: x264's,
    for the clip's video.mp4 (at crf 18 either way)."""
    folder = Path(folder)
    tracks, candidate = clip.tracks, clip.candidate
    fps, count = tracks.fps, tracks.num_frames
    folder.mkdir(parents=True, exist_ok=True)

    decoded = media.iter_frames(video, candidate.start, candidate.end, fps=fps)
    if frames:
        decoded = _saving_frames(decoded, folder / FRAMES_DIR, count)
    media.write_video(folder / VIDEO, decoded, fps, clip.audio, SAMPLE_RATE, preset=preset)

    info = speaker_info(clip)
    _save_plain_json(info, folder / SPEAKER_INFO)
    _save_plain_json(speaker_info(clip, merged=True), folder / SPEAKER_INFO_MERGED)
    _save_plain_json([{**entry, "instance_bbox": instance_box(tracks, person),
                       "clip_range": [1, count]} for entry, person in zip(info, candidate.track_ids)],
                     folder / SPEAKER_INFO_BBOX)
    start_s, end_s = candidate.start / fps, candidate.end / fps
    _save_plain_json({"source": source, "video": video_name, "period": [round(start_s, 6), round(end_s, 6)],
                      "num_speaker": len(candidate.track_ids), "url": url, "fps": fps, "num_frames": count,
                      "width": tracks.width, "height": tracks.height}, folder / META)

    write_poses(folder, tracks)
    tracks.save(folder / TRACKS)
    clip.speaking.save(folder / SPEAKING)
    clip.diarization.save_rttm(folder / DIARIZATION)
    save_json({"format": CLIP_FORMAT, "version": FORMAT_VERSION, "source": source, "video": video_name,
               "start_frame": candidate.start, "end_frame": candidate.end, "fps": fps,
               "track_ids": list(candidate.track_ids), "shot": candidate.shot, "measures": candidate.measures,
               "voices": {str(p.track_id): p.voice for p in clip.speaking.people},
               "unassigned_voices": clip.speaking.unassigned_voices, **(provenance or {})}, folder / CLIP_RECORD)
    return folder


def speaker_info(clip: ClipAnnotation, merged: bool = False) -> list[dict[str, Any]]:
    """The `speaker_info.json` entries (people in the clip's track order)."""
    entries = []
    for track_id in clip.candidate.track_ids:
        track = clip.tracks.track(track_id)
        person = clip.speaking.person(track_id)
        speak, listen = speak_listen_segments(person.scores, clip.tracks.fps,
                                              merge_shorter_than=MERGE_SHORTER_THAN_S if merged else None)
        faces = np.full((clip.tracks.num_frames, 4), np.nan, np.float32)
        if track.face_boxes is not None:
            faces[track.frames] = track.face_boxes
        entries.append({
            "face_track": [None if np.isnan(box).any() else [round(float(v), 2) for v in box] for box in faces],
            "speak": [list(s) for s in speak], "listen": [list(s) for s in listen],
            "period_num": len(speak) + len(listen),
            "speaking_score": [round(float(v), 4) for v in person.scores]})
    return entries


def instance_box(tracks: VideoTracks, track_id: int) -> list[float]:
    """The person's box over the whole clip: the union of their boxes, in source pixels."""
    boxes = tracks.track(track_id).boxes
    return [round(float(v), 2) for v in (*boxes[:, :2].min(axis=0), *boxes[:, 2:].max(axis=0))]


def write_poses(folder: Path, tracks: VideoTracks) -> None:
    """pose/*.json per frame and pose_frame/*.png, the skeletons of everyone on black."""
    from mit_annotator.vision.skeleton import SEEN, render_person

    with_points = tracks_with_keypoints(tracks)
    documents = tracks_to_mit_pose(with_points)
    size = (tracks.width, tracks.height)
    for index, document in enumerate(documents):
        _save_plain_json(document, folder / POSE_DIR / frame_file(index, len(documents), ".json"), indent=None)
        canvas = np.zeros((tracks.height, tracks.width, 3), np.uint8)
        for track, row in with_points.people_at(index):
            if (track.keypoint_scores[row] >= SEEN).any():  # nothing seen draws nothing (no pose model ran)
                np.maximum(canvas, render_person(track.keypoints[row], track.keypoint_scores[row], size), out=canvas)
        _save_png(canvas, folder / POSE_FRAME_DIR / frame_file(index, len(documents), ".png"))


def tracks_with_keypoints(tracks: VideoTracks) -> VideoTracks:
    """The tracks, where a track has no keypoints (no pose model ran) with 133 unseen ones (score 0)."""
    from mit_annotator.core.records import PersonTrack

    filled = []
    for t in tracks.tracks:
        if t.keypoints is None:
            t = PersonTrack(t.track_id, t.frames, t.boxes, np.zeros((len(t), NUM_KEYPOINTS, 2), np.float32),
                            np.zeros((len(t), NUM_KEYPOINTS), np.float32), t.face_boxes, t.shot, t.face_landmarks,
                            t.identity)
        filled.append(t)
    return VideoTracks(tracks.width, tracks.height, tracks.fps, tracks.num_frames, filled, tracks.shots, tracks.source)


def _saving_frames(frames, folder: Path, count: int):
    for index, frame in enumerate(frames):
        _save_png(frame, folder / frame_file(index, count, ".png"))
        yield frame


def _save_plain_json(data: Any, path: Path, indent: int | None = 4) -> None:
    """JSON as the published pipeline writes it (no format envelope), atomically."""
    import json

    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=indent, allow_nan=False))


def _save_png(rgb: np.ndarray, path: Path) -> None:
    ok, png = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    if not ok:
        raise RuntimeError(f"could not encode {path}")
    with atomic_path(path) as tmp:
        tmp.write_bytes(png.tobytes())  # Python's write: a full disk is an OSError (ENOSPC), not a False
