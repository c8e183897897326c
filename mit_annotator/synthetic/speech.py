"""Real speech for synthetic conversations: LibriSpeech utterances or espeak-ng voices, and where each voice speaks.

Each voice is a list of utterances (mono float32 at 16 kHz). Voice activity inside an utterance is found from its
own energy, which is exact enough here because every utterance is clean, single-speaker speech heard alone.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mit_annotator.core import media
from mit_annotator.core.records import SAMPLE_RATE
from mit_annotator.core.segments import runs

ACTIVITY_HOP_S = 0.01
ACTIVITY_WINDOW_S = 0.03
ACTIVITY_BELOW_PEAK_DB = 24.0  # a 10 ms hop is speech when within this many dB of the utterance's loud level
BRIDGE_GAPS_S = 0.3  # pauses shorter than this inside a turn still count as speaking (as references annotate)
DROP_BURSTS_S = 0.08
TARGET_RMS_DBFS = -22.0  # every utterance is levelled to this over its speech, so voices are balanced

LIBRISPEECH_ENV = "MIT_SPEECH_DIR"
ESPEAK_VOICES = ("en-us+m1", "en-us+f2", "en+m3", "en+f4", "en-us+m7", "en+f3", "en-gb+m2", "en-us+f1")
ESPEAK_SENTENCES = (
    "So what did you think of the show last night?",
    "Honestly, I expected the ending to be very different.",
    "That is a fair point, but let me add something here.",
    "We should talk about this again next week.",
    "I am not sure I agree with that at all.",
    "Really? Tell me more about what happened then.",
)


class SpeechSource:
    """A set of voices, each with a few utterances."""

    name = "speech"

    def voices(self) -> list[str]:
        raise NotImplementedError

    def utterances(self, voice: str) -> list[np.ndarray]:
        raise NotImplementedError


@dataclass
class LibriSpeechSource(SpeechSource):
    """A LibriSpeech-style folder: one sub-folder per speaker holding .flac (or .wav) utterances."""

    root: Path
    name: str = "librispeech"
    _cache: dict[str, list[np.ndarray]] = field(default_factory=dict, repr=False)

    def __post_init__(self):
        self.root = Path(self.root)
        if not self.root.is_dir():
            raise FileNotFoundError(f"speech folder {self.root} does not exist")
        if not self.voices():
            raise FileNotFoundError(f"speech folder {self.root} has no speaker sub-folders with .flac or .wav files")

    def voices(self) -> list[str]:
        return sorted(d.name for d in self.root.iterdir() if d.is_dir() and self._files(d.name))

    def _files(self, voice: str) -> list[Path]:
        folder = self.root / voice
        return sorted([*folder.rglob("*.flac"), *folder.rglob("*.wav")])

    def utterances(self, voice: str) -> list[np.ndarray]:
        if voice not in self._cache:
            self._cache[voice] = [media.read_audio(f, SAMPLE_RATE) for f in self._files(voice)]
        return self._cache[voice]


@dataclass
class EspeakSource(SpeechSource):
    """espeak-ng's synthetic voices (Debian package espeak-ng) speaking a few conversational sentences."""

    name: str = "espeak-ng"
    _cache: dict[str, list[np.ndarray]] = field(default_factory=dict, repr=False)

    def __post_init__(self):
        if shutil.which("espeak-ng") is None:
            raise FileNotFoundError("espeak-ng is not installed (apt-get install espeak-ng), and no speech folder "
                                    f"was given (--speech DIR or ${LIBRISPEECH_ENV})")

    def voices(self) -> list[str]:
        return list(ESPEAK_VOICES)

    def utterances(self, voice: str) -> list[np.ndarray]:
        if voice not in self._cache:
            speed = 150 + 10 * (ESPEAK_VOICES.index(voice) % 4)
            with tempfile.TemporaryDirectory() as tmp:
                out = []
                for k, sentence in enumerate(ESPEAK_SENTENCES):
                    wav = Path(tmp) / f"{k}.wav"
                    subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "-w", str(wav), sentence],
                                   check=True, capture_output=True)
                    out.append(media.read_audio(wav, SAMPLE_RATE))
            self._cache[voice] = out
        return self._cache[voice]


def default_speech_source(speech: str | os.PathLike | None = None) -> SpeechSource:
    """`speech` ("espeak" or a folder), else $MIT_SPEECH_DIR, else the shared LibriSpeech sample, else espeak-ng."""
    if speech == "espeak":
        return EspeakSource()
    if speech is not None:
        return LibriSpeechSource(Path(speech))
    if os.environ.get(LIBRISPEECH_ENV):
        return LibriSpeechSource(Path(os.environ[LIBRISPEECH_ENV]))
    bundled = Path(__file__).resolve().parents[3] / "shared" / "data" / "speech" / "librispeech_test-other"
    if bundled.is_dir():
        return LibriSpeechSource(bundled)
    return EspeakSource()


def speech_activity(samples: np.ndarray, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Per-sample boolean voice activity of one clean utterance, from its short-time energy."""
    hop = int(ACTIVITY_HOP_S * sample_rate)
    window = int(ACTIVITY_WINDOW_S * sample_rate)
    n_hops = max(1, int(np.ceil(len(samples) / hop)))
    padded = np.pad(samples.astype(np.float64), (window // 2, window + n_hops * hop))
    cumulative = np.concatenate([[0.0], np.cumsum(padded ** 2)])
    starts = np.arange(n_hops) * hop
    energy = (cumulative[starts + window] - cumulative[starts]) / window
    level = 10 * np.log10(energy + 1e-12)
    loud = np.percentile(level, 95)
    active = (level > loud - ACTIVITY_BELOW_PEAK_DB) & (level > -60.0)
    active = bridge_gaps(active, int(BRIDGE_GAPS_S / ACTIVITY_HOP_S))
    active = drop_short_runs(active, int(DROP_BURSTS_S / ACTIVITY_HOP_S))
    return np.repeat(active, hop)[:len(samples)]


def bridge_gaps(active: np.ndarray, max_gap: int) -> np.ndarray:
    """Fill runs of False no longer than `max_gap` that lie between two runs of True."""
    active = active.copy()
    for start, end in runs(~active):
        if start > 0 and end < len(active) and end - start <= max_gap:
            active[start:end] = True
    return active


def drop_short_runs(active: np.ndarray, min_length: int) -> np.ndarray:
    active = active.copy()
    for start, end in runs(active):
        if end - start < min_length:
            active[start:end] = False
    return active


def level_to_target(samples: np.ndarray, active: np.ndarray) -> np.ndarray:
    """Scale an utterance so its speech sits at TARGET_RMS_DBFS."""
    speech = samples[active] if active.any() else samples
    rms = float(np.sqrt(np.mean(speech.astype(np.float64) ** 2))) + 1e-9
    return (samples * (10 ** (TARGET_RMS_DBFS / 20) / rms)).astype(np.float32)
