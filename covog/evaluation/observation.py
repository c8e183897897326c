"""What the pack's annotator observes in a generated video, before any schedule is looked at: its people (faces, or
whole-body poses), each matched to a person of the schedule, LR-ASD scores at shifted audio, the voices and whom the
assignment gives them to (steps 1-3 of covog.evaluate's doc)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from scipy.optimize import linear_sum_assignment

from covog.evaluation import video_metrics as vm
from mit_annotator.core import keypoints as kp
from mit_annotator.core import media
from mit_annotator.core.records import SAMPLE_RATE, Diarization, PersonTrack, SpeakingActivity, VideoTracks

FPS = 25.0  # LR-ASD reads video at 25 fps (and the MIT clips are at 25 fps)
SYNC_MAX_OFFSET = 8  # frames (0.32 s) each way
MATCH_DISTANCE = 1.0  # a detected face is a person's when its centre is within one (intended) face size of theirs
FVD_DETECTOR = "i3d_torchscript.pt"
# where a pose's face points put YuNet's five landmarks (its order: the person's right eye, left eye, nose tip, right
# and left mouth corner): iBUG-68 eye centres (36-41, 42-47), nose tip (30), mouth corners (48, 54)
POSE_LANDMARKS = (kp.EYE_POINTS[:6], kp.EYE_POINTS[6:], [kp.FACE_OFFSET + 30], [kp.MOUTH_CORNER_IMAGE_LEFT],
                  [kp.MOUTH_CORNER_IMAGE_RIGHT])
POINT_SCORE = 0.3


class EvaluationError(ValueError):
    """Input that cannot be evaluated, with the input named."""


@dataclass
class EvaluationSettings:
    models_dir: str | None = None
    asd_model: str = "lr_asd"  # LR-ASD's AVA weights (the pack's default)
    face_model: str = "yunet"
    pose_model: str = "dwpose"  # used when its weights resolve; "none": faces only
    det_model: str = "yolox_l"  # DWPose's person detector, used with the pose model
    device: str = "cpu"
    sync_max_offset: int = SYNC_MAX_OFFSET
    max_speakers: int | None = None  # for diarizing (default: the people + diarization.EXTRA_VOICES)


@dataclass(eq=False)
class ObservedVideo:
    """What the annotator finds in one video, before any schedule is scored: one track per person of the schedule
    (track id = theirs), LR-ASD scores at every audio delay, the voices and whom they were given to."""

    video: str
    frames: np.ndarray  # (frames, H, W, 3) RGB at 25 fps
    audio: np.ndarray  # 16 kHz mono, cut or padded to the frames
    observed: VideoTracks
    detected: dict[int, np.ndarray]  # (frames,) bool: a detected face is theirs
    from_poses: dict[int, np.ndarray]  # (frames,) bool: no detected face, the box the poses give
    matching: str
    pose_model: str | None  # the pose model that ran on the video, or None
    asd_model: str
    crops: list[tuple]  # (FaceClip, face crops), as LR-ASD read them
    asd_by_offset: dict[int, dict[int, np.ndarray]]  # audio delay (frames) -> person -> (frames,) scores
    speaking: SpeakingActivity  # the annotator's who speaks when
    diarization: Diarization
    agreement: np.ndarray  # voices x people, what the assignment was decided on
    notes: list[str]

    @property
    def num_frames(self) -> int:
        return len(self.frames)

    @property
    def ids(self) -> list[int]:
        return [t.track_id for t in self.observed.tracks]


# ---------------------------------------------------------------------------------------------------------------------
# Inputs


def intended_speaking(schedule: SpeakingActivity, frames: int) -> dict[int, np.ndarray]:
    """Per person, (frames,) bool "speaking" at 25 fps (the schedule's score > 0, at its nearest earlier frame)."""
    index = np.minimum(np.floor(np.arange(frames) * schedule.fps / FPS + 1e-6).astype(int), schedule.num_frames - 1)
    return {p.track_id: p.scores[index] > 0 for p in schedule.people}


def schedule_frames(schedule: SpeakingActivity) -> int:
    """How many 25 fps frames the schedule covers."""
    return int(np.floor(schedule.num_frames * FPS / schedule.fps + 1e-6))


def check_tracks(tracks: VideoTracks, ids: list[int], origin: str) -> None:
    if abs(tracks.fps - FPS) > 1e-3:
        raise EvaluationError(f"{origin}: tracks at {tracks.fps:g} fps; the evaluation reads 25 fps tracks (the poses "
                              "the video was made from: `mit_annotator poses --fps 25`)")
    missing = sorted(set(ids) - {t.track_id for t in tracks.tracks})
    if missing:
        raise EvaluationError(f"{origin}: no track for the schedule's people {missing} (the tracks hold "
                              f"{[t.track_id for t in tracks.tracks]})")


# ---------------------------------------------------------------------------------------------------------------------
# People


def find_people(video: str | Path, frames: np.ndarray, settings: EvaluationSettings, notes: list[str]
                ) -> tuple[VideoTracks, str | None]:
    """What the annotator finds in the video: people with poses when DWPose resolves, else faces (YuNet)."""
    from mit_annotator.core.models import ModelNotFoundError, resolve_model
    from mit_annotator.vision.faces import YuNetFaceDetector

    try:
        faces = YuNetFaceDetector(settings.face_model, models_dir=settings.models_dir)
    except ModelNotFoundError as error:
        raise EvaluationError(f"the face detector is needed: {error}") from None
    pose_path = None
    if settings.pose_model != "none":
        try:
            pose_path = resolve_model(settings.pose_model, settings.models_dir)
        except ModelNotFoundError as error:
            notes.append(f"no pose model on the video ({error}): faces from YuNet alone; hand jitter and finger "
                         "flicker are not measured")
    if pose_path is None:
        from mit_annotator.speakers.who_speaks import track_faces

        found = track_faces(video, faces, fps=FPS)
        kept = [t.track_id for t in found.tracks if len(t) and t.frames[0] < len(frames)]
        return found.clip(0, min(len(frames), found.num_frames), kept), None
    from mit_annotator.vision.detection import PersonDetector
    from mit_annotator.vision.people import annotate_frames
    from mit_annotator.vision.pose import WholeBodyPose

    detector = PersonDetector(settings.det_model, device=settings.device, models_dir=settings.models_dir)
    pose = WholeBodyPose(str(pose_path), device=settings.device, models_dir=settings.models_dir)
    return annotate_frames(iter(frames), FPS, detector, pose, faces), pose_path.name


def pose_landmarks(points: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """(5, 2) YuNet-style landmarks from a pose's face points; NaN rows where too few are seen."""
    out = np.full((5, 2), np.nan, np.float32)
    for k, indices in enumerate(POSE_LANDMARKS):
        seen = [i for i in indices if scores[i] >= POINT_SCORE]
        if seen:
            out[k] = points[seen].mean(axis=0)
    return out


def _face_box(track: PersonTrack, row: int) -> np.ndarray:
    box = track.face_boxes[row] if track.face_boxes is not None else np.full(4, np.nan, np.float32)
    if np.isnan(box).any() and track.keypoints is not None:
        box = kp.face_box_from_keypoints(track.keypoints[row], track.keypoint_scores[row])
    return box


def _centre_size(box: np.ndarray) -> tuple[np.ndarray, float]:
    return np.array([(box[0] + box[2]) / 2, (box[1] + box[3]) / 2]), float(max(box[2] - box[0], box[3] - box[1]))


def align_people(found: VideoTracks, ids: list[int], frames: int, size: tuple[int, int],
                 intended: VideoTracks | None = None) -> tuple[VideoTracks, dict, dict, str]:
    """One track per schedule person (see the module's step 1). Returns the tracks (boxes = face boxes), per person
    the frames with a detected face and the frames filled from the poses, and how people were matched."""
    width, height = size
    rows: dict[int, dict[int, tuple]] = {p: {} for p in ids}  # person -> frame -> (box, landmarks, points, scores)
    detected = {p: np.zeros(frames, bool) for p in ids}
    from_poses = {p: np.zeros(frames, bool) for p in ids}

    def observation(track, row):
        box = _face_box(track, row)
        landmarks = (track.face_landmarks[row] if track.face_landmarks is not None
                     else np.full((5, 2), np.nan, np.float32))
        points = None if track.keypoints is None else (track.keypoints[row], track.keypoint_scores[row])
        return box, landmarks, points

    if intended is not None:
        matching = "nearest face to the poses' face, per frame"
        scale = np.array([width / intended.width, height / intended.height] * 2, np.float32)
        for frame in range(frames):
            wanted = []
            for person in ids:
                track = intended.track(person)
                row = track.row_of(frame)
                if row is None:
                    continue
                box = _face_box(track, row) * scale
                if np.isnan(box).any():
                    continue
                landmarks = (pose_landmarks(track.keypoints[row] * scale[:2], track.keypoint_scores[row])
                             if track.keypoints is not None else np.full((5, 2), np.nan, np.float32))
                wanted.append((person, box, landmarks))
            seen = [observation(t, r) for t, r in found.people_at(frame)]
            seen = [o for o in seen if not np.isnan(o[0]).any()]
            taken = {}
            if wanted and seen:
                cost = np.array([[np.linalg.norm(_centre_size(o[0])[0] - _centre_size(w[1])[0])
                                  / max(_centre_size(w[1])[1], 1.0) for o in seen] for w in wanted])
                for r, c in zip(*linear_sum_assignment(cost)):
                    if cost[r, c] <= MATCH_DISTANCE:
                        taken[r] = seen[c]
            for r, (person, box, landmarks) in enumerate(wanted):
                if r in taken:
                    rows[person][frame] = taken[r]
                    detected[person][frame] = True
                else:
                    rows[person][frame] = (box, landmarks, None)
                    from_poses[person][frame] = True
    else:
        matching = "detected face tracks, left to right, in the order of the schedule's track ids"
        tracks = sorted(found.tracks, key=len, reverse=True)
        main, rest = tracks[:len(ids)], tracks[len(ids):]

        def mean_x(track):
            boxes = np.array([_face_box(track, r) for r in range(len(track))])
            return float(np.nanmean((boxes[:, 0] + boxes[:, 2]) / 2)) if len(boxes) else 0.0

        positions = {t.track_id: mean_x(t) for t in tracks}
        main.sort(key=lambda t: positions[t.track_id])
        owner = {t.track_id: person for t, person in zip(main, sorted(ids))}
        for track in rest:  # a fragment joins the person whose position is nearest, where they have no face yet
            if main:
                nearest = min(main, key=lambda t: abs(positions[t.track_id] - positions[track.track_id]))
                owner[track.track_id] = owner[nearest.track_id]
        for track in main + rest:
            person = owner.get(track.track_id)
            if person is None:
                continue
            for row, frame in enumerate(track.frames):
                frame = int(frame)
                if frame < frames and frame not in rows[person]:
                    obs = observation(track, row)
                    if not np.isnan(obs[0]).any():
                        rows[person][frame] = obs
                        detected[person][frame] = True

    with_points = any(t.keypoints is not None for t in found.tracks)
    out = []
    for person in ids:
        order = sorted(rows[person])
        boxes = np.array([rows[person][f][0] for f in order], np.float32).reshape(-1, 4)
        landmarks = np.array([rows[person][f][1] for f in order], np.float32).reshape(-1, 5, 2)
        points = scores = None
        if with_points:
            points = np.zeros((len(order), kp.NUM_KEYPOINTS, 2), np.float32)
            scores = np.zeros((len(order), kp.NUM_KEYPOINTS), np.float32)  # rows from the poses: nothing seen
            for k, f in enumerate(order):
                if rows[person][f][2] is not None:
                    points[k], scores[k] = rows[person][f][2]
        out.append(PersonTrack(person, np.array(order, np.int64), boxes, points, scores, boxes.copy(), 0, landmarks))
    return VideoTracks(width, height, FPS, frames, out, [(0, frames)]), detected, from_poses, matching


# ---------------------------------------------------------------------------------------------------------------------
# Active-speaker scores at shifted audio


def face_crops(frames: np.ndarray, tracks: VideoTracks, model) -> list[tuple]:
    """(FaceClip, (T, 112, 112) uint8 crops) for every face clip of the tracks, as `active_speaker_scores` crops them."""
    from mit_annotator.speakers.asd_inputs import crop_face, face_clips

    greys = {}
    out = []
    for clip in face_clips(tracks, model.config):
        crops = []
        for k in range(len(clip.sizes)):
            frame = clip.start + k
            if frame not in greys:
                greys[frame] = cv2.cvtColor(frames[frame], cv2.COLOR_RGB2GRAY)
            crops.append(crop_face(greys[frame], clip.centres[k], float(clip.sizes[k])))
        out.append((clip, np.stack(crops)))
    return out


def shifted_scores(model, crops: list[tuple], audio: np.ndarray, frames: int, ids: list[int],
                   offsets: list[int]) -> dict[int, dict[int, np.ndarray]]:
    """offset -> person -> (frames,) LR-ASD scores with the audio delayed by `offset` frames (NaN: no face).

    The faces are encoded once and the audio once per delay, then scored as `ActiveSpeakerModel.score_clips` scores
    (its shared-encoder path, whose steps it runs here one by one); at delay 0 the scores are `score_clips`'. With
    `exact_windows` set, `score_clips` runs once per delay."""
    import torch

    from mit_annotator.speakers.asd_inputs import clip_mfcc

    per_frame = SAMPLE_RATE / FPS
    lengths = [len(faces) for _, faces in crops]
    out = {}
    with torch.inference_mode():
        faces = model._encode_faces([f for _, f in crops]) if crops and not model.config.exact_windows else None
        for offset in offsets:
            shifted = vm.delayed(audio, int(round(offset * per_frame)))
            mfccs = [clip_mfcc(shifted, clip.start, len(f)) for clip, f in crops]
            if not crops:
                values = []
            elif faces is None:
                values = model.score_clips([(f, m) for (_, f), m in zip(crops, mfccs)])
            else:
                voices = [model._run(model.network.encode_audio, [m])[0] for m in mfccs]
                values = model._average_windows(
                    lambda group: (torch.stack([voices[k][lo:hi] for k, lo, hi in group]),
                                   torch.stack([faces[k][lo:hi] for k, lo, hi in group])), lengths)
            scores = {p: np.full(frames, np.nan, np.float32) for p in ids}
            for (clip, _), row in zip(crops, values):
                scores[clip.track_id][clip.start:clip.end] = row
            out[offset] = scores
    return out


# ---------------------------------------------------------------------------------------------------------------------
# The whole observation


def observe_video(video: str | Path, ids: list[int], tracks: VideoTracks | None = None,
                   audio: np.ndarray | None = None, frames: int | None = None,
                   settings: EvaluationSettings | None = None) -> ObservedVideo:
    """Run the annotator on the video's first `frames` frames (at 25 fps; default all) for the people `ids` (steps
    1-3 of the module's doc, before any schedule is looked at)."""
    from mit_annotator.audio.diarization import DiarizationConfig, Diarizer
    from mit_annotator.core.models import ModelNotFoundError
    from mit_annotator.speakers.active_speaker import ActiveSpeakerModel
    from mit_annotator.speakers.assignment import Evidence, assign_speakers
    from mit_annotator.speakers.lips import loudness
    from mit_annotator.speakers.who_speaks import lip_activity, mouth_signals

    settings = settings or EvaluationSettings()
    notes: list[str] = []
    if not ids or len(set(ids)) != len(ids):
        raise EvaluationError(f"people to find must be distinct track ids, got {ids}")
    if settings.sync_max_offset < 0:
        raise EvaluationError(f"sync_max_offset must be at least 0, got {settings.sync_max_offset}")
    info = media.probe(video)
    if audio is None:
        if not info.has_audio:
            raise EvaluationError(f"{video} has no audio stream: give the conversation's audio (--audio)")
        audio = media.read_audio(video, SAMPLE_RATE)
    n = int(round(info.duration * FPS)) if frames is None else frames
    if tracks is not None:
        check_tracks(tracks, ids, "the tracks")
    pixels = media.read_frames(video, end=n, fps=FPS)
    n = len(pixels)
    samples = int(round(n * SAMPLE_RATE / FPS))
    if len(audio) < samples:
        notes.append(f"the audio is {len(audio) / SAMPLE_RATE:.2f} s, the video {n / FPS:.2f} s: silence after")
    audio = np.pad(np.asarray(audio, np.float32)[:samples], (0, max(0, samples - len(audio))))
    size = (pixels.shape[2], pixels.shape[1])

    found, pose_model = find_people(video, pixels, settings, notes)
    observed, detected, from_poses, matching = align_people(found, ids, n, size, tracks)
    try:
        asd = ActiveSpeakerModel(settings.asd_model, device=settings.device, models_dir=settings.models_dir)
    except ModelNotFoundError as error:
        raise EvaluationError(f"the active-speaker model is needed: {error}") from None
    crops = face_crops(pixels, observed, asd)
    offsets = list(range(-settings.sync_max_offset, settings.sync_max_offset + 1))
    by_offset = shifted_scores(asd, crops, audio, n, ids, offsets)

    diarization = Diarizer()(audio, DiarizationConfig.for_people(len(ids), settings.max_speakers),
                             uri=Path(video).stem)
    mouths = mouth_signals(observed, pixels)
    evidence = Evidence(lips=lip_activity(observed, mouths=mouths), active_speaker=by_offset[0], mouth=mouths,
                        loudness=loudness(audio, SAMPLE_RATE, FPS, n))
    speaking, agreement = assign_speakers(diarization, evidence, FPS, n)
    return ObservedVideo(str(video), pixels, audio, observed, detected, from_poses, matching, pose_model,
                           asd.path.name, crops, by_offset, speaking, diarization, agreement, notes)
