"""Who speaks on real footage, and how fast the active-speaker model runs.

    python benchmarks/bench_active_speaker.py accuracy [--seeds 3]    # frame accuracy per person, per evidence
    python benchmarks/bench_active_speaker.py speed [--device cpu]   # real-time factor per face
    python benchmarks/bench_active_speaker.py precision              # int8 scores against float32's

accuracy: ../shared/data/video/interact_11.mp4 (two people, turns known) as it is and remixed (see
mit_annotator.synthetic.remix: listeners whose lips move with their voice muted; two people at once), faces found by
YuNet, the audio diarized, voices assigned by lips alone and with each released LR-ASD weight file; then synthetic
conversations of 2-4 people with an off-screen voice.
speed: LR-ASD over a 10 s clip with 3 faces (640x360) and over interact_11, both scoring modes.
precision: the default int8 visual encoder against float32 on those clips and a remix, both weight files.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SHARED = ROOT.parent / "shared" / "data"
VIDEO = SHARED / "video" / "interact_11.mp4"
WEIGHTS = {"TalkSet": SHARED / "models" / "lr_asd" / "finetuning_TalkSet.model",
           "AVA": SHARED / "models" / "lr_asd" / "pretrain_AVA.model"}
YUNET = SHARED / "models" / "face_detection_yunet.onnx"
LEFT_TALKS, RIGHT_TALKS = slice(118, 208), slice(5, 95)  # frames at 25 fps where only that person speaks

from mit_annotator.audio.diarization import DiarizationConfig, Diarizer  # noqa: E402
from mit_annotator.core import media  # noqa: E402
from mit_annotator.speakers.active_speaker import (  # noqa: E402
    PRECISIONS,
    ActiveSpeakerConfig,
    ActiveSpeakerModel,
    active_speaker_scores,
)
from mit_annotator.speakers.who_speaks import track_faces, who_speaks  # noqa: E402
from mit_annotator.synthetic.remix import side_by_side  # noqa: E402
from mit_annotator.vision.faces import YuNetFaceDetector  # noqa: E402
from mit_annotator.vision.metrics import frame_score, speaking_f1, speaking_frames, voice_mapping  # noqa: E402


def interact_truth(num_frames: int, stretch: float) -> dict[str, np.ndarray]:
    """Who speaks per frame in interact_11 from its turns file, times multiplied by `stretch`."""
    turns = json.loads(VIDEO.with_suffix(".turns.json").read_text())["speaking_seconds"]
    truth = {}
    for side, spans in turns.items():
        truth[side] = np.zeros(num_frames, bool)
        for start, end in spans:
            truth[side][int(round(start * stretch * 25)):int(round(end * stretch * 25))] = True
    return truth


def side_of(track, width: int) -> str:
    return "left" if np.nanmean(track.boxes[:, 0] + track.boxes[:, 2]) / 2 < width / 2 else "right"


def evaluate(video: Path, truths: dict[str, dict[str, np.ndarray]], models: dict, diarizer: Diarizer) -> list[str]:
    tracks = track_faces(video, YuNetFaceDetector(YUNET))
    audio = media.read_audio(video, 16000)
    diarization = diarizer(audio, DiarizationConfig(max_speakers=4))
    rows = []
    for name, model in models.items():
        speaking, _ = who_speaks(video, tracks, diarization, active_speaker=model, audio=audio)
        for truth_name, truth in truths.items():
            scores = {side_of(t, tracks.width): frame_score(speaking_frames(speaking.person(t.track_id),
                                                                            tracks.num_frames),
                                                            truth[side_of(t, tracks.width)][:tracks.num_frames])
                      for t in tracks.tracks}
            rows.append(f"| {video.stem} | {truth_name} | {name} | "
                        f"{scores['left'].accuracy:.3f} / {scores['right'].accuracy:.3f} | "
                        f"{scores['left'].f1:.3f} / {scores['right'].f1:.3f} | "
                        f"{len(diarization.speakers)} | {', '.join(speaking.unassigned_voices) or '-'} |")
    return rows


def accuracy(args) -> None:
    diarizer = Diarizer()
    config = ActiveSpeakerConfig(precision=args.precision)
    models = {"lips + synchrony": None, **{f"LR-ASD {k}" + (" float32" if args.precision == "float32" else ""):
                                           ActiveSpeakerModel(v, config=config) for k, v in WEIGHTS.items()}}
    if args.part != "real":
        synthetic(models, diarizer, args.seeds)
    if args.part == "synthetic":
        return
    frames, audio = media.read_frames(VIDEO, fps=25), media.read_audio(VIDEO, 16000)
    print("| video | truth | evidence | accuracy left / right | F1 left / right | voices | unassigned |")
    print("|---|---|---|---|---|---|---|")
    n = len(frames)
    for row in evaluate(VIDEO, {"turns file": interact_truth(n, 1.0), "turns x 25/24": interact_truth(n, 25 / 24)},
                        models, diarizer):
        print(row, flush=True)
    with tempfile.TemporaryDirectory() as folder:
        for parts in ("RL", "LR", "RBL"):
            remix = side_by_side(frames, audio, 25.0, 16000, LEFT_TALKS, RIGHT_TALKS, parts)
            path = media.write_video(Path(folder) / f"remix_{parts}.mp4", remix.frames, 25.0, remix.audio, 16000)
            for row in evaluate(path, {"remix": remix.speaking}, models, diarizer):
                print(row, flush=True)


def synthetic(models: dict, diarizer: Diarizer, seeds: int) -> None:
    from mit_annotator.synthetic import ConversationSpec, LibriSpeechSource, synthesize_conversation

    speech = LibriSpeechSource(SHARED / "speech" / "librispeech_test-other")
    print("| evidence | people | voices on the right person | off-screen voice left unassigned | speaking F1 |")
    print("|---|---|---|---|---|")
    for name, model in models.items():
        for people in (2, 3, 4):
            right = total = offscreen = 0
            f1s = []
            for seed in range(seeds):
                c = synthesize_conversation(ConversationSpec(num_people=people, seconds=4.0 * people + 6,
                                                             width=160 * people, height=192, seed=100 + seed,
                                                             offscreen_voice=True), speech)  # bench_audio's
                with tempfile.TemporaryDirectory() as folder:
                    paths = c.save(folder)
                    hypothesis = diarizer(c.mix, DiarizationConfig(max_speakers=people + 2))
                    speaking, _ = who_speaks(paths["video"], c.tracks, hypothesis, active_speaker=model, audio=c.mix)
                to_truth = voice_mapping(hypothesis, c.diarization)
                for person in speaking.people:
                    voices = person.voice.split("+") if person.voice else []
                    total += 1
                    right += bool(voices) and all(to_truth.get(v) == c.voices[person.track_id] for v in voices)
                offscreen += all(to_truth.get(v) not in c.voices for v in speaking.unassigned_voices) and any(
                    to_truth.get(v) in c.offscreen_voices for v in speaking.unassigned_voices)
                f1s.append(speaking_f1(speaking, c.speaking))
            print(f"| {name} | {people} | {right}/{total} | {offscreen}/{seeds} | {np.mean(f1s):.3f} |", flush=True)


def ten_seconds_three_faces():
    """The speed goal's clip: a synthetic conversation of 10 s with 3 faces at 640x360."""
    from mit_annotator.synthetic import ConversationSpec, LibriSpeechSource, synthesize_conversation

    speech = LibriSpeechSource(SHARED / "speech" / "librispeech_test-other")
    return synthesize_conversation(ConversationSpec(num_people=3, seconds=10.0, width=640, height=360, seed=2),
                                   speech)


def speed(args) -> None:
    import torch

    conversation = ten_seconds_three_faces()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {args.device}")
    print("| clip | faces | mode | seconds (best of 3) | real-time factor per face |")
    print("|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as folder:
        paths = conversation.save(folder)
        clips = [("synthetic 10 s, 640x360", paths["video"], conversation.tracks, conversation.mix),
                 ("interact_11 (8.5 s, 832x448)", VIDEO, track_faces(VIDEO, YuNetFaceDetector(YUNET)),
                  media.read_audio(VIDEO, 16000))]
        modes = {"encoders once per clip, visual encoder in int8 on ONNX Runtime (default)": ActiveSpeakerConfig(),
                 "encoders once per clip, visual encoder in float32 on ONNX Runtime": ActiveSpeakerConfig(
                     precision="float32"),
                 "encoders once per clip, all on torch": ActiveSpeakerConfig(onnx_runtime=False),
                 "encoders per window (published demo), ONNX Runtime": ActiveSpeakerConfig(exact_windows=True)}
        for mode, config in modes.items():
            model = ActiveSpeakerModel(WEIGHTS["TalkSet"], device=args.device, config=config)
            for name, video, tracks, audio in clips:
                best = min(_timed(lambda: active_speaker_scores(video, tracks, model, audio=audio))
                           for _ in range(3))
                face_seconds = sum(len(t) for t in tracks.tracks) / tracks.fps
                print(f"| {name} | {len(tracks.tracks)} | {mode} | {best:.2f} | {face_seconds / best:.1f}x |",
                      flush=True)


def precision(args) -> None:
    conversation = ten_seconds_three_faces()
    frames, audio = media.read_frames(VIDEO, fps=25), media.read_audio(VIDEO, 16000)
    yunet = YuNetFaceDetector(YUNET)
    print("| weights | clip | faces | largest difference | mean difference | same sign | largest score |")
    print("|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as folder:
        paths = conversation.save(folder)
        remix = side_by_side(frames, audio, 25.0, 16000, LEFT_TALKS, RIGHT_TALKS, "RBL")
        remix_path = media.write_video(Path(folder) / "remix_RBL.mp4", remix.frames, 25.0, remix.audio, 16000)
        clips = [("synthetic 10 s (drawn faces)", paths["video"], conversation.tracks, conversation.mix),
                 ("interact_11", VIDEO, track_faces(VIDEO, yunet), audio),
                 ("remix RBL", remix_path, track_faces(remix_path, yunet), remix.audio)]
        for name, weights in WEIGHTS.items():
            models = {p: ActiveSpeakerModel(weights, config=ActiveSpeakerConfig(precision=p))
                      for p in ("float32", "int8")}
            for clip, video, tracks, samples in clips:
                scores = {p: active_speaker_scores(video, tracks, m, audio=samples) for p, m in models.items()}
                exact = np.concatenate(list(scores["float32"].values()))
                fast = np.concatenate(list(scores["int8"].values()))
                seen = ~np.isnan(exact)
                difference = np.abs(fast[seen] - exact[seen])
                same = np.mean(np.sign(fast[seen]) == np.sign(exact[seen]))
                print(f"| {name} | {clip} | {len(tracks.tracks)} | {difference.max():.3f} | {difference.mean():.3f} | "
                      f"{same:.3f} | {np.abs(exact[seen]).max():.2f} |", flush=True)


def _timed(work) -> float:
    start = time.perf_counter()
    work()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("accuracy")
    run.add_argument("--seeds", type=int, default=3)
    run.add_argument("--part", choices=["all", "real", "synthetic"], default="all")
    run.add_argument("--precision", choices=PRECISIONS, default="auto")
    run.set_defaults(run=accuracy)
    run = commands.add_parser("speed")
    run.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    run.set_defaults(run=speed)
    run = commands.add_parser("precision")
    run.set_defaults(run=precision)
    args = parser.parse_args()
    args.run(args)


if __name__ == "__main__":
    main()
