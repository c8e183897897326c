"""The clip video's x264 preset: encoding time, file size and picture (PSNR against the frames given) at crf 18.

    .venv/bin/python benchmarks/bench_encode.py [--sizes 640x360 1920x1080] [--presets medium faster veryfast]

Input: interact_11.mp4 (real, 8.5 s) scaled to each size, encoded by `media.write_video` as `export.write_clip`
does (crf 18, with its audio), once per preset; the encoded file decoded again and compared frame by frame.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
INTERACT = ROOT.parent / "shared" / "data" / "video" / "interact_11.mp4"

from mit_annotator.core import media  # noqa: E402


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    error = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255.0 ** 2 / max(error, 1e-12)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", default=["640x360", "1920x1080"])
    parser.add_argument("--presets", nargs="+", default=["medium", "faster", "veryfast"])
    args = parser.parse_args()
    frames = media.read_frames(INTERACT, fps=25)
    audio = media.read_audio(INTERACT, 16000)
    print("| size | preset | encode s | frames per s | MB | PSNR dB |")
    print("|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for size in args.sizes:
            width, height = (int(v) for v in size.split("x"))
            scaled = [cv2.resize(f, (width, height), interpolation=cv2.INTER_CUBIC) for f in frames]
            for preset in args.presets:
                path = Path(tmp) / f"{size}_{preset}.mp4"
                started = time.perf_counter()
                media.write_video(path, scaled, 25.0, audio, 16000, preset=preset)
                seconds = time.perf_counter() - started
                decoded = list(media.iter_frames(path))
                quality = np.mean([psnr(a, b) for a, b in zip(scaled, decoded)])
                print(f"| {size} | {preset} | {seconds:.2f} | {len(scaled) / seconds:.0f} | "
                      f"{path.stat().st_size / 1e6:.2f} | {quality:.2f} |", flush=True)


if __name__ == "__main__":
    main()
