"""Converters between our tracks and the pose formats of the ecosystem.

- ComfyUI's POSE_KEYPOINT, as comfyui_controlnet_aux's DWPose node writes it: one dict per frame,
  `{"people": [...], "canvas_width", "canvas_height"}`, each person with flat [x, y, c] lists in pixels:
  OpenPose-18 body (neck = mean of the shoulders), 70 face points (iBUG-68 + right and left eye), 21 points per hand.
  Points below the confidence threshold are [0, 0, 0]; a face or hand with no point kept is None; feet are dropped.
  It carries no identity: we add `"mit_track_id"` to each person, which other consumers ignore.
- The MIT dataset's per-frame pose json (mmpose style): `{"instance_info": [{"keypoints": [[x, y]] * 133,
  "keypoint_scores": [...] * 133, "bbox": [[x1, y1, x2, y2]], "bbox_score": s}]}`.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np

from mit_annotator.core import keypoints as kp
from mit_annotator.core.documents import FormatError
from mit_annotator.core.records import PersonTrack, VideoTracks

VISIBLE_SCORE = 0.3  # controlnet_aux keeps a point when its score >= 0.3
TRACK_ID_KEY = "mit_track_id"

# OpenPose-18 body order, as COCO-17 indices (None: the neck, made from the shoulders).
OPENPOSE_BODY_FROM_COCO = (kp.NOSE, None, kp.RIGHT_SHOULDER, kp.RIGHT_ELBOW, kp.RIGHT_WRIST, kp.LEFT_SHOULDER,
                           kp.LEFT_ELBOW, kp.LEFT_WRIST, kp.RIGHT_HIP, kp.RIGHT_KNEE, kp.RIGHT_ANKLE, kp.LEFT_HIP,
                           kp.LEFT_KNEE, kp.LEFT_ANKLE, kp.RIGHT_EYE, kp.LEFT_EYE, kp.RIGHT_EAR, kp.LEFT_EAR)
OPENPOSE_NECK = 1
# Face points 68 and 69 of the OpenPose face are the eyes (controlnet_aux pads DWPose's 68 points with them).
OPENPOSE_FACE_EXTRA = (kp.RIGHT_EYE, kp.LEFT_EYE)


# ---------------------------------------------------------------------------------------------------------------------
# POSE_KEYPOINT


def person_to_openpose(points: np.ndarray, scores: np.ndarray, threshold: float = VISIBLE_SCORE,
                       binarize: bool = True) -> dict[str, list[float] | None]:
    """One person's 133 keypoints as a POSE_KEYPOINT person dict."""
    kept = scores >= threshold
    conf = np.where(kept, 1.0 if binarize else scores, 0.0)

    def flat(indices) -> list[float]:
        rows = [[float(points[i, 0]), float(points[i, 1]), float(conf[i])] if kept[i] else [0.0, 0.0, 0.0]
                for i in indices]
        return [v for row in rows for v in row]

    body = []
    for coco in OPENPOSE_BODY_FROM_COCO:
        if coco is not None:
            body.extend(flat([coco]))
            continue
        shoulders = [kp.LEFT_SHOULDER, kp.RIGHT_SHOULDER]
        if scores[shoulders].min() > threshold:
            x, y = points[shoulders].mean(axis=0)
            body.extend([float(x), float(y), 1.0 if binarize else float(scores[shoulders].min())])
        else:
            body.extend([0.0, 0.0, 0.0])

    face_indices = list(range(kp.FACE.start, kp.FACE.stop)) + list(OPENPOSE_FACE_EXTRA)
    return {
        "pose_keypoints_2d": body,
        "face_keypoints_2d": flat(face_indices) if kept[kp.FACE].any() else None,
        "hand_left_keypoints_2d": flat(range(kp.LEFT_HAND.start, kp.LEFT_HAND.stop)) if kept[kp.LEFT_HAND].any()
        else None,
        "hand_right_keypoints_2d": flat(range(kp.RIGHT_HAND.start, kp.RIGHT_HAND.stop)) if kept[kp.RIGHT_HAND].any()
        else None,
    }


def person_from_openpose(person: dict[str, Any], scale: tuple[float, float] = (1.0, 1.0),
                         where: str = "person") -> tuple[np.ndarray, np.ndarray]:
    """A POSE_KEYPOINT person dict as (133, 2) keypoints and (133,) scores; feet come back unseen (score 0)."""
    points = np.zeros((kp.NUM_KEYPOINTS, 2), dtype=np.float32)
    scores = np.zeros(kp.NUM_KEYPOINTS, dtype=np.float32)

    def take(key: str, allowed: tuple[int, ...]) -> np.ndarray | None:
        values = person.get(key)
        if values is None or len(values) == 0:
            return None
        array = np.asarray(values, dtype=np.float32)
        if array.size % 3 or array.size // 3 not in allowed:
            raise FormatError(f"{where}: {key} must hold {' or '.join(str(n * 3) for n in allowed)} numbers "
                              f"([x, y, c] per point), got {array.size}")
        array = array.reshape(-1, 3)
        array[:, :2] *= scale
        return array

    body = take("pose_keypoints_2d", (18,))
    if body is not None:
        for op_index, coco in enumerate(OPENPOSE_BODY_FROM_COCO):
            if coco is not None:
                points[coco], scores[coco] = body[op_index, :2], body[op_index, 2]
    face = take("face_keypoints_2d", (68, 70))
    if face is not None:
        points[kp.FACE], scores[kp.FACE] = face[:68, :2], face[:68, 2]
    for key, block in (("hand_left_keypoints_2d", kp.LEFT_HAND), ("hand_right_keypoints_2d", kp.RIGHT_HAND)):
        hand = take(key, (21,))
        if hand is not None:
            points[block], scores[block] = hand[:, :2], hand[:, 2]
    return points, scores


def tracks_to_pose_keypoint(tracks: VideoTracks, threshold: float = VISIBLE_SCORE,
                            binarize: bool = True) -> list[dict[str, Any]]:
    """Tracks as ComfyUI's POSE_KEYPOINT: a dict per frame, people in track order, each tagged with its track id."""
    if any(t.keypoints is None for t in tracks.tracks):
        raise ValueError("these tracks hold no keypoints (run the pose stage first)")
    frames = []
    for frame in range(tracks.num_frames):
        people = []
        for track, row in tracks.people_at(frame):
            person = person_to_openpose(track.keypoints[row], track.keypoint_scores[row], threshold, binarize)
            person[TRACK_ID_KEY] = track.track_id
            people.append(person)
        frames.append({"people": people, "canvas_width": tracks.width, "canvas_height": tracks.height})
    return frames


def tracks_from_pose_keypoint(pose_keypoint: list[dict[str, Any]], fps: float) -> VideoTracks:
    """POSE_KEYPOINT frames as tracks.

    Identity comes from `mit_track_id` when present, else from each person's position in the frame's list (which
    is only an identity if the producer kept a stable order). Person boxes are the extent of the seen keypoints.
    Coordinates given normalised to 0..1 are scaled by the canvas size.
    """
    if not isinstance(pose_keypoint, list) or not pose_keypoint:
        raise FormatError("POSE_KEYPOINT must be a non-empty list with one dict per frame")
    width, height = _canvas_size(pose_keypoint[0], "POSE_KEYPOINT frame 0")
    scale = (float(width), float(height)) if _looks_normalised(pose_keypoint) else (1.0, 1.0)
    rows: dict[int, list] = defaultdict(list)
    for frame, entry in enumerate(pose_keypoint):
        where = f"POSE_KEYPOINT frame {frame}"
        if _canvas_size(entry, where) != (width, height):
            raise FormatError(f"{where}: canvas size {_canvas_size(entry, where)} differs from frame 0's "
                              f"{(width, height)}")
        for index, person in enumerate(entry.get("people") or []):
            points, scores = person_from_openpose(person, scale, f"{where}, person {index}")
            track_id = int(person.get(TRACK_ID_KEY, index))
            if rows[track_id] and rows[track_id][-1][0] == frame:
                raise FormatError(f"{where}: two people carry track id {track_id}")
            rows[track_id].append((frame, points, scores))
    return _tracks_from_rows(rows, width, height, fps, len(pose_keypoint))


# ---------------------------------------------------------------------------------------------------------------------
# MIT per-frame pose json


def tracks_to_mit_pose(tracks: VideoTracks) -> list[dict[str, Any]]:
    """One `instance_info` document per frame, people in track order."""
    if any(t.keypoints is None for t in tracks.tracks):
        raise ValueError("these tracks hold no keypoints (run the pose stage first)")
    frames = []
    for frame in range(tracks.num_frames):
        instances = []
        for track, row in tracks.people_at(frame):
            instances.append({
                "keypoints": np.round(track.keypoints[row].astype(np.float64), 2).tolist(),
                "keypoint_scores": np.round(track.keypoint_scores[row].astype(np.float64), 4).tolist(),
                "bbox": [np.round(track.boxes[row].astype(np.float64), 2).tolist()],
                "bbox_score": 1.0,
                "track_id": track.track_id,
            })
        frames.append({"instance_info": instances})
    return frames


def tracks_from_mit_pose(frames: list[dict[str, Any]], width: int, height: int, fps: float) -> VideoTracks:
    """MIT pose documents (one per frame) as tracks; identity from `track_id` if present, else list position."""
    rows: dict[int, list] = defaultdict(list)
    for frame, document in enumerate(frames):
        instances = document.get("instance_info") if isinstance(document, dict) else None
        if instances is None:
            raise FormatError(f"MIT pose frame {frame}: no 'instance_info' list")
        for index, instance in enumerate(instances):
            where = f"MIT pose frame {frame}, person {index}"
            try:
                points = np.asarray(instance["keypoints"], dtype=np.float32)
                scores = np.asarray(instance["keypoint_scores"], dtype=np.float32)
            except (KeyError, TypeError, ValueError) as error:
                raise FormatError(f"{where}: needs 'keypoints' and 'keypoint_scores' ({error})") from None
            if points.shape != (kp.NUM_KEYPOINTS, 2) or scores.shape != (kp.NUM_KEYPOINTS,):
                raise FormatError(f"{where}: expected {kp.NUM_KEYPOINTS} [x, y] keypoints and scores, got shapes "
                                  f"{points.shape} and {scores.shape}")
            box = np.asarray(instance["bbox"], dtype=np.float32).reshape(-1)[:4] if "bbox" in instance else None
            rows[int(instance.get("track_id", index))].append((frame, points, scores, box))
    return _tracks_from_rows(rows, width, height, fps, len(frames))


# ---------------------------------------------------------------------------------------------------------------------


def keypoint_box(points: np.ndarray, scores: np.ndarray, threshold: float = VISIBLE_SCORE,
                 margin: float = 0.1) -> np.ndarray:
    """The extent of the seen keypoints, widened by `margin` of its size on each side."""
    seen = points[scores >= threshold]
    if len(seen) == 0:
        return np.full(4, np.nan, dtype=np.float32)
    low, high = seen.min(axis=0), seen.max(axis=0)
    pad = (high - low) * margin
    return np.concatenate([low - pad, high + pad]).astype(np.float32)


def _tracks_from_rows(rows: dict[int, list], width: int, height: int, fps: float, num_frames: int) -> VideoTracks:
    tracks = []
    for track_id in sorted(rows):
        entries = rows[track_id]
        points = np.stack([e[1] for e in entries])
        scores = np.stack([e[2] for e in entries])
        boxes = np.stack([e[3] if len(e) > 3 and e[3] is not None else keypoint_box(e[1], e[2]) for e in entries])
        faces = np.stack([kp.face_box_from_keypoints(p, s) for p, s in zip(points, scores)])
        tracks.append(PersonTrack(track_id, [e[0] for e in entries], boxes, points, scores, faces))
    return VideoTracks(width, height, fps, num_frames, tracks, shots=[(0, num_frames)])


def _canvas_size(entry: Any, where: str) -> tuple[int, int]:
    if not isinstance(entry, dict) or "canvas_width" not in entry or "canvas_height" not in entry:
        raise FormatError(f"{where}: needs 'people', 'canvas_width' and 'canvas_height'")
    return int(entry["canvas_width"]), int(entry["canvas_height"])


def _looks_normalised(pose_keypoint: list[dict[str, Any]]) -> bool:
    largest = 0.0
    for entry in pose_keypoint:
        for person in entry.get("people") or []:
            for key in ("pose_keypoints_2d", "face_keypoints_2d", "hand_left_keypoints_2d", "hand_right_keypoints_2d"):
                values = person.get(key)
                if values:
                    flat = np.asarray(values, dtype=np.float32).ravel()  # shape is checked later
                    largest = max(largest, float(np.abs(flat[0::3]).max()), float(np.abs(flat[1::3]).max()))
    return 0.0 < largest <= 1.0
