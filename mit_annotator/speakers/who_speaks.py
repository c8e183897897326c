"""The annotator's audio pass: who speaks when, and which person on screen each voice belongs to.

Inputs are the video, optionally its tracks (from the vision pass; without them faces are found and tracked here),
and either a diarization (RTTM) or one audio file per speaker; without either, the video's audio is diarized.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from mit_annotator.audio.diarization import DiarizationConfig, Diarizer
from mit_annotator.core import media
from mit_annotator.core.backends import Backend
from mit_annotator.core.progress import report
from mit_annotator.core.records import (
    PROCESSING_FPS,
    SAMPLE_RATE,
    Detection,
    Diarization,
    SpeakerTurn,
    SpeakingActivity,
    VideoTracks,
)
from mit_annotator.speakers.assignment import AssignmentConfig, Evidence, assign_speakers
from mit_annotator.speakers.lips import (
    MouthMotion,
    activity_from_motion,
    activity_from_openings,
    loudness,
    mouth_motion,
    mouth_openings,
)
from mit_annotator.vision.tracking import TrackerConfig, track_people

log = logging.getLogger("mit_annotator")


def mouth_signals(tracks: VideoTracks, frames: Iterable[np.ndarray] | None = None) -> dict[int, np.ndarray]:
    """Per track, (num_frames,) the mouth frame by frame: the inner-lip opening where the track has keypoints, else
    motion around the mouth corners (which needs the `frames`, RGB at the tracks' rate; read only in that case)."""
    mouths = {t.track_id: mouth_openings(t, tracks.num_frames) for t in tracks.tracks if t.keypoints is not None}
    need_motion = [t for t in tracks.tracks if t.keypoints is None]
    if need_motion:
        if frames is None:
            raise ValueError("tracks without keypoints need the video frames for their lip activity")
        mouths.update(mouth_motion(frames, need_motion, tracks.num_frames))
    return mouths


def lip_activity(tracks: VideoTracks, frames: Iterable[np.ndarray] | None = None,
                 mouths: dict[int, np.ndarray] | None = None) -> dict[int, np.ndarray]:
    """Per track, per frame: lip activity from the inner-lip keypoints, else from motion around the mouth corners
    (see `mouth_signals`; pass `mouths` when they are at hand)."""
    mouths = mouths if mouths is not None else mouth_signals(tracks, frames)
    return {t.track_id: (activity_from_openings if t.keypoints is not None else activity_from_motion)(
        mouths[t.track_id], tracks.fps) for t in tracks.tracks}


def track_faces(video: str | os.PathLike, face_detector, fps: float = PROCESSING_FPS,
                progress: Callable[[int, int], None] | None = None) -> VideoTracks:
    """Tracks of faces alone (box = face box, with the detector's landmarks), for when no poses are at hand."""
    info = media.probe(video)
    expected = int(round(info.duration * fps))
    faces = []
    size = None
    for index, frame in enumerate(media.iter_frames(video, fps=fps)):
        size = frame.shape[1], frame.shape[0]
        faces.append(list(face_detector(frame)))
        report(progress, index + 1, max(expected, index + 1))
    if size is None:
        raise media.MediaError(video, "no frames decoded")
    return face_tracks(faces, size[0], size[1], fps, source=str(video))


def face_tracks(faces: list[list], width: int, height: int, fps: float, source: str | None = None) -> VideoTracks:
    """Tracks of faces alone from each frame's detected faces (box, score, landmarks): box = face box, with the
    detector's landmarks."""
    detections, landmarks = [], {}
    for index, found in enumerate(faces):
        detections.append([Detection(index, face.box, face.score) for face in found])
        for face in found:
            landmarks[(index, tuple(np.round(face.box, 2)))] = face.landmarks
    tracks = track_people(detections, None, TrackerConfig(fill_gaps=False))
    for track in tracks:
        track.face_boxes = track.boxes.copy()
        track.face_landmarks = np.stack([landmarks.get((int(f), tuple(np.round(b, 2))),
                                                       np.full((5, 2), np.nan, np.float32))
                                         for f, b in zip(track.frames, track.boxes)])
    return VideoTracks(width, height, fps, len(faces), tracks, [(0, len(faces))], source=source)


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
               config: AssignmentConfig | None = None, active_speaker=None, audio: np.ndarray | None = None,
               frames: Iterable[np.ndarray] | None = None, progress: Callable[[int, int], None] | None = None,
               scores: dict[int, np.ndarray] | None = None) -> tuple[SpeakingActivity, np.ndarray]:
    """Assign `diarization`'s voices to `tracks`' people (see `assign_speakers`), by their active-speaker scores
    when `active_speaker` (an ActiveSpeakerModel) is given (lip activity for anyone it could not score), and by
    the synchrony of their mouths with the audio. `audio`: 16 kHz mono (default: the video's); `frames`: RGB at the
    tracks' rate (default: decoded from the video, once, only when needed); `scores`: active-speaker scores per
    person already computed, used instead of running `active_speaker`."""
    if audio is None:
        if video is None:
            raise ValueError("who speaks needs the video, or its audio")
        audio = media.read_audio(video, SAMPLE_RATE)
    evidence = speaking_evidence(video, tracks, audio, None if scores is not None else active_speaker, frames, progress)
    if scores is not None:
        evidence.active_speaker = scores
    speaking, agreement = assign_speakers(diarization, evidence, tracks.fps, tracks.num_frames, config)
    for person in speaking.people:
        log.info("[mit_annotator] person %d: %s, from %s", person.track_id, person.voice or "listener",
                 (person.evidence or "no visual evidence").replace("_", "-"))
    return speaking, agreement


SPEAKER_EVIDENCE = ("auto", "asd", "lips")


class ActiveSpeakerDetector(Protocol):
    def scores(self, video: str | os.PathLike | None, tracks: VideoTracks, audio: np.ndarray | None = None,
               frames: Iterable[np.ndarray] | None = None,
               progress: Callable[[int, int], None] | None = None) -> dict[int, np.ndarray]:
        """Per track id, (num_frames,) float32 scores, > 0 while that face speaks, NaN where it is not scored."""


@dataclass(frozen=True)
class ActiveSpeakerOptions:
    weights: str | os.PathLike = "lr_asd"  # a path, a file in the models folders or a known name
    models_dir: str | os.PathLike | None = None
    device: str = "auto"
    download: bool = False
    precision: str = "auto"  # see active_speaker.ActiveSpeakerConfig


# A new active-speaker model is one module with a make(ActiveSpeakerOptions) function returning an
# ActiveSpeakerDetector, and one line here.
ACTIVE_SPEAKER_MODELS: dict[str, Backend] = {
    "lr_asd": Backend("mit_annotator.speakers.active_speaker:make", "LR-ASD (Liao et al., IJCV 2025)"),
}


def load_active_speaker(evidence: str = "auto", model: str | os.PathLike = "lr_asd",
                        models_dir: str | os.PathLike | None = None, device: str = "auto", download: bool = False,
                        precision: str = "auto", backend: str = "lr_asd") -> ActiveSpeakerDetector | None:
    """The active-speaker model `backend` (ACTIVE_SPEAKER_MODELS) with the weights `model`, for `evidence` "asd"
    (the weights must resolve), "auto" (when they resolve; else None, and a log line says so) or "lips" (None)."""
    from mit_annotator.core.models import ModelNotFoundError

    if evidence not in SPEAKER_EVIDENCE:
        raise ValueError(f"speaker evidence must be one of {', '.join(SPEAKER_EVIDENCE)}, got {evidence!r}")
    if backend not in ACTIVE_SPEAKER_MODELS:
        raise ValueError(f"active-speaker model must be one of {', '.join(ACTIVE_SPEAKER_MODELS)}, got {backend!r}")
    if evidence == "lips":
        return None
    try:
        return ACTIVE_SPEAKER_MODELS[backend].load(ActiveSpeakerOptions(model, models_dir, device, download,
                                                                        precision))
    except ModelNotFoundError as error:
        if evidence == "asd":
            raise
        log.warning("[mit_annotator] no active-speaker model, so lips and their synchrony with the audio decide "
                    "who speaks (%s)", error)
        return None


def speaking_evidence(video: str | os.PathLike, tracks: VideoTracks, audio: np.ndarray, active_speaker=None,
                      frames: Iterable[np.ndarray] | None = None,
                      progress: Callable[[int, int], None] | None = None) -> Evidence:
    """Everything `assign_speakers` reads, from one decode of the frames at most."""
    need_motion = [t for t in tracks.tracks if t.keypoints is None]
    if active_speaker is None and not need_motion:
        frames = ()  # nothing here reads pixels
    elif frames is None:
        frames = media.iter_frames(video, fps=tracks.fps, end=tracks.num_frames)
    motion = MouthMotion(need_motion, tracks.num_frames)
    frames = _observed(frames, motion.add) if need_motion else frames
    scores = {}
    if active_speaker is not None:
        scores = active_speaker.scores(video, tracks, audio=audio, frames=frames, progress=progress)
    else:
        for _ in frames:  # the mouth motion still needs every frame
            pass
    mouths = {t.track_id: mouth_openings(t, tracks.num_frames) for t in tracks.tracks if t.keypoints is not None}
    mouths.update(motion.values)
    return Evidence(lips=lip_activity(tracks, mouths=mouths), active_speaker=scores, mouth=mouths,
                    loudness=loudness(audio, SAMPLE_RATE, tracks.fps, tracks.num_frames))


def _observed(frames: Iterable[np.ndarray], observe: Callable[[int, np.ndarray], None]):
    for index, frame in enumerate(frames):
        observe(index, frame)
        yield frame
