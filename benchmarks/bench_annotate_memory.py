"""Peak memory of `annotate` against the length of a 1080p source: it should stay flat.

    .venv/bin/python benchmarks/bench_annotate_memory.py [--minutes 1 4] [--size 1920x1080]

Each source is interact_11.mp4 (real, two people) scaled to --size and looped to the length, with its audio looped
alike, written as h264 (x264 ultrafast) + AAC. Each is annotated in a fresh process (`python -m mit_annotator
annotate`, the defaults, YOLOX-Nano and YuNet from ../shared/data/models, pose model none, LR-ASD found there) whose
peak resident memory (its own getrusage, read at its end) and wall time are reported.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
MODELS = ROOT.parent / "shared" / "data" / "models"
INTERACT = ROOT.parent / "shared" / "data" / "video" / "interact_11.mp4"

from mit_annotator.core import media  # noqa: E402

# the annotate command in this process, then its own peak resident memory (KiB) on the last line
MEASURED = ("import resource, sys; from mit_annotator.pipeline.cli import main; code = main(sys.argv[1:]); "
            "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss); sys.exit(code)")


def looped_source(path: Path, minutes: float, size: tuple[int, int]) -> Path:
    frames = media.read_frames(INTERACT, fps=25)
    audio = media.read_audio(INTERACT, 16000)
    count = int(minutes * 60 * 25)
    scaled = [cv2.resize(f, size, interpolation=cv2.INTER_CUBIC) for f in frames]
    order = np.concatenate([np.arange(len(scaled)), np.arange(len(scaled))[::-1]])  # forth and back: no cut
    picks = (scaled[order[k % len(order)]] for k in range(count))
    per_frame = 16000 // 25
    sound = np.concatenate([audio] * (count * per_frame // len(audio) + 1))[:count * per_frame]
    return media.write_video(path, picks, 25.0, sound, 16000, preset="ultrafast")  # a 10-minute source in minutes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, nargs="+", default=[1.0, 4.0])
    parser.add_argument("--size", default="1920x1080")
    args = parser.parse_args()
    size = tuple(int(v) for v in args.size.split("x"))
    print("| source | wall s | video-s per s | peak RSS MiB |")
    print("|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for minutes in args.minutes:
            video = looped_source(Path(tmp) / f"talk_{minutes:g}min.mp4", minutes, size)
            started = time.perf_counter()
            done = subprocess.run([sys.executable, "-c", MEASURED, "annotate", str(video), "--out",
                                   str(Path(tmp) / f"out_{minutes:g}"), "--models", str(MODELS), "--det-model",
                                   str(MODELS / "yolox_nano.onnx"), "--pose-model", "none"],
                                  cwd=ROOT, capture_output=True, text=True)
            wall = time.perf_counter() - started
            if done.returncode != 0:
                raise SystemExit(done.stderr[-2000:])
            peak = int(done.stdout.strip().splitlines()[-1])
            print(f"| {minutes:g} min at {size[0]}x{size[1]} | {wall:.1f} | {minutes * 60 / wall:.2f} | "
                  f"{peak / 1024:.0f} |", flush=True)


if __name__ == "__main__":
    main()
