"""The audio pass: diarization error (DER) on real recordings and on LibriSpeech conversations, speaker-to-person
assignment accuracy and speaking F1, and speed as a real-time factor.

    .venv/bin/python benchmarks/bench_audio.py [--seeds 3]

Times are the best of 3 runs of each diarization and assignment.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from mit_annotator.audio.diarization import DiarizationConfig, Diarizer
from mit_annotator.core import media
from mit_annotator.core.records import Diarization, SpeakerTurn
from mit_annotator.speakers.assignment import assign_speakers
from mit_annotator.speakers.lips import activity_from_openings, mouth_openings
from mit_annotator.synthetic import ConversationSpec, default_speech_source, synthesize_conversation
from mit_annotator.vision.metrics import diarization_error, speaking_f1, voice_mapping

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "diarization"


def segments(path: Path) -> Diarization:
    rows = [line.split() for line in path.read_text().splitlines() if line.strip()]
    return Diarization([SpeakerTurn(s, float(a), float(b)) for a, b, s in rows])


def timed(work, repeats: int = 3):
    """The result and the best time of `repeats` runs (the shared machine's noise only ever adds time)."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        result = work()
        best = min(best, time.perf_counter() - start)
    return result, best


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args()
    diarizer = Diarizer()
    speech = default_speech_source()
    diarizer(speech.utterances(speech.voices()[0])[0])  # warm up: ONNX Runtime, librosa's first call, the LSTM

    print("| recording | length | speakers found / true | DER | DER, 0.5 s collar | real-time factor |")
    print("|---|---|---|---|---|---|")
    for name, wav, reference in (
            ("pyannote sample", "pyannote_sample/sample.wav", Diarization.load_rttm(DATA / "pyannote_sample/sample.rttm")),
            ("pyAudioAnalysis, 4 speakers", "pyaudioanalysis/diarizationExample.wav",
             segments(DATA / "pyaudioanalysis/diarizationExample.segments")),
            ("pyAudioAnalysis, 6 speakers", "pyaudioanalysis/diarizationExample2.wav",
             segments(DATA / "pyaudioanalysis/diarizationExample2.segments"))):
        samples = media.read_audio(DATA / wav, 16000)
        hypothesis, seconds = timed(lambda: diarizer(samples))
        length = len(samples) / 16000
        print(f"| {name} | {length:.1f} s | {len(hypothesis.speakers)} / {len(reference.speakers)} | "
              f"{diarization_error(reference, hypothesis).der:.3f} | "
              f"{diarization_error(reference, hypothesis, collar=0.5).der:.3f} | {length / seconds:.0f}x |")

    print("\n| people (+ 1 off-screen voice) | conversations | DER | voices on the right person | off-screen voice "
          "left unassigned | speaking F1 | diarization RTF | assignment RTF |")
    print("|---|---|---|---|---|---|---|---|")
    for people in (2, 3, 4):
        ders, right, total, offscreen, f1s, diarize_s, assign_s, length = [], 0, 0, 0, [], 0.0, 0.0, 0.0
        for seed in range(args.seeds):
            c = synthesize_conversation(ConversationSpec(num_people=people, seconds=4.0 * people + 6,
                                                         width=160 * people, height=192, seed=100 + seed,
                                                         offscreen_voice=True), speech)
            hypothesis, seconds = timed(lambda: diarizer(c.mix, DiarizationConfig(max_speakers=people + 2)))
            diarize_s += seconds
            length += c.spec.num_frames / c.spec.fps
            lips = {t.track_id: activity_from_openings(mouth_openings(t, c.spec.num_frames), c.spec.fps)
                    for t in c.tracks.tracks}
            (speaking, _), seconds = timed(lambda: assign_speakers(hypothesis, lips, c.spec.fps, c.spec.num_frames))
            assign_s += seconds
            ders.append(diarization_error(c.diarization, hypothesis).der)
            to_truth = voice_mapping(hypothesis, c.diarization)
            for person in speaking.people:
                total += 1
                voices = person.voice.split("+") if person.voice else []
                right += bool(voices) and all(to_truth.get(v) == c.voices[person.track_id] for v in voices)
            offscreen += all(to_truth.get(v) not in c.voices for v in speaking.unassigned_voices) and any(
                to_truth.get(v) in c.offscreen_voices for v in speaking.unassigned_voices)
            f1s.append(speaking_f1(speaking, c.speaking))
        print(f"| {people} | {args.seeds} of {4 * people + 6} s | {np.mean(ders):.3f} | {right}/{total} | "
              f"{offscreen}/{args.seeds} | {np.mean(f1s):.3f} | {length / diarize_s:.0f}x | {length / assign_s:.0f}x |")


if __name__ == "__main__":
    main()
