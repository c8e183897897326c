"""The annotator's vision pass over a video: shots, people, whole-body poses, tracks and faces, in one decode."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable

import numpy as np

from mit_annotator.core import media
from mit_annotator.core.progress import report
from mit_annotator.core.records import PROCESSING_FPS, Detection, PersonTrack, VideoTracks
from mit_annotator.vision.detection import PersonDetector
from mit_annotator.vision.detection_schedule import EXACT, DetectionSchedule, VisionSpeed
from mit_annotator.vision.faces import (
    Face,
    FaceIdentity,
    FacesAtScale,
    face_boxes_from_keypoints,
    head_regions,
    match_faces,
)
from mit_annotator.vision.pose import WholeBodyPose
from mit_annotator.vision.shots import CONTENT_THRESHOLD, ShotDetector
from mit_annotator.vision.tracking import TrackerConfig, appearance_descriptor, track_people

IDENTITY_EVERY = 10  # frames between face identity embeddings (each costs a recogniser run per face)


def annotate_people(video: str | os.PathLike, detector: PersonDetector, pose_model: WholeBodyPose | None = None,
                    face_detector=None, fps: float | None = PROCESSING_FPS,
                    tracker: TrackerConfig | None = None, shot_threshold: float = CONTENT_THRESHOLD,
                    progress: Callable[[int, int], None] | None = None,
                    face_identity: FaceIdentity | None = None) -> VideoTracks:
    """Track everyone in `video` (frames counted at `fps`; None keeps the video's own frames).

    `face_detector`: a YuNetFaceDetector or ScrfdFaceDetector for landmarks (and face boxes where keypoints give
    none); `face_identity` (with a face detector) gives each track an identity embedding.
    """
    info = media.probe(video)
    rate = fps or info.fps
    expected = int(round(info.duration * rate)) if fps else info.num_frames
    tracks = annotate_frames(media.iter_frames(video, fps=fps), rate, detector, pose_model, face_detector, tracker,
                             shot_threshold, progress, expected, face_identity)
    tracks.source = str(video)
    return tracks


def annotate_frames(frames: Iterable[np.ndarray], fps: float, detector: PersonDetector,
                    pose_model: WholeBodyPose | None = None, face_detector=None,
                    tracker: TrackerConfig | None = None, shot_threshold: float = CONTENT_THRESHOLD,
                    progress: Callable[[int, int], None] | None = None, total: int | None = None,
                    face_identity: FaceIdentity | None = None, identity_every: int = IDENTITY_EVERY,
                    speed: VisionSpeed = EXACT) -> VideoTracks:
    """Track everyone in a sequence of RGB frames taken at `fps` (see `annotate_people`).

    `speed`: person detection at a stride (`DetectionSchedule`; the pose model still runs on every frame, on the
    latest detected boxes, and those frames' boxes are then interpolated between detections), and faces searched
    around the heads only. The default, EXACT, looks at every frame whole.
    """
    tracker = tracker or TrackerConfig()
    shots = ShotDetector(fps, threshold=shot_threshold)
    schedule = DetectionSchedule(speed)
    if face_detector is not None and speed.face_search == "heads" and not hasattr(face_detector, "in_regions"):
        face_detector = FacesAtScale(face_detector, 0.0)
    detections: list[list[Detection] | None] = []
    looks: list[list[np.ndarray] | None] = []
    faces: list[list[Face] | None] = []  # per frame; None: not searched
    last_search = last_embedding = -(10 ** 9)
    carried: set[int] = set()  # frames posed on the latest detection's boxes
    boxes, scores = np.zeros((0, 4), np.float32), np.zeros(0, np.float32)
    size = None
    for index, frame in enumerate(frames):
        if size is not None and (frame.shape[1], frame.shape[0]) != size:
            raise ValueError(f"frame {index} is {frame.shape[1]}x{frame.shape[0]}, frame 0 was {size[0]}x{size[1]}")
        size = frame.shape[1], frame.shape[0]
        cut = shots.add(frame)
        looked = schedule.due(index, cut)
        if looked:
            boxes, scores = detector(frame)
            schedule.found(index, boxes)
        elif pose_model is not None:
            carried.add(index)
        found = _people(index, frame, boxes, scores, pose_model) if looked or pose_model is not None else None
        detections.append(found)
        if tracker.reid:
            looks.append(None if found is None else [appearance_descriptor(frame, b) for b in boxes])
        if face_detector is not None and (cut or index - last_search >= speed.faces_every):
            before = faces[last_search] if last_search >= 0 and not cut else []
            faces.append(face_detector.in_regions(frame, *head_regions(boxes, before))
                         if speed.face_search == "heads" else face_detector(frame))
            last_search = index
            if face_identity is not None and index - last_embedding >= identity_every:
                for face in faces[-1]:
                    face.embedding = face_identity.embed(frame, face)
                last_embedding = index
        elif face_detector is not None:
            faces.append(None)
        report(progress, index + 1, max(total or 0, index + 1))
    if size is None:
        raise ValueError("no frames to annotate")
    shot_ranges = shots.shots()
    tracks = track_people(detections, shot_ranges, tracker, looks if tracker.reid else None)
    looked_at = np.array([found is not None for found in detections])
    tracks = [_held_to_the_shot_end(track, shot_ranges, looked_at) for track in tracks]
    for track in tracks:
        _interpolate_carried(track, carried)
        track.face_boxes = face_boxes_from_keypoints(track)
    if face_detector is not None:
        _attach_detected_faces(tracks, faces)
        searched = np.array([found is not None for found in faces])
        for track in tracks:
            _faces_between_searches(track, searched, speed.faces_every)
    return VideoTracks(size[0], size[1], fps, len(detections), tracks, shot_ranges)


def in_source_pixels(tracks: VideoTracks, width: int, height: int) -> VideoTracks:
    """Tracks found on frames scaled from a `width` x `height` source, in the source's pixels."""
    factor = np.array([width / tracks.width, height / tracks.height], np.float32)

    def scaled(values, points=False):
        if values is None:
            return None
        return values * (factor if points else np.tile(factor, 2))

    people = [PersonTrack(t.track_id, t.frames, scaled(t.boxes), scaled(t.keypoints, points=True), t.keypoint_scores,
                          scaled(t.face_boxes), t.shot, scaled(t.face_landmarks, points=True), t.identity)
              for t in tracks.tracks]
    return VideoTracks(width, height, tracks.fps, tracks.num_frames, people, tracks.shots, tracks.source)


def _people(index: int, frame: np.ndarray, boxes: np.ndarray, scores: np.ndarray,
            pose_model: WholeBodyPose | None) -> list[Detection]:
    if pose_model is None:
        return [Detection(index, b, s) for b, s in zip(boxes, scores)]
    points, point_scores = pose_model(frame, boxes)
    return [Detection(index, b, s, p, ps) for b, s, p, ps in zip(boxes, scores, points, point_scores)]


def _held_to_the_shot_end(track: PersonTrack, shots: list[tuple[int, int]], looked: np.ndarray) -> PersonTrack:
    """A track seen at the last look of its shot, held (its last box) to the shot's end: the frames after that look
    were not looked at, and a person there at the last look is taken to stay, as between two looks."""
    last = int(track.frames[-1])
    end = next(e for s, e in shots if s <= last < e)
    if last + 1 >= end or looked[last + 1:end].any():
        return track
    extra = end - last - 1

    def held(values):
        return None if values is None else np.concatenate([values, np.repeat(values[-1:], extra, axis=0)])

    frames = np.concatenate([track.frames, np.arange(last + 1, end)])
    return PersonTrack(track.track_id, frames, held(track.boxes), held(track.keypoints), held(track.keypoint_scores),
                       shot=track.shot)


def _interpolate_carried(track, carried: set[int]) -> None:
    """Boxes of the frames posed on an earlier detection's boxes, interpolated between the detections around them
    (their keypoints are the pose model's own)."""
    if not carried:
        return
    kept = np.array([int(f) not in carried for f in track.frames])
    if kept.all() or not kept.any():
        return
    for k in range(4):
        track.boxes[~kept, k] = np.interp(track.frames[~kept], track.frames[kept], track.boxes[kept, k])


def _faces_between_searches(track: PersonTrack, searched: np.ndarray, every: int) -> None:
    """A track's landmarks (and its face boxes where keypoints gave none) on the frames where faces were not
    searched: interpolated between the searched frames around them that found its face, at most `every` frames
    apart, or held from the one nearer than `every` at the track's ends; left unknown (NaN) elsewhere."""
    if every == 1:
        return
    frames = track.frames.astype(np.int64)
    landmarks = track.face_landmarks.reshape(len(track), -1)
    known = searched[frames] & np.isfinite(landmarks).all(axis=1)
    todo = np.flatnonzero(~searched[frames])
    if not known.any() or not len(todo):
        return
    seen = frames[known]
    after = np.searchsorted(seen, frames[todo])
    previous = np.where(after > 0, seen[np.maximum(after - 1, 0)], -(10 ** 9))
    following = np.where(after < len(seen), seen[np.minimum(after, len(seen) - 1)], 10 ** 9)
    between = following - previous <= every
    near_an_end = ((after == 0) & (following - frames[todo] < every)) | (
        (after == len(seen)) & (frames[todo] - previous < every))
    rows = todo[between | near_an_end]
    for k in range(landmarks.shape[1]):
        landmarks[rows, k] = np.interp(frames[rows], seen, landmarks[known, k])
    track.face_landmarks = landmarks.reshape(len(track), 5, 2)
    unboxed = rows[np.isnan(track.face_boxes[rows]).any(axis=1)]
    boxed = known & np.isfinite(track.face_boxes).all(axis=1)
    if len(unboxed) and boxed.any():
        for k in range(4):
            track.face_boxes[unboxed, k] = np.interp(frames[unboxed], frames[boxed], track.face_boxes[boxed, k])


def _attach_detected_faces(tracks, faces_per_frame) -> None:
    """Detected faces give each track its landmarks, its face box where the keypoints gave none, and its identity
    (the mean of its faces' embeddings)."""
    embeddings = {t.track_id: [] for t in tracks}
    for track in tracks:
        track.face_landmarks = np.full((len(track), 5, 2), np.nan, np.float32)
    for frame, faces in enumerate(faces_per_frame):
        if faces is None:
            continue
        present = [(t, row) for t in tracks if (row := t.row_of(frame)) is not None]
        if not present or not faces:
            continue
        boxes = np.stack([t.boxes[row] for t, row in present])
        hints = np.stack([t.face_boxes[row] for t, row in present])
        for (track, row), face in zip(present, match_faces(boxes, hints, faces)):
            if face is None:
                continue
            track.face_landmarks[row] = face.landmarks
            if np.isnan(track.face_boxes[row]).any():
                track.face_boxes[row] = face.box
            if face.embedding is not None:
                embeddings[track.track_id].append(face.embedding)
    for track in tracks:
        if embeddings[track.track_id]:
            mean = np.mean(embeddings[track.track_id], axis=0)
            track.identity = mean / max(float(np.linalg.norm(mean)), 1e-12)
