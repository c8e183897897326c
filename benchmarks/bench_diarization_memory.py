"""Peak memory of `python -m mit_annotator diarize` (the default overlap-aware diarizer) against the recording's
length: a conversation of four LibriSpeech voices in turns (0.2-1.0 s gaps, turns 2-12 s, silence trimmed) tiled to
each length, written as 16 kHz WAV, diarized in a fresh process whose peak resident memory is read back (ru_maxrss);
the speakers found and the DER against the turns as written.

    .venv/bin/python benchmarks/bench_diarization_memory.py [--minutes 10 60 180] [--voices tune|held-out]
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

from mit_annotator.core import media
from mit_annotator.core.records import Diarization, SpeakerTurn
from mit_annotator.synthetic.recordings import trimmed
from mit_annotator.vision.metrics import diarization_error

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("MIT_SHARED_DATA", ROOT.parent / "shared" / "data"))
VOICES = {"tune": ("1688", "1998", "2414", "3080"), "held-out": ("2609", "3331", "367", "533")}
RATE = 16000


def utterances(split: str = "tune") -> dict[str, list[np.ndarray]]:
    folder = SHARED / "speech" / "librispeech_test-other"
    return {voice: [media.read_audio(path, RATE) for path in sorted((folder / voice).glob("*.flac"))[:12]]
            for voice in VOICES[split]}


def write_conversation(path: Path, minutes: float, pieces: dict[str, list[np.ndarray]],
                       seed: int = 0) -> Diarization:
    """Turns of the four voices until `minutes`, streamed into a 16-bit WAV (never the whole recording in memory);
    returns the turns."""
    rng = np.random.default_rng(seed)
    total, written, truth = int(minutes * 60 * RATE), 0, []
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(RATE)
        while written < total:
            voices = sorted(pieces)
            voice = voices[rng.integers(len(voices))]
            utterance = pieces[voice][rng.integers(len(pieces[voice]))]
            turn = trimmed(utterance)[:int(rng.uniform(2, 12) * RATE)]
            gap = np.zeros(int(rng.uniform(0.2, 1.0) * RATE), np.float32)
            block = np.concatenate([turn, gap])[:total - written]
            out.writeframes((np.clip(block, -1, 1) * 32767).astype("<i2").tobytes())
            truth.append(SpeakerTurn(voice, written / RATE, (written + min(len(turn), len(block))) / RATE))
            written += len(block)
    return Diarization(truth)


def diarize_peak(wav: Path, rttm: Path) -> tuple[float, float]:
    """(peak resident GiB, seconds) of the diarize command in a fresh process."""
    code = ("import resource, sys; from mit_annotator.pipeline.cli import main; code = main(sys.argv[1:]); "
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
    parser.add_argument("--voices", choices=sorted(VOICES), default="tune",
                        help="the LibriSpeech speakers tuned on, or the held-out ones")
    args = parser.parse_args()
    pieces = utterances(args.voices)
    print("| recording | peak memory | wall time | speakers found (of 4) | DER |\n|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as folder:
        for minutes in args.minutes:
            wav, rttm = Path(folder) / f"talk{minutes:g}.wav", Path(folder) / f"talk{minutes:g}.rttm"
            truth = write_conversation(wav, minutes, pieces)
            peak, seconds = diarize_peak(wav, rttm)
            found = Diarization.load_rttm(rttm)
            print(f"| {minutes:g} min | {peak:.2f} GiB | {seconds:.0f} s | {len(found.speakers)} | "
                  f"{diarization_error(truth, found).der:.3f} |", flush=True)
            wav.unlink()


if __name__ == "__main__":
    main()
