"""The evaluation report of a generated video: what was observed in it (`observation`) scored against the schedule
of who was meant to speak when, and against a real video of the scene (steps 2-5 of covog.evaluate's doc)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from covog.evaluation import video_metrics as vm
from covog.evaluation.observation import (
    FPS,
    FVD_DETECTOR,
    EvaluationError,
    EvaluationSettings,
    ObservedVideo,
    check_tracks,
    intended_speaking,
    observe_video,
    schedule_frames,
)
from mit_annotator.core import media
from mit_annotator.core.records import SpeakingActivity, VideoTracks

log = logging.getLogger("covog")

FORMAT = "covog.evaluation"
FORMAT_VERSION = 1
MIN_MARGIN = 0.3  # a voice whose best agreement is less than this above the next person's: undecided
MIN_SYNC_FRAMES = 25  # a second of scheduled speech with a scored face, at least, for a sync curve
FVD_CLIP = 16  # frames per FVD sample (the usual setting)


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
    annotation = observe_video(video, ids, tracks, audio, min(video_frames, wanted), settings)
    if abs(video_frames - wanted) > FPS:
        annotation.notes.append(f"the video has {video_frames} frames at 25 fps, the schedule covers {wanted}: the "
                                f"first {annotation.num_frames} are scored")
    return score_video(annotation, schedule, reference_video, settings)


def score_video(annotation: ObservedVideo, schedule: SpeakingActivity, reference_video: str | Path | None = None,
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
