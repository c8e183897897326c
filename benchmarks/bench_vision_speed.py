"""What the fast vision pass loses against every-frame detection, on the same inputs (issue 23's "nothing lost").

    .venv/bin/python benchmarks/bench_vision_speed.py [--seeds 3] [--detect-every 3] [--face-search heads]
                                                      [--faces-every 2] [--detector-input fit]

The vision pass (`annotate_frames`, YOLOX-Nano and YuNet from ../shared/data/models, pose model none, as `annotate`
runs it) once with EXACT (every frame, faces in whole frames, the detector's square input) and once with the given
speed (defaults: `annotate`'s), on:
1. synthetic conversations (2, 3, 4 people, 8 s at 640x384, --seeds each) against their drawn truth: MOTA, misses,
   false positives, id switches;
2. real footage: interact_11.mp4 as it is, its side-by-side remixes (RL, LR, RBL) and the three-person panels of
   the who-speaks benchmark (interact_11's two people and talking_head_1; tune and held-out): the share of each
   track's frames with a face (landmarks detected, or interpolated between searches), and who speaks (LR-ASD fused with lips, the default; one
   diarization per video, shared by both passes), each person's share of frames right.
Also the detector's and the face detector's calls and the vision pass's seconds.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
SHARED = ROOT.parent / "shared" / "data"
MODELS = SHARED / "models"

from diarization_material import LEFT_TALKS, PANELS, RIGHT_TALKS, talkers  # noqa: E402

from mit_annotator.audio.diarization import DiarizationConfig  # noqa: E402
from mit_annotator.audio.diarizers import make_diarizer  # noqa: E402
from mit_annotator.core import media  # noqa: E402
from mit_annotator.pipeline.annotate import AnnotateSettings  # noqa: E402
from mit_annotator.speakers.active_speaker import ActiveSpeakerModel  # noqa: E402
from mit_annotator.speakers.who_speaks import who_speaks  # noqa: E402
from mit_annotator.synthetic import ConversationSpec, default_speech_source, synthesize_conversation  # noqa: E402
from mit_annotator.synthetic.remix import panel, side_by_side  # noqa: E402
from mit_annotator.vision.detection import CANVASES, PersonDetector  # noqa: E402
from mit_annotator.vision.detection_schedule import EXACT, VisionSpeed  # noqa: E402
from mit_annotator.vision.faces import FacesAtScale, YuNetFaceDetector  # noqa: E402
from mit_annotator.vision.metrics import frame_score, score_tracking, speaking_frames  # noqa: E402
from mit_annotator.vision.people import annotate_frames  # noqa: E402


class Counted:
    def __init__(self, model):
        self.model, self.calls = model, 0

    def __call__(self, *args):
        self.calls += 1
        return self.model(*args)


def vision_pass(video: Path, speed: VisionSpeed, detector, faces: FacesAtScale):
    counted_detector, counted_faces = Counted(detector), Counted(faces.detector)
    started = time.perf_counter()
    tracks = annotate_frames(media.iter_frames(video, fps=25.0), 25.0, counted_detector,
                             face_detector=FacesAtScale(counted_faces, faces.min_face), speed=speed)
    return tracks, time.perf_counter() - started, counted_detector.calls, counted_faces.calls


def face_coverage(tracks) -> list[float]:
    """Per track (left to right), the share of its frames with a detected face."""
    ordered = sorted(tracks.tracks, key=lambda t: float(np.nanmean(t.boxes[:, 0] + t.boxes[:, 2])))
    return [float(np.mean(~np.isnan(t.face_landmarks).any(axis=(1, 2)))) if t.face_landmarks is not None else 0.0
            for t in ordered]


def speaking_accuracy(video: Path, tracks, truth: dict, order: tuple, diarization, audio, model) -> list[float]:
    speaking, _ = who_speaks(video, tracks, diarization, active_speaker=model, audio=audio)
    width = tracks.width / len(order)
    accuracy: dict[str, float] = {}
    for track in tracks.tracks:
        centre = float(np.nanmean(track.boxes[:, 0] + track.boxes[:, 2])) / 2
        who = order[min(int(centre // width), len(order) - 1)]
        found = speaking_frames(speaking.person(track.track_id), tracks.num_frames)
        score = frame_score(found, truth[who][:tracks.num_frames]).accuracy
        accuracy[who] = min(accuracy.get(who, 1.0), score)  # a person split in two tracks: the worse
    return [accuracy.get(p, float("nan")) for p in order]


def synthetic_rows(seeds: int, speed: VisionSpeed, detector, faces) -> None:
    speech = default_speech_source()
    print("| people | pass | MOTA | misses | false positives | id switches | detector calls | vision s |")
    print("|---|---|---|---|---|---|---|---|")
    for people in (2, 3, 4):
        totals = {name: np.zeros(6) for name in ("exact", "fast")}
        for seed in range(seeds):
            c = synthesize_conversation(ConversationSpec(num_people=people, seconds=8.0, width=640, height=384,
                                                         seed=seed), speech)
            with tempfile.TemporaryDirectory() as tmp:
                video = Path(c.save(tmp)["video"])
                for name, chosen in (("exact", EXACT), ("fast", speed)):
                    tracks, seconds, calls, _ = vision_pass(video, chosen, detector[name], faces)
                    s = score_tracking(tracks.tracks, c.tracks.tracks, c.tracks.num_frames)
                    totals[name] += [s.ground_truth, s.misses, s.false_positives, s.id_switches, calls, seconds]
        for name, (truth, misses, false, switches, calls, seconds) in totals.items():
            print(f"| {people} | {name} | {1 - (misses + false + switches) / truth:.3f} | {int(misses)} | "
                  f"{int(false)} | {int(switches)} | {int(calls)} | {seconds:.1f} |", flush=True)


def real_videos(folder: Path):
    """(name, split, video, truth per person, order left to right)."""
    interact = SHARED / "video" / "interact_11.mp4"
    frames, audio = media.read_frames(interact, fps=25), media.read_audio(interact, 16000)
    for parts in ("RL", "LR", "RBL"):
        remix = side_by_side(frames, audio, 25.0, 16000, LEFT_TALKS, RIGHT_TALKS, parts)
        video = media.write_video(folder / f"remix_{parts}.mp4", remix.frames, 25.0, remix.audio, 16000)
        yield f"interact_11 remix {parts}", "tune", Path(video), remix.speaking, ("left", "right")
    for name, split, order, stretch, parts in PANELS:
        people = talkers(SHARED, stretch)
        remix = panel([people[p] for p in order], parts, 25.0, 16000)
        video = media.write_video(folder / f"{name}-{split}.mp4", remix.frames, 25.0, remix.audio, 16000)
        yield f"panel {name} ({' '.join(parts)})", split, Path(video), remix.speaking, order


def real_rows(speed: VisionSpeed, detector, faces) -> None:
    diarizer = make_diarizer("auto", MODELS, "cpu", use="assign")
    model = ActiveSpeakerModel(MODELS / "lr_asd" / "pretrain_AVA.model")
    print("\n| video | split | pass | face coverage per track | who speaks, share right per person | lowest | "
          "detector calls | face calls | vision s |")
    print("|---|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        plain = SHARED / "video" / "interact_11.mp4"
        passes = [("interact_11.mp4", "tune", plain, None, ("left", "right")), *real_videos(folder)]
        for name, split, video, truth, order in passes:
            audio = media.read_audio(video, 16000)
            diarization = diarizer(audio, DiarizationConfig.for_people(len(order))) if truth else None
            for pass_name, chosen in (("exact", EXACT), ("fast", speed)):
                tracks, seconds, calls, face_calls = vision_pass(video, chosen, detector[pass_name], faces)
                coverage = " / ".join(f"{v:.3f}" for v in face_coverage(tracks))
                if truth is not None:
                    right = speaking_accuracy(video, tracks, truth, order, diarization, audio, model)
                    speaking, lowest = " / ".join(f"{v:.3f}" for v in right), f"{min(right):.3f}"
                else:
                    speaking, lowest = "-", "-"
                print(f"| {name} | {split} | {pass_name} | {coverage} | {speaking} | {lowest} | {calls} | "
                      f"{face_calls} | {seconds:.1f} |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    defaults = AnnotateSettings()
    parser.add_argument("--detect-every", type=int, default=defaults.detect_every)
    parser.add_argument("--face-search", choices=("heads", "frame"), default=defaults.face_search)
    parser.add_argument("--faces-every", type=int, default=defaults.faces_every)
    parser.add_argument("--detector-input", choices=CANVASES, default=defaults.detector_input)
    parser.add_argument("--only", choices=("synthetic", "real"), default=None)
    args = parser.parse_args()
    speed = VisionSpeed(detect_every=args.detect_every, face_search=args.face_search, faces_every=args.faces_every)
    detector = {"exact": PersonDetector(MODELS / "yolox_nano.onnx"),  # the pass names of synthetic_rows, real_rows
                "fast": PersonDetector(MODELS / "yolox_nano.onnx", canvas=args.detector_input)}
    faces = FacesAtScale(YuNetFaceDetector(MODELS / "face_detection_yunet.onnx"), 64.0)
    print(f"fast pass: {speed}, detector input {args.detector_input}\n")
    if args.only != "real":
        synthetic_rows(args.seeds, speed, detector, faces)
    if args.only != "synthetic":
        real_rows(speed, detector, faces)


if __name__ == "__main__":
    main()
