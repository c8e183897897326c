"""Diarization speed before and after the two speed-ups, in one run: silero-vad's own per-chunk loop with torch on one
thread (what importing silero-vad left the process with) against the batched VAD with the process's threads.

    .venv/bin/python benchmarks/bench_diarization_speed.py [--repeats 5]
"""

from __future__ import annotations

import argparse

import torch
from bench_audio import DATA, timed

from mit_annotator.audio.diarization import Diarizer
from mit_annotator.core import media
from mit_annotator.core.records import SAMPLE_RATE

RECORDINGS = ("pyannote_sample/sample.wav", "pyaudioanalysis/diarizationExample.wav",
              "pyaudioanalysis/diarizationExample2.wav")


def silero_loop_regions(diarizer: Diarizer):
    """The speech regions as the diarizer found them before: silero-vad's get_speech_timestamps, chunk by chunk."""
    from silero_vad import get_speech_timestamps

    def regions(samples, config):
        stamps = get_speech_timestamps(torch.from_numpy(samples), diarizer.vad, threshold=config.vad_threshold,
                                       sampling_rate=SAMPLE_RATE, min_speech_duration_ms=int(config.min_speech * 1000),
                                       min_silence_duration_ms=int(config.min_silence * 1000))
        return [(s["start"] / SAMPLE_RATE, s["end"] / SAMPLE_RATE) for s in stamps]
    return regions


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    threads = torch.get_num_threads()
    current, before = Diarizer(), Diarizer()
    before.speech_regions = silero_loop_regions(before)
    print(f"| recording | length | before (per-chunk VAD, 1 thread) | now (batched VAD, {threads} threads) | speed-up |")
    print("|---|---|---|---|---|")
    for name in RECORDINGS:
        samples = media.read_audio(DATA / name, SAMPLE_RATE)
        length = len(samples) / SAMPLE_RATE
        torch.set_num_threads(1)
        _, old = timed(lambda: before(samples), args.repeats)
        torch.set_num_threads(threads)
        _, new = timed(lambda: current(samples), args.repeats)
        print(f"| {name} | {length:.1f} s | {length / old:.0f}x | {length / new:.0f}x | {old / new:.2f} |")


if __name__ == "__main__":
    main()
