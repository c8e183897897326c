"""Peak memory of `python -m mit_annotator diarize` (the default overlap-aware diarizer) against the recording's
length: a conversation of four LibriSpeech voices in turns (0.2-1.0 s gaps, turns 2-12 s) tiled to each length,
written as 16 kHz WAV, diarized in a fresh process whose peak resident memory is read back (ru_maxrss).

    .venv/bin/python benchmarks/bench_diarization_memory.py [--minutes 10 60 180]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import wave
from pathlib import Path

import numpy as np

from mit_annotator import media

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("MIT_SHARED_DATA", ROOT.parent / "shared" / "data"))
VOICES = ("1688", "1998", "2414", "3080")
RATE = 16000


def utterances() -> dict[str, list[np.ndarray]]:
    folder = SHARED / "speech" / "librispeech_test-other"
    return {voice: [media.read_audio(path, RATE) for path in sorted((folder / voice).glob("*.flac"))[:12]]
            for voice in VOICES}


def write_conversation(path: Path, minutes: float, pieces: dict[str, list[np.ndarray]], seed: int = 0) -> None:
    """Turns of the four voices until `minutes`, streamed into a 16-bit WAV (never the whole recording in memory)."""
    rng = np.random.default_rng(seed)
    total, written = int(minutes * 60 * RATE), 0
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(RATE)
        while written < total:
            voice = VOICES[rng.integers(len(VOICES))]
            utterance = pieces[voice][rng.integers(len(pieces[voice]))]
            turn = utterance[:int(rng.uniform(2, 12) * RATE)]
            gap = np.zeros(int(rng.uniform(0.2, 1.0) * RATE), np.float32)
            block = np.concatenate([turn, gap])[:total - written]
            out.writeframes((np.clip(block, -1, 1) * 32767).astype("<i2").tobytes())
            written += len(block)


def diarize_peak(wav: Path, rttm: Path) -> tuple[float, float]:
    """(peak resident GiB, seconds) of the diarize command in a fresh process."""
    code = ("import resource, sys; from mit_annotator.cli import main; code = main(sys.argv[1:]); "
            "print('PEAK_KB', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss); sys.exit(code)")
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", code, "diarize", str(wav), "--out", str(rttm)], cwd=ROOT,
                          capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(done.stderr[-2000:])
    peak_kb = int(next(line.split()[1] for line in done.stdout.splitlines() if line.startswith("PEAK_KB")))
    return peak_kb / 2**20, seconds


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--minutes", type=float, nargs="+", default=[10, 60, 180])
    args = parser.parse_args()
    pieces = utterances()
    print("| recording | peak memory | wall time | turns found |\n|---|---|---|---|")
    with tempfile.TemporaryDirectory() as folder:
        for minutes in args.minutes:
            wav, rttm = Path(folder) / f"talk{minutes:g}.wav", Path(folder) / f"talk{minutes:g}.rttm"
            write_conversation(wav, minutes, pieces)
            peak, seconds = diarize_peak(wav, rttm)
            turns = sum(1 for line in rttm.read_text().splitlines() if line.startswith("SPEAKER"))
            print(f"| {minutes:g} min | {peak:.2f} GiB | {seconds:.0f} s | {turns} |", flush=True)
            wav.unlink()


if __name__ == "__main__":
    main()
