"""Who speaks on real people the pack was not built on: panels of three real talking people side by side.

    python benchmarks/bench_who_speaks.py [--split tune|held-out|all] [--diarizer auto|overlap-embeddings|offline]

interact_11's two people remixed side by side (RL, LR, RBL, LBR: mit_annotator.synthetic.remix.side_by_side; tuned
on); and panels of three. Each panel (mit_annotator.synthetic.remix.panel) shows interact_11's two people and talking_head_1's, every one of
them talking all the time; part by part only some voices play (the others mouth words that are not heard), and some
parts play two voices at once. Faces are found and tracked by YuNet, the audio diarized, the voices assigned by
`who_speaks` with lips alone and with LR-ASD (AVA weights, the default); the score is the share of frames whose
speaking/not speaking is right, per person. Tuned on: the "tune" schedules; the "held-out" ones (other orders,
other stretches of talking_head_1, the talking head in the middle) were run once the settings were chosen.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
SHARED = ROOT.parent / "shared" / "data"
YUNET = SHARED / "models" / "face_detection_yunet.onnx"

from diarization_material import LEFT_TALKS, PANELS, RIGHT_TALKS, talkers  # noqa: E402  # noqa: E402

from mit_annotator.audio.diarization import DiarizationConfig  # noqa: E402
from mit_annotator.audio.diarizers import make_diarizer  # noqa: E402
from mit_annotator.core import media  # noqa: E402
from mit_annotator.speakers.active_speaker import ActiveSpeakerModel  # noqa: E402
from mit_annotator.synthetic.remix import panel, side_by_side  # noqa: E402
from mit_annotator.vision.faces import YuNetFaceDetector  # noqa: E402
from mit_annotator.vision.metrics import frame_score, speaking_frames  # noqa: E402

PAIRS = ("RL", "LR", "RBL", "LBR")  # interact_11 remixed (mit_annotator.synthetic.remix.side_by_side), tuned on
from mit_annotator.speakers.who_speaks import track_faces, who_speaks  # noqa: E402


def evaluate(video: Path, truth: dict[str, np.ndarray], order: tuple[str, ...], evidence: dict, diarizer) -> list:
    tracks = track_faces(video, YuNetFaceDetector(YUNET))
    audio = media.read_audio(video, 16000)
    diarization = diarizer(audio, DiarizationConfig(max_speakers=len(order) + 2))
    centres = {t.track_id: np.nanmean(t.boxes[:, 0] + t.boxes[:, 2]) / 2 for t in tracks.tracks}
    panel_width = tracks.width / len(order)
    rows = []
    for name, model in evidence.items():
        speaking, _ = who_speaks(video, tracks, diarization, active_speaker=model, audio=audio)
        accuracy = {}
        for track in tracks.tracks:
            who = order[min(int(centres[track.track_id] // panel_width), len(order) - 1)]
            found = speaking_frames(speaking.person(track.track_id), tracks.num_frames)
            score = frame_score(found, truth[who][:tracks.num_frames])
            accuracy[who] = min(accuracy.get(who, 1.0), score.accuracy)  # a person split in two tracks: the worse
        rows.append((name, accuracy, len(diarization.speakers), speaking))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", choices=("tune", "held-out", "all"), default="all")
    parser.add_argument("--diarizer", default="auto", help="a name of mit_annotator.audio.diarizers.diarizer_choices() "
                        "(auto: what assign uses)")
    parser.add_argument("--show", action="store_true", help="each person's voices")
    args = parser.parse_args()
    diarizer = make_diarizer(args.diarizer, SHARED / "models", "cpu", use="assign")
    evidence = {"lips + synchrony": None, "+ LR-ASD AVA (default)": ActiveSpeakerModel(
        SHARED / "models" / "lr_asd" / "pretrain_AVA.model")}
    print(f"diarizer: {args.diarizer}\n")
    print("| panel | split | evidence | voices found | accuracy per person (left to right) | lowest |")
    print("|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as folder:
        if args.split in ("tune", "all"):
            frames, audio = media.read_frames(SHARED / "video" / "interact_11.mp4", fps=25), media.read_audio(
                SHARED / "video" / "interact_11.mp4", 16000)
            for parts in PAIRS:
                remix = side_by_side(frames, audio, 25.0, 16000, LEFT_TALKS, RIGHT_TALKS, parts)
                video = media.write_video(Path(folder) / f"remix_{parts}.mp4", remix.frames, 25.0, remix.audio, 16000)
                for evidence_name, accuracy, voices, speaking in evaluate(video, remix.speaking, ("left", "right"),
                                                                          evidence, diarizer):
                    print(f"| interact_11 remix {parts} | tune | {evidence_name} | {voices} | "
                          f"{accuracy.get('left', float('nan')):.3f} / {accuracy.get('right', float('nan')):.3f} | "
                          f"{min(accuracy.values()):.3f} |", flush=True)
        for name, split, order, stretch, parts in PANELS:
            if args.split != "all" and split != args.split:
                continue
            people = talkers(SHARED, stretch)
            remix = panel([people[p] for p in order], parts, 25.0, 16000)
            video = media.write_video(Path(folder) / f"{name}-{split}.mp4", remix.frames, 25.0, remix.audio, 16000)
            for evidence_name, accuracy, voices, speaking in evaluate(video, remix.speaking, order, evidence,
                                                                      diarizer):
                values = " / ".join(f"{accuracy.get(p, float('nan')):.3f}" for p in order)
                print(f"| {name} ({' '.join(parts)}) | {split} | {evidence_name} | {voices} | {values} | "
                      f"{min(accuracy.values()):.3f} |", flush=True)
                if args.show:
                    print("   ", [(p.track_id, p.voice) for p in speaking.people], speaking.unassigned_voices)


if __name__ == "__main__":
    main()
