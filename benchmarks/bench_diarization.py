"""Diarization on recordings it was not tuned on: speaker counts, DER, overlapped speech, speed.

    python benchmarks/bench_diarization.py [--pipeline overlap|overlap-embeddings|offline|all] [--split ...] [--show]

Recordings: benchmarks/diarization_material.py (real voices from ../shared/data: one voice alone, two voices in short
turns, conversations with 10-30% overlapped speech, 4-5 voices taking turns, the pyannote sample, the pyAudioAnalysis
recordings, panels of three real talking people), no speaker count given (1 to 8 allowed). Overlapped speech is scored per 10 ms: a frame where the reference has two or
more speakers against one where the hypothesis has.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
SHARED = ROOT.parent / "shared" / "data"

from diarization_material import all_recordings  # noqa: E402

from mit_annotator.audio.diarization import DiarizationConfig  # noqa: E402
from mit_annotator.core.records import Diarization  # noqa: E402
from mit_annotator.vision.metrics import diarization_error  # noqa: E402

STEP = 0.01


def speaker_count(diarization: Diarization, seconds: float) -> np.ndarray:
    count = np.zeros(int(np.ceil(seconds / STEP)) + 1, int)
    for turn in diarization.turns:
        count[int(turn.start / STEP):int(turn.end / STEP)] += 1
    return count


def overlap_counts(reference: Diarization, hypothesis: Diarization, seconds: float) -> tuple[int, int, int]:
    """(frames overlapped in both, in the reference, in the hypothesis)."""
    ref, hyp = speaker_count(reference, seconds) > 1, speaker_count(hypothesis, seconds) > 1
    return int((ref & hyp).sum()), int(ref.sum()), int(hyp.sum())


def make_pipeline(name: str):
    from mit_annotator.audio.diarizers import make_diarizer

    return make_diarizer(name, SHARED / "models", "cpu")


def run(pipeline_name: str, recordings, show: bool) -> None:
    pipeline = make_pipeline(pipeline_name)
    pipeline(recordings[0].samples[:16000])  # warm up
    rows = defaultdict(lambda: {"n": 0, "right": 0, "der": [], "both": 0, "ref": 0, "hyp": 0, "audio": 0.0,
                                "compute": 0.0})
    for r in recordings:
        start = time.perf_counter()
        hypothesis = pipeline(r.samples, DiarizationConfig(max_speakers=8), uri=r.name)
        elapsed = time.perf_counter() - start
        found = len(hypothesis.speakers)
        score = diarization_error(r.truth, hypothesis)
        both, ref, hyp = overlap_counts(r.truth, hypothesis, r.seconds)
        for key in ((r.kind, r.split), (r.kind, "all")):
            row = rows[key]
            row["n"] += 1
            row["right"] += found == r.num_speakers
            row["der"].append(score.der)
            row["both"] += both
            row["ref"] += ref
            row["hyp"] += hyp
            row["audio"] += r.seconds
            row["compute"] += elapsed
        if show:
            print(f"  {r.name} ({r.split}, {r.kind}): {found}/{r.num_speakers} speakers, DER {score.der:.3f}, "
                  f"overlap {both}/{ref} found, {hyp - both} false; {r.seconds / elapsed:.0f}x", flush=True)
    print(f"\n{pipeline_name}:\n")
    print("| recordings | split | count | speakers right | DER (mean) | overlap recall | overlap precision | "
          "real-time factor |")
    print("|---|---|---|---|---|---|---|---|")
    for (kind, split), row in sorted(rows.items()):
        recall = row["both"] / row["ref"] if row["ref"] else float("nan")
        precision = row["both"] / row["hyp"] if row["hyp"] else float("nan")
        print(f"| {kind} | {split} | {row['n']} | {row['right']}/{row['n']} | {np.mean(row['der']):.3f} | "
              f"{recall:.2f} | {precision:.2f} | {row['audio'] / row['compute']:.0f}x |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pipeline", choices=("overlap", "overlap-embeddings", "offline", "all"), default="all")
    parser.add_argument("--split", choices=("tune", "held-out", "all"), default="all")
    parser.add_argument("--kind", default=None, help="only recordings of this kind (e.g. 'one voice')")
    parser.add_argument("--show", action="store_true", help="a line per recording")
    args = parser.parse_args()
    recordings = [r for r in all_recordings(SHARED) if args.split == "all" or r.split == args.split]
    recordings = [r for r in recordings if args.kind is None or r.kind == args.kind]
    for name in (("overlap", "overlap-embeddings", "offline") if args.pipeline == "all" else (args.pipeline,)):
        run(name, recordings, args.show)


if __name__ == "__main__":
    main()
