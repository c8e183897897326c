"""What the visual evidence alone tells of who speaks, frame by frame, on the who-speaks panels; and who speaks on
more panels with long stretches of two voices at once.

    python benchmarks/who_speaks_evidence.py [--split tune|held-out|more|all]

For each panel of bench_who_speaks.py (three real people side by side, everyone talking on screen all the time,
only some voices heard) and four more overlap-heavy panels built the same way ("more": other stretches of
talking_head_1, other orders; never tuned on), per person: the ROC AUC of telling their speaking frames from the
rest by (1) LR-ASD's score (AVA weights, averaged over 1 s) and (2) the local synchrony of their mouth with the
audio's loudness (the best correlation over +-0.2 s lags in a 2 s window); 0.5 is chance, 1.0 a perfect split.
Then the default pipeline's share of frames right per person (`who_speaks`, overlap-aware diarizer for assignment,
LR-ASD fused with lips), and the voices it gave each person.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
from scipy.ndimage import uniform_filter1d

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
SHARED = ROOT.parent / "shared" / "data"
MODELS = SHARED / "models"

from diarization_material import PANELS, talkers  # noqa: E402

from mit_annotator.audio.diarization import DiarizationConfig  # noqa: E402
from mit_annotator.audio.diarizers import make_diarizer  # noqa: E402
from mit_annotator.core import media  # noqa: E402
from mit_annotator.speakers.active_speaker import ActiveSpeakerModel  # noqa: E402
from mit_annotator.speakers.who_speaks import speaking_evidence, track_faces, who_speaks  # noqa: E402
from mit_annotator.synthetic.remix import panel  # noqa: E402
from mit_annotator.vision.faces import YuNetFaceDetector  # noqa: E402
from mit_annotator.vision.metrics import frame_score, speaking_frames  # noqa: E402

MORE_PANELS = [  # (name, split, order, talking_head_1's stretch, parts): A, B, C are the order's people
    ("more 1", "more", ("head", "left", "right"), slice(30, 120), ["A", "BC", "A", "AB", "C"]),
    ("more 2", "more", ("right", "head", "left"), slice(150, 240), ["AB", "C", "A", "BC", "B"]),
    ("more 3", "more", ("left", "right", "head"), slice(200, 290), ["C", "AC", "B", "AB", "A"]),
    ("more 4", "more", ("head", "right", "left"), slice(60, 150), ["B", "AC", "C", "AB", "BC"]),
]
FPS = 25.0


def roc_auc(truth: np.ndarray, score: np.ndarray) -> float:
    """The chance that a speaking frame scores above a silent one (ties count half); NaN without both."""
    from scipy.stats import rankdata

    positives, negatives = int(truth.sum()), int((~truth).sum())
    if not positives or not negatives:
        return float("nan")
    ranks = rankdata(score)
    return float((ranks[truth].sum() - positives * (positives + 1) / 2) / (positives * negatives))


def local_synchrony(mouth: np.ndarray, loudness: np.ndarray, window: int = 50, max_lag: int = 5) -> np.ndarray:
    """Per frame, the best Pearson correlation of the mouth and the loudness over `window` frames around it, at lags
    of up to `max_lag` frames (NaN frames left out)."""
    best = np.full(len(mouth), -np.inf)
    for lag in range(-max_lag, max_lag + 1):
        shifted = np.roll(mouth, lag)
        seen = ~np.isnan(shifted) & ~np.isnan(loudness)
        a, b, count = np.where(seen, shifted, 0.0), np.where(seen, loudness, 0.0), seen.astype(float)

        def mean(x):
            return uniform_filter1d(x, window, mode="nearest") / np.maximum(
                uniform_filter1d(count, window, mode="nearest"), 1e-9)

        covariance = mean(a * b) - mean(a) * mean(b)
        spread = np.sqrt(np.maximum((mean(a * a) - mean(a) ** 2) * (mean(b * b) - mean(b) ** 2), 1e-12))
        best = np.maximum(best, covariance / spread)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", choices=("tune", "held-out", "more", "all"), default="all")
    args = parser.parse_args()
    diarizer = make_diarizer("auto", MODELS, "cpu", use="assign")
    model = ActiveSpeakerModel(MODELS / "lr_asd" / "pretrain_AVA.model")
    faces = YuNetFaceDetector(MODELS / "face_detection_yunet.onnx")
    print("| panel | split | LR-ASD AUC per person | synchrony AUC per person | who speaks, share right | voices |")
    print("|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as folder:
        for name, split, order, stretch, parts in [*PANELS, *MORE_PANELS]:
            if args.split not in ("all", split):
                continue
            people = talkers(SHARED, stretch)
            remix = panel([people[p] for p in order], parts, FPS, 16000)
            video = media.write_video(Path(folder) / "panel.mp4", remix.frames, FPS, remix.audio, 16000)
            tracks = track_faces(video, faces)
            audio = media.read_audio(video, 16000)
            diarization = diarizer(audio, DiarizationConfig(max_speakers=len(order) + 2))
            evidence = speaking_evidence(video, tracks, audio, model)
            speaking, _ = who_speaks(video, tracks, diarization, scores=evidence.active_speaker, audio=audio)
            width = tracks.width / len(order)
            row: dict[str, tuple] = {}
            for person in speaking.people:
                track = next(t for t in tracks.tracks if t.track_id == person.track_id)
                who = order[min(int(np.nanmean(track.boxes[:, 0] + track.boxes[:, 2]) / 2 // width), len(order) - 1)]
                truth = remix.speaking[who][:tracks.num_frames]
                asd = uniform_filter1d(np.nan_to_num(evidence.active_speaker[person.track_id]), int(FPS))
                sync = np.nan_to_num(local_synchrony(evidence.mouth[person.track_id].astype(np.float64),
                                                     evidence.loudness.astype(np.float64)))
                right = frame_score(speaking_frames(person, tracks.num_frames), truth).accuracy
                row[who] = (roc_auc(truth, asd), roc_auc(truth, sync), right, person.voice or "-")
            cells = [" / ".join(f"{row[p][k]:.2f}" if k < 3 else row[p][k] for p in order if p in row)
                     for k in range(4)]
            print(f"| {name} ({' '.join(parts)}) | {split} | {cells[0]} | {cells[1]} | {cells[2]} | {cells[3]} |",
                  flush=True)


if __name__ == "__main__":
    main()
