"""The annotator's audio pass: who speaks when, and which person on screen each voice belongs to.

Inputs are the video, optionally its tracks (from the vision pass; without them faces are found and tracked here),
and either a diarization (RTTM) or one audio file per speaker; without either, the video's audio is diarized.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

from . import media
from .assignment import AssignmentConfig, assign_speakers
from .diarization import SAMPLE_RATE, DiarizationConfig, Diarizer
from .lips import activity_from_motion, activity_from_openings, mouth_motion, mouth_openings
from .records import PROCESSING_FPS, Detection, Diarization, SpeakerTurn, SpeakingActivity, VideoTracks
from .tracking import TrackerConfig, track_people



def lip_activity(tracks: VideoTracks, frames: Iterable[np.ndarray] | None = None) -> dict[int, np.ndarray]:
    """Per track, per frame: lip activity from the inner-lip keypoints, else from motion around the mouth corners
    (which needs the `frames`, RGB at the tracks' rate; they are only read when some track has no keypoints)."""
    activity = {}
    need_motion = [t for t in tracks.tracks if t.keypoints is None]
    if need_motion:
        if frames is None:
            raise ValueError("tracks without keypoints need the video frames for their lip activity")
        for track_id, values in mouth_motion(frames, need_motion, tracks.num_frames).items():
            activity[track_id] = activity_from_motion(values, tracks.fps)
    for track in tracks.tracks:
        if track.keypoints is not None:
            activity[track.track_id] = activity_from_openings(mouth_openings(track, tracks.num_frames), tracks.fps)
    return activity


def track_faces(video: str | os.PathLike, face_detector, fps: float = PROCESSING_FPS,
                progress: Callable[[int, int], None] | None = None) -> VideoTracks:
    """Tracks of faces alone (box = face box, with the detector's landmarks), for when no poses are at hand."""
    info = media.probe(video)
    expected = int(round(info.duration * fps))
    detections, landmarks = [], {}
    size = None
    for index, frame in enumerate(media.iter_frames(video, fps=fps)):
        size = frame.shape[1], frame.shape[0]
        found = []
        for face in face_detector(frame):
            found.append(Detection(index, face.box, face.score))
            landmarks[(index, tuple(np.round(face.box, 2)))] = face.landmarks
        detections.append(found)
        if progress:
            progress(index + 1, max(expected, index + 1))
    if size is None:
        raise media.MediaError(video, "no frames decoded")
    tracks = track_people(detections, None, TrackerConfig(fill_gaps=False))
    for track in tracks:
        track.face_boxes = track.boxes.copy()
        track.face_landmarks = np.stack([landmarks.get((int(f), tuple(np.round(b, 2))),
                                                       np.full((5, 2), np.nan, np.float32))
                                         for f, b in zip(track.frames, track.boxes)])
    return VideoTracks(size[0], size[1], fps, len(detections), tracks, [(0, len(detections))], source=str(video))


def diarize_media(path: str | os.PathLike, config: DiarizationConfig | None = None,
                  diarizer=None) -> Diarization:
    """Diarize a media file's audio with `diarizer` (a Diarizer, the default, or a PyannoteDiarizer)."""
    samples = media.read_audio(path, SAMPLE_RATE)
    return (diarizer or Diarizer())(samples, config, uri=Path(path).stem)


def person_audio_diarization(paths: list[str | os.PathLike], diarizer: Diarizer | None = None) -> Diarization:
    """One speaker per file (named after the file): the turns are where that file has speech."""
    return voice_tracks_diarization([(Path(path).stem, media.read_audio(path, SAMPLE_RATE)) for path in paths],
                                    diarizer)


def voice_tracks_diarization(voices: list[tuple[str, np.ndarray]], diarizer: Diarizer | None = None) -> Diarization:
    """One speaker per (name, 16 kHz samples) track, e.g. each person's own recording: its turns are where that
    track has speech."""
    diarizer = diarizer or Diarizer()
    turns = [SpeakerTurn(name, start, end) for name, samples in voices
             for start, end in diarizer.speech_regions(samples, DiarizationConfig())]
    return Diarization(turns, uri="person_audio")


def who_speaks(video: str | os.PathLike, tracks: VideoTracks, diarization: Diarization,
               config: AssignmentConfig | None = None) -> tuple[SpeakingActivity, np.ndarray]:
    """Assign `diarization`'s voices to `tracks`' people by their lips; see `assign_speakers`."""
    frames = media.iter_frames(video, fps=tracks.fps, end=tracks.num_frames)  # decoded only if needed
    return assign_speakers(diarization, lip_activity(tracks, frames), tracks.fps, tracks.num_frames, config)
