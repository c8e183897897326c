"""Short real recordings with exact truth, for measuring diarization on material it was not tuned on.

Voices come from real recordings (the LibriSpeech sample's utterances, and single-speaker stretches of real videos
and samples); a recording places voice pieces on a timeline in turns, with pauses or overlaps between them and a
level per voice, and its truth is where each placed piece has speech (its own energy: every piece is one speaker
heard alone). `split` marks what may be tuned on ("tune") and what is kept aside ("held-out").
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from mit_annotator.core.records import Diarization, SpeakerTurn
from mit_annotator.synthetic.speech import SAMPLE_RATE, runs, speech_activity

TRUTH_STEP_S = 0.01


@dataclass
class Voice:
    """One speaker's clean speech pieces (16 kHz mono float32), each heard alone."""

    name: str
    pieces: list[np.ndarray]
    split: str = "tune"


@dataclass
class Recording:
    name: str
    samples: np.ndarray  # 16 kHz mono float32
    truth: Diarization
    split: str  # "tune" or "held-out"
    kind: str  # what the recording tests, e.g. "one voice", "two voices", "overlap"

    @property
    def seconds(self) -> float:
        return len(self.samples) / SAMPLE_RATE

    @property
    def num_speakers(self) -> int:
        return len(self.truth.speakers)


def trimmed(samples: np.ndarray) -> np.ndarray:
    """The piece from its first to its last sample of speech."""
    active = np.flatnonzero(speech_activity(samples))
    return samples[active[0]:active[-1] + 1] if len(active) else samples[:0]


def level_db(samples: np.ndarray) -> float:
    """RMS level of the speech in `samples`, dBFS."""
    active = speech_activity(samples)
    speech = samples[active] if active.any() else samples
    return float(20 * np.log10(np.sqrt(np.mean(speech.astype(np.float64) ** 2)) + 1e-12))


def at_level(samples: np.ndarray, dbfs: float) -> np.ndarray:
    return (samples * 10 ** ((dbfs - level_db(samples)) / 20)).astype(np.float32)


Activity = Callable[[np.ndarray], np.ndarray]  # a clean piece -> per-sample bool: where it has speech


def in_turns(name: str, turns: list[tuple[str, np.ndarray]], gaps: list[float], levels: dict[str, float],
             split: str, kind: str, lead: float = 0.3, tail: float = 0.3,
             activity_of: Activity = speech_activity) -> Recording:
    """`turns` (speaker, piece) one after another; `gaps[k]` seconds between turn k and k + 1 (negative: they
    overlap by that much); each speaker at `levels[speaker]` dBFS; the truth is where `activity_of` finds speech
    in each piece heard alone."""
    if len(gaps) != len(turns) - 1:
        raise ValueError(f"{len(turns)} turns need {len(turns) - 1} gaps, got {len(gaps)}")
    starts, t = [], int(lead * SAMPLE_RATE)
    for k, (_, piece) in enumerate(turns):
        starts.append(max(t, 0))
        if k < len(gaps):
            t = starts[-1] + len(piece) + int(round(gaps[k] * SAMPLE_RATE))
    total = max(s + len(p) for s, (_, p) in zip(starts, turns)) + int(tail * SAMPLE_RATE)
    mix = np.zeros(total, np.float32)
    activity: dict[str, np.ndarray] = {}
    for start, (speaker, piece) in zip(starts, turns):
        piece = at_level(piece, levels[speaker])
        mix[start:start + len(piece)] += piece
        active = activity.setdefault(speaker, np.zeros(total, bool))
        active[start:start + len(piece)] |= activity_of(piece)
    peak = float(np.abs(mix).max())
    if peak > 0.99:
        mix *= 0.99 / peak
    return Recording(name, mix, truth_from_activity(activity, name), split, kind)


def truth_from_activity(activity: dict[str, np.ndarray], uri: str) -> Diarization:
    """Turns where each speaker's per-sample activity is on."""
    turns = [SpeakerTurn(speaker, round(a / SAMPLE_RATE, 3), round(b / SAMPLE_RATE, 3))
             for speaker, active in activity.items() for a, b in runs(active)]
    return Diarization(sorted(turns, key=lambda t: (t.start, t.speaker)), uri=uri)


def single_voice(name: str, samples: np.ndarray, dbfs: float, split: str, max_seconds: float = 10.0,
                 activity_of: Activity = speech_activity) -> Recording:
    """One voice alone, cut to at most `max_seconds` of speech."""
    piece = trimmed(samples)[:int(max_seconds * SAMPLE_RATE)]
    return in_turns(name, [(name, piece)], [], {name: dbfs}, split, "one voice", activity_of=activity_of)


def overlapped_share(truth: Diarization, step: float = TRUTH_STEP_S) -> float:
    """Share of the speech time in which two or more speakers speak."""
    end = max((t.end for t in truth.turns), default=0.0)
    count = np.zeros(int(np.ceil(end / step)) + 1, int)
    for turn in truth.turns:
        count[int(turn.start / step):int(turn.end / step)] += 1
    return float((count > 1).sum() / max((count > 0).sum(), 1))


def random_levels(voices: list[str], rng: np.random.Generator, low: float = -36.0,
                  high: float = -12.0) -> dict[str, float]:
    return {v: float(rng.uniform(low, high)) for v in voices}
