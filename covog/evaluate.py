"""python -m covog.evaluate: how well a generated conversation video does what it was asked, measured by the pack's
own annotator (the benchmark CovOG's paper lacked: who moves their lips to whose voice, in sync, staying the same
person with the same fingers).

    python -m covog.evaluate GENERATED.mp4 --reference-speaking SPEAKING.json [--tracks TRACKS.json] \\
        [--reference-video REAL.mp4] [--audio AUDIO] --out REPORT.json [--plot REPORT.png]

Steps, on the video's frames at 25 fps (LR-ASD's rate) and its audio (or --audio) at 16 kHz:
1. people: faces found and tracked with YuNet (`who_speaks.track_faces`), or, when DWPose's weights are found,
   people with whole-body poses (person detector + DWPose + YuNet, `people.annotate_frames`). Each person of the
   schedule gets the faces that belong to them: with --tracks (the poses the video was made from), per frame the
   detected face nearest the face the poses put there (within one face size), and where none was found, the box the
   poses give (`face_detected_share`, `face_from_poses_share` per person); without --tracks, the detected face
   tracks in left-to-right order stand for the schedule's people in the order of their track ids. The poses' own
   mouths never count as the video's: from the poses only the face box and where the eyes, nose and mouth corners
   are (for measuring motion around the mouth) reach the annotator.
2. speaker attribution: active-speaker scores (LR-ASD) of each face, the audio diarized into voices, and the pack's
   assignment of voices to people (`assignment.assign_speakers`: activity, and the mouth's synchrony with the voice);
   per person, annotated speaking (score > 0) against the intended (the schedule's score > 0): frame accuracy, F1,
   the accuracy that a video independent of the schedule would get (`chance`) and kappa; the confusion matrix of
   whose voice plays (rows) against whose lips the annotator finds moving (columns); each voice, whose it is by the
   schedule and to whom the annotator gave it; and the same scores from LR-ASD alone (score > 0).
3. sync per person: the faces scored again with the audio delayed by -K..K frames; over the frames the schedule has
   them speak, the delay with the highest mean score (> 0: the lips trail the voice) and its margin over the median.
4. temporal consistency: hand jitter and finger-count flicker from DWPose keypoints of the video (only when DWPose
   ran; otherwise the report says so), and face identity drift per person from a simple descriptor of the face box
   (a grey thumbnail and a colour histogram, `video_metrics.face_descriptor`).
5. with --reference-video (read at 25 fps and the generated size, frame for frame): PSNR and SSIM; LPIPS when the
   `lpips` package and its weights load; FVD when an I3D TorchScript detector (`i3d_torchscript.pt`, the one
   StyleGAN-V's FVD code uses) is in the models directory; otherwise the report says why not.

The video's frames are held in memory (about 0.7 MB a frame at 640x384).
"""

from __future__ import annotations

import argparse
import logging
import sys
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from scipy.optimize import linear_sum_assignment

from covog.evaluation import video_metrics as vm
from mit_annotator.core import keypoints as kp
from mit_annotator.core import media
from mit_annotator.core.documents import FormatError, save_json
from mit_annotator.core.files import output_file
from mit_annotator.core.media import SAMPLE_RATE
from mit_annotator.core.records import Diarization, PersonTrack, SpeakingActivity, VideoTracks

log = logging.getLogger("covog")

FORMAT = "covog.evaluation"
FORMAT_VERSION = 1
FPS = 25.0  # LR-ASD reads video at 25 fps (and the MIT clips are at 25 fps)
SYNC_MAX_OFFSET = 8  # frames (0.32 s) each way
MATCH_DISTANCE = 1.0  # a detected face is a person's when its centre is within one (intended) face size of theirs
MIN_MARGIN = 0.3  # a voice whose best agreement is less than this above the next person's: undecided
MIN_SYNC_FRAMES = 25  # a second of scheduled speech with a scored face, at least, for a sync curve
FVD_DETECTOR = "i3d_torchscript.pt"
FVD_CLIP = 16  # frames per FVD sample (the usual setting)
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
class VideoAnnotation:
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
# The evaluation


def annotate_video(video: str | Path, ids: list[int], tracks: VideoTracks | None = None,
                   audio: np.ndarray | None = None, frames: int | None = None,
                   settings: EvaluationSettings | None = None) -> VideoAnnotation:
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
    return VideoAnnotation(str(video), pixels, audio, observed, detected, from_poses, matching, pose_model,
                           asd.path.name, crops, by_offset, speaking, diarization, agreement, notes)


def evaluate(video: str | Path, schedule: SpeakingActivity, tracks: VideoTracks | None = None,
             reference_video: str | Path | None = None, audio: np.ndarray | None = None,
             settings: EvaluationSettings | None = None) -> dict:
    """The report (a JSON-ready dict) of one generated video against the schedule; see the module's doc."""
    if not schedule.people:
        raise EvaluationError("the reference speaking schedule has no people")
    ids = [p.track_id for p in schedule.people]
    if tracks is not None:
        check_tracks(tracks, ids, "--tracks")
    video_frames = int(round(media.probe(video).duration * FPS))
    wanted = schedule_frames(schedule)
    annotation = annotate_video(video, ids, tracks, audio, min(video_frames, wanted), settings)
    if abs(video_frames - wanted) > FPS:
        annotation.notes.append(f"the video has {video_frames} frames at 25 fps, the schedule covers {wanted}: the "
                                f"first {annotation.num_frames} are scored")
    return score_video(annotation, schedule, reference_video, settings)


def score_video(annotation: VideoAnnotation, schedule: SpeakingActivity, reference_video: str | Path | None = None,
                settings: EvaluationSettings | None = None) -> dict:
    """The report of an annotated video against a schedule of who is meant to speak when (and, with
    `reference_video`, against a real video of the scene)."""
    settings = settings or EvaluationSettings()
    ids, n = annotation.ids, annotation.num_frames
    missing = sorted(set(ids) - {p.track_id for p in schedule.people})
    if missing:
        raise EvaluationError(f"the schedule has no people {missing}; the video was annotated for {ids}")
    if schedule_frames(schedule) < n:
        raise EvaluationError(f"the schedule covers {schedule_frames(schedule)} frames at 25 fps; {n} were annotated")
    intended = intended_speaking(schedule, n)
    intended = {p: intended[p] for p in ids}
    scores = annotation.asd_by_offset[0]
    annotated = {p: annotation.speaking.person(p).scores > 0 for p in ids}
    by_asd = {p: np.nan_to_num(scores[p], nan=-1.0) > 0 for p in ids}
    report = {
        "format": FORMAT, "version": FORMAT_VERSION, "video": annotation.video, "frames": n, "fps": FPS,
        "size": [annotation.frames.shape[2], annotation.frames.shape[1]],
        "inputs": {"reference_speaking_people": ids, "reference_video": None if reference_video is None
                   else str(reference_video)},
        "models": {"faces": settings.face_model, "pose": annotation.pose_model, "active_speaker": annotation.asd_model,
                   "identity": "thumbnail + colour histogram (video_metrics.face_descriptor)"},
        "people": [{"track_id": p, "matching": annotation.matching,
                    "face_detected_share": round(float(annotation.detected[p].mean()), 4),
                    "face_from_poses_share": round(float(annotation.from_poses[p].mean()), 4)} for p in ids],
        "attribution": attribution_report(annotated, intended, by_asd, annotation.speaking, annotation.diarization,
                                          annotation.agreement),
        "sync": sync_report(annotation.asd_by_offset, intended, ids),
        "temporal": {"hands": hands_report(annotation.observed, annotation.pose_model),
                     "identity": identity_report(annotation.frames, annotation.observed)},
        "reference": None if reference_video is None else reference_report(annotation.frames, reference_video,
                                                                            settings),
        "series": {"intended": {str(p): intended[p].astype(int).tolist() for p in ids},
                   "annotated": {str(p): annotated[p].astype(int).tolist() for p in ids},
                   "active_speaker": {str(p): [None if np.isnan(v) else round(float(v), 3) for v in scores[p]]
                                      for p in ids}},
    }
    report["notes"] = list(annotation.notes) + undecided_voices(report["attribution"])
    return report


def attribution_report(annotated, intended, by_asd, speaking, diarization, agreement) -> dict:
    ids = sorted(intended)
    scores = {p: vm.attribution_score(annotated[p], intended[p]) for p in ids}
    asd_scores = {p: vm.attribution_score(by_asd[p], intended[p]) for p in ids}
    rows, columns, counts = vm.speaking_confusion(annotated, intended)
    voices = []
    people = sorted(intended)
    for r, voice in enumerate(diarization.speakers):
        activity = diarization.activity(voice, FPS, len(intended[ids[0]])) > 0.5
        overlap = {p: float((activity & intended[p]).sum()) / max(int(activity.sum()), 1) for p in ids}
        owner = max(overlap, key=overlap.get) if overlap and max(overlap.values()) > 0.5 else None
        given = [p.track_id for p in speaking.people if p.voice and voice in p.voice.split("+")]
        voices.append({"voice": voice, "seconds": round(float(activity.sum()) / FPS, 2),
                       "schedule_owner": owner, "annotated_owner": given[0] if given else None,
                       "margin": agreement_margin(agreement[r]),
                       "agreement": {str(p): (None if np.isnan(v) else round(float(v), 4))
                                     for p, v in zip(people, agreement[r])}})

    def mean(values, key):
        return round(float(np.mean([getattr(v, key) for v in values.values()])), 4)

    return {
        "frame_accuracy": mean(scores, "accuracy"), "f1": mean(scores, "f1"), "chance": mean(scores, "chance"),
        "kappa": mean(scores, "kappa"),
        "per_person": [{"track_id": p, **scores[p].to_dict(), "voice": speaking.person(p).voice,
                        "evidence": speaking.person(p).evidence} for p in ids],
        "confusion": {"rows_whose_voice": rows, "columns_whose_lips": columns, "frames": counts.tolist()},
        "voices": voices,
        "active_speaker_only": {"frame_accuracy": mean(asd_scores, "accuracy"), "f1": mean(asd_scores, "f1"),
                                "kappa": mean(asd_scores, "kappa"),
                                "per_person": [{"track_id": p, **asd_scores[p].to_dict()} for p in ids]},
    }


def agreement_margin(agreements: np.ndarray) -> float | None:
    """How far the voice's best-agreeing person stands above the next (None with fewer than two measured): near 0,
    the annotator could not tell whose voice it is, and where it went is a guess."""
    measured = np.sort(np.asarray(agreements, np.float64)[~np.isnan(agreements)])
    return round(float(measured[-1] - measured[-2]), 4) if len(measured) >= 2 else None


def undecided_voices(attribution: dict) -> list[str]:
    """Notes for the voices whose owner the annotator could not tell apart (margin below MIN_MARGIN)."""
    return [f"voice {v['voice']} ({v['seconds']} s): every person agrees with it about as well (margin "
            f"{v['margin']:.2f} < {MIN_MARGIN}): whom it went to is a guess, and the attribution scores carry it; "
            "lips too small or too still to tell, or active-speaker scores that follow the audio alone"
            for v in attribution["voices"] if v["margin"] is not None and v["margin"] < MIN_MARGIN]


def sync_report(by_offset, intended, ids) -> dict:
    per_person = []
    for p in ids:
        score = vm.sync_score({o: s[p] for o, s in by_offset.items()}, intended[p], MIN_SYNC_FRAMES)
        entry = {"track_id": p}
        if score is None:
            entry["note"] = f"fewer than {MIN_SYNC_FRAMES} scheduled speaking frames with a scored face"
        else:
            entry.update(score.to_dict(FPS))
        per_person.append(entry)
    return {"max_offset_frames": max(by_offset), "per_person": per_person}


def hands_report(observed: VideoTracks, pose_model: str | None) -> dict:
    if pose_model is None or all(t.keypoints is None for t in observed.tracks):
        return {"ran": False, "note": "no DWPose keypoints of the video (the pose model's weights were not found): "
                                      "hand jitter and finger flicker not measured"}
    people = []
    for track in observed.tracks:
        entry = {"track_id": track.track_id}
        for side, root in vm.HANDS.items():
            full = np.full((observed.num_frames, 21, 2), np.nan)
            full[track.frames] = vm.hand_points(track.keypoints, track.keypoint_scores, root)
            jitter = vm.hand_jitter(full)
            entry[side] = {"jitter": None if np.isnan(jitter) else round(jitter, 4),
                           **vm.count_flicker(vm.finger_counts(full))}
        people.append(entry)
    return {"ran": True, "model": pose_model, "per_person": people}


def identity_report(frames: np.ndarray, observed: VideoTracks) -> dict:
    descriptors = {}
    for track in observed.tracks:
        row = [None] * observed.num_frames
        for frame, box in zip(track.frames, track.face_boxes):
            row[int(frame)] = vm.face_descriptor(frames[int(frame)], box)
        descriptors[track.track_id] = row
    drift = vm.identity_drift(descriptors, FPS)
    per_person = []
    for person, values in drift.items():
        per_person.append({"track_id": person, **{k: (None if v is None else round(v, 4)) for k, v in values.items()
                                                    if k != "drift"},
                           "drift_curve": [None if np.isnan(v) else round(float(v), 4) for v in values["drift"]]})
    return {"descriptor": "24x24 grey thumbnail + 4x4x4 RGB histogram of the face box", "per_person": per_person}


def reference_report(frames: np.ndarray, reference_video: str | Path, settings: EvaluationSettings) -> dict:
    size = (frames.shape[2], frames.shape[1])
    reference = media.read_frames(reference_video, end=len(frames), fps=FPS, size=size)
    n = min(len(reference), len(frames))
    psnrs = [vm.psnr(a, b) for a, b in zip(frames[:n], reference[:n])]
    ssims = [vm.ssim(a, b) for a, b in zip(frames[:n], reference[:n])]
    finite = [v for v in psnrs if np.isfinite(v)]
    out = {"frames": n, "psnr": round(float(np.mean(finite)), 3) if finite else None,
           "ssim": round(float(np.mean(ssims)), 4),
           "psnr_curve": [round(v, 3) if np.isfinite(v) else None for v in psnrs],
           "ssim_curve": [round(v, 4) for v in ssims]}
    out["lpips"], out["lpips_note"] = lpips_distance(frames[:n], reference[:n])
    out["fvd"], out["fvd_note"] = fvd(frames[:n], reference[:n], settings)
    return out


def lpips_distance(a: np.ndarray, b: np.ndarray) -> tuple[float | None, str]:
    try:
        import lpips
        import torch
    except ImportError as error:
        return None, (f"LPIPS not computed: the lpips package cannot be imported ({error}); it needs torchvision, "
                      "which this environment does not have")
    try:
        net = lpips.LPIPS(net="alex", verbose=False).eval()
    except Exception as error:  # its backbone's weights download through torchvision; offline this fails
        return None, f"LPIPS not computed: its network did not load ({str(error).splitlines()[0]})"
    with torch.no_grad():
        x = torch.from_numpy(a).permute(0, 3, 1, 2).float() / 127.5 - 1
        y = torch.from_numpy(b).permute(0, 3, 1, 2).float() / 127.5 - 1
        values = torch.cat([net(x[k:k + 16], y[k:k + 16]).flatten() for k in range(0, len(x), 16)])
    return round(float(values.mean()), 4), "LPIPS (AlexNet), mean over frames"


def fvd(a: np.ndarray, b: np.ndarray, settings: EvaluationSettings) -> tuple[float | None, str]:
    """FVD between the two videos' 16-frame clips (non-overlapping), I3D features of the TorchScript detector."""
    from mit_annotator.core.models import ModelNotFoundError, resolve_model

    try:
        path = resolve_model(FVD_DETECTOR, settings.models_dir)
    except ModelNotFoundError:
        return None, (f"FVD not computed: no I3D detector {FVD_DETECTOR} in the models directory (the file StyleGAN-V's "
                      "FVD code downloads; put it there to get FVD)")
    clips = len(a) // FVD_CLIP
    if clips < 2:
        return None, f"FVD not computed: it needs at least 2 clips of {FVD_CLIP} frames, the videos give {clips}"
    import torch

    detector = torch.jit.load(str(path), map_location="cpu").eval()

    def features(frames):
        video = torch.from_numpy(frames[:clips * FVD_CLIP]).float() / 127.5 - 1  # (T, H, W, 3) in -1..1
        video = video.reshape(clips, FVD_CLIP, *video.shape[1:]).permute(0, 4, 1, 2, 3)  # (clips, 3, T, H, W)
        with torch.no_grad():
            return detector(video, rescale=False, resize=True, return_features=True).numpy()

    value = vm.frechet_distance(features(a), features(b))
    return round(value, 3), (f"FVD over {clips} clips of {FVD_CLIP} frames of one video pair: a rough figure (FVD is "
                             "meant for hundreds of videos)")


# ---------------------------------------------------------------------------------------------------------------------
# The figure

COLOURS = ((40, 90, 200), (200, 60, 40), (40, 160, 80), (200, 150, 30), (140, 60, 170), (30, 150, 160))
WIDTH, LABEL = 1000, 170


def _text(image, text, x, y, scale=0.45, colour=(0, 0, 0)):
    cv2.putText(image, text, (int(x), int(y)), cv2.FONT_HERSHEY_SIMPLEX, scale, colour, 1, cv2.LINE_AA)


def _plot(image, box, xs, series, y_range, labels=None):
    """Lines in a box (x1, y1, x2, y2) of `image`; series: [(values, colour)], None/NaN values skipped."""
    x1, y1, x2, y2 = box
    cv2.rectangle(image, (x1, y1), (x2, y2), (180, 180, 180), 1)
    lo, hi = y_range
    xs = np.asarray(xs, float)
    span = max(xs.max() - xs.min(), 1e-9) if len(xs) else 1.0
    for values, colour in series:
        points = [(int(x1 + (x - xs.min()) / span * (x2 - x1)), int(y2 - (np.clip(v, lo, hi) - lo) / (hi - lo) * (y2 - y1)))
                  for x, v in zip(xs, values) if v is not None and np.isfinite(v)]
        for p, q in zip(points[:-1], points[1:]):
            cv2.line(image, p, q, colour, 1, cv2.LINE_AA)
    if labels:
        _text(image, labels[0], x1 + 3, y1 + 14, 0.4, (90, 90, 90))


def report_figure(report: dict) -> np.ndarray:
    """One RGB image: who speaks when (intended, annotated, LR-ASD scores), the confusion matrix, sync curves,
    identity drift, and PSNR/SSIM per frame against the reference video when there is one."""
    ids = report["inputs"]["reference_speaking_people"]
    n = report["frames"]
    attribution = report["attribution"]
    series = report["series"]
    band = 70
    height = 60 + band * len(ids) + 40 + max(60 + 34 * (len(ids) + 1), 190) + (150 if report["reference"] else 0)
    image = np.full((height, WIDTH, 3), 250, np.uint8)
    _text(image, f"{Path(report['video']).name}: {n} frames; speaker attribution accuracy "
                 f"{attribution['frame_accuracy']:.3f} (chance {attribution['chance']:.3f}), F1 {attribution['f1']:.3f}, "
                 f"kappa {attribution['kappa']:.3f}", 8, 20, 0.5)
    _text(image, "per person: schedule (grey), annotator (colour), LR-ASD score (line, -4..4)", 8, 42, 0.42,
          (90, 90, 90))
    scale = (WIDTH - LABEL - 10) / max(n, 1)
    top = 55
    for k, person in enumerate(ids):
        colour = COLOURS[k % len(COLOURS)]
        y = top + k * band
        entry = attribution["per_person"][k]
        _text(image, f"person {person}", 8, y + 18, 0.45)
        _text(image, f"acc {entry['accuracy']:.2f} F1 {entry['f1']:.2f}", 8, y + 38, 0.4, (90, 90, 90))
        for row, key, shade in ((0, "intended", (150, 150, 150)), (1, "annotated", colour)):
            values = np.asarray(series[key][str(person)], bool)
            for start, end in _runs(values):
                cv2.rectangle(image, (LABEL + int(start * scale), y + 4 + row * 14),
                              (LABEL + max(int(end * scale), int(start * scale) + 1), y + 14 + row * 14), shade, -1)
        _plot(image, (LABEL, y + 32, WIDTH - 10, y + band - 6), np.arange(n),
              [(series["active_speaker"][str(person)], colour)], (-4, 4))
    y = top + band * len(ids) + 20
    _text(image, "whose voice (rows) x whose lips move (columns), frames", 8, y, 0.45)
    counts = np.asarray(attribution["confusion"]["frames"], float)
    labels = attribution["confusion"]["rows_whose_voice"]
    cell = 34
    shares = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    for r in range(len(labels)):
        _text(image, labels[r], 8, y + 22 + cell * (r + 1) - 12, 0.4)
        for c in range(len(labels)):
            x0, y0 = 80 + c * cell * 2, y + 10 + cell * r + 6
            shade = int(250 - 170 * shares[r, c])
            cv2.rectangle(image, (x0, y0), (x0 + 2 * cell - 2, y0 + cell - 2), (shade, shade, 255), -1)
            _text(image, str(int(counts[r, c])), x0 + 6, y0 + 21, 0.4)
            if r == 0:
                _text(image, labels[c], x0 + 6, y + 12, 0.4)
    x0 = 80 + len(labels) * cell * 2 + 30
    _text(image, "sync: mean LR-ASD score vs audio delay (frames)", x0, y, 0.42)
    width = (WIDTH - x0 - 20) // 2
    for k, entry in enumerate(report["sync"]["per_person"]):
        if "curve" not in entry:
            continue
        _plot(image, (x0, y + 10 + k * 0, x0 + width, y + 170), entry["offsets"],
              [(entry["curve"], COLOURS[k % len(COLOURS)])], (min(min(e.get("curve", [0])) for e in
                                                                 report["sync"]["per_person"]) - 0.1,
                                                             max(max(e.get("curve", [0])) for e in
                                                                 report["sync"]["per_person"]) + 0.1))
    x1 = x0 + width + 10
    _text(image, "face identity drift (1 - cosine to the first second)", x1, y, 0.42)
    _plot(image, (x1, y + 10, WIDTH - 10, y + 170), np.arange(n),
          [(entry["drift_curve"], COLOURS[k % len(COLOURS)])
           for k, entry in enumerate(report["temporal"]["identity"]["per_person"])], (0, 1))
    if report["reference"]:
        ref = report["reference"]
        y = height - 140
        _text(image, f"against the reference video: PSNR {ref['psnr']} dB (blue, 0-50), SSIM {ref['ssim']} "
                     "(red, 0-1)", 8, y, 0.45)
        xs = np.arange(len(ref["psnr_curve"]))
        _plot(image, (LABEL, y + 10, WIDTH - 10, y + 130), xs, [(ref["psnr_curve"], (40, 90, 200))], (0, 50))
        _plot(image, (LABEL, y + 10, WIDTH - 10, y + 130), xs, [(ref["ssim_curve"], (200, 60, 40))], (0, 1))
    return image


def _runs(values: np.ndarray) -> list[tuple[int, int]]:
    edges = np.flatnonzero(np.diff(np.concatenate([[0], values.astype(int), [0]])))
    return list(zip(edges[::2], edges[1::2]))


# ---------------------------------------------------------------------------------------------------------------------
# The command line


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m covog.evaluate", description=__doc__.split("\n\n")[0])
    parser.add_argument("video", help="the generated video (mp4 with its audio)")
    parser.add_argument("--reference-speaking", required=True,
                        help="who was meant to speak when: a speaking JSON (mit_annotator assign, or the one the video "
                             "was generated with)")
    parser.add_argument("--tracks", default=None, help="the poses the video was made from (their track ids are the "
                                                       "schedule's); without them faces are matched left to right")
    parser.add_argument("--reference-video", default=None, help="a real video of the same scene: PSNR, SSIM, ...")
    parser.add_argument("--audio", default=None, help="the conversation's audio (default: the video's own)")
    parser.add_argument("--out", required=True, type=output_file, help="report JSON to write")
    parser.add_argument("--plot", default=None, help="report PNG to write (default: beside --out)")
    parser.add_argument("--models", default=None, help="models directory (YuNet, LR-ASD, DWPose, I3D)")
    parser.add_argument("--asd-model", default="lr_asd", help="LR-ASD weights: a path or a known name")
    parser.add_argument("--pose-model", default="dwpose", help="pose model for hands: a path, a known name or none")
    parser.add_argument("--det-model", default="yolox_l", help="person detector used with the pose model")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda", "auto"])
    parser.add_argument("--sync-max-offset", type=int, default=SYNC_MAX_OFFSET,
                        help=f"audio delays tried each way, in frames (default {SYNC_MAX_OFFSET})")
    parser.add_argument("--max-speakers", type=int, default=None, help="for diarizing (default: people + 2)")
    return parser.parse_args(argv)


def run(args: argparse.Namespace) -> tuple[Path, Path, dict]:
    if args.sync_max_offset < 0:
        raise EvaluationError(f"--sync-max-offset must be at least 0, got {args.sync_max_offset}")
    for name in ("video", "reference_speaking", "tracks", "reference_video", "audio"):
        value = getattr(args, name)
        if value is not None and not Path(value).is_file():
            raise FileNotFoundError(f"--{name.replace('_', '-')} {value}: no such file" if name != "video"
                                    else f"video {value}: no such file")
    schedule = SpeakingActivity.load(args.reference_speaking)
    tracks = VideoTracks.load(args.tracks) if args.tracks else None
    audio = media.read_audio(args.audio, SAMPLE_RATE) if args.audio else None
    settings = EvaluationSettings(models_dir=args.models, asd_model=args.asd_model, pose_model=args.pose_model,
                                  det_model=args.det_model, device=args.device, sync_max_offset=args.sync_max_offset,
                                  max_speakers=args.max_speakers)
    report = evaluate(args.video, schedule, tracks, args.reference_video, audio, settings)
    out = save_json(report, args.out)
    plot = Path(args.plot) if args.plot else out.with_suffix(".png")
    image = report_figure(report)
    if not cv2.imwrite(str(plot), cv2.cvtColor(image, cv2.COLOR_RGB2BGR)):
        raise EvaluationError(f"--plot {plot}: cannot write the image there")
    return out, plot, report


def main(argv=None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    try:
        out, plot, report = run(args)
    except (ValueError, FileNotFoundError, media.MediaError, FormatError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    a = report["attribution"]
    print(f"speaker attribution: frame accuracy {a['frame_accuracy']:.3f} (chance {a['chance']:.3f}), "
          f"F1 {a['f1']:.3f}, kappa {a['kappa']:.3f}")
    for entry in report["sync"]["per_person"]:
        if "offset_frames" in entry:
            print(f"  person {entry['track_id']}: sync offset {entry['offset_frames']:+d} frames, confidence "
                  f"{entry['confidence']:.3f}")
    for note in report["notes"]:
        print(f"note: {note}")
    print(f"wrote {out} and {plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
