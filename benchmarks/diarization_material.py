"""The diarization benchmark's recordings, built from the real voices in ../shared/data (see
mit_annotator.synthetic.recordings): one voice alone, two voices in short turns, and longer conversations with
overlapped speech; each marked "tune" or "held-out".

Held out (never looked at while choosing settings): LibriSpeech speakers 2609, 3005 (M), 3331, 367, 533 (F), the
AnyTalker voices, talking_head_1 and the pyAudioAnalysis recordings. Tuned on: LibriSpeech speakers 1688, 2033,
2414 (M), 1998, 3080 (F), interact_11's two voices and the pyannote sample.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np

from mit_annotator.core import media
from mit_annotator.core.records import Diarization
from mit_annotator.synthetic.recordings import (
    SAMPLE_RATE,
    Recording,
    Voice,
    in_turns,
    overlapped_share,
    random_levels,
    single_voice,
    trimmed,
)
from mit_annotator.synthetic.speech import LibriSpeechSource, runs

TUNE_SPEAKERS = ("1688", "2033", "2414", "1998", "3080")
_VAD = []


def speech_of(piece: np.ndarray) -> np.ndarray:
    """The truth inside one clean single-speaker piece: silero-vad's speech on the piece heard alone, pauses under
    0.3 s bridged (as reference annotations do). The LibriSpeech "other" recordings have noise floors within 24 dB
    of their speech, which an energy threshold takes for speech."""
    from mit_annotator.audio.voice_activity import load_vad, speech_timestamps

    if not _VAD:
        _VAD.append(load_vad())
    active = np.zeros(len(piece), bool)
    for start, end in speech_timestamps(_VAD[0], piece, 0.5, 0.1, 0.3):
        active[int(start * SAMPLE_RATE):int(end * SAMPLE_RATE)] = True
    return active
HELD_OUT_SPEAKERS = ("2609", "3005", "3331", "367", "533")


def _cut(samples: np.ndarray, start: float, end: float) -> np.ndarray:
    return samples[int(start * SAMPLE_RATE):int(end * SAMPLE_RATE)]


def real_voices(shared: Path) -> dict[str, Voice]:
    """Single-speaker stretches of the real videos and samples."""
    interact = media.read_audio(shared / "video" / "interact_11.mp4", SAMPLE_RATE)
    head = media.read_audio(shared / "video" / "talking_head_1.mp4", SAMPLE_RATE)
    left = media.read_audio(shared / "generator" / "anytalker_2p-0" / "2p-0-left.wav", SAMPLE_RATE)
    right = media.read_audio(shared / "generator" / "anytalker_2p-0" / "2p-0-right.wav", SAMPLE_RATE)
    sample = media.read_audio(shared / "diarization" / "pyannote_sample" / "sample.wav", SAMPLE_RATE)
    reference = Diarization.load_rttm(shared / "diarization" / "pyannote_sample" / "sample.rttm")
    voices = {
        "interact_right": Voice("interact_right", [trimmed(_cut(interact, 0.0, 4.2))]),
        "interact_left": Voice("interact_left", [trimmed(_cut(interact, 4.3, 8.6))]),
        "talking_head": Voice("talking_head", [trimmed(_cut(head, 0.0, 6.0)), trimmed(_cut(head, 6.0, 12.0))],
                              "held-out"),
        "anytalker_left": Voice("anytalker_left", [trimmed(_cut(left, 4.4, 8.7))], "held-out"),
        "anytalker_right": Voice("anytalker_right", [trimmed(_cut(right, 0.0, 4.7))], "held-out"),
    }
    for speaker in reference.speakers:  # the pyannote sample's stretches of at least 1 s where this speaker is alone
        own = reference.activity(speaker, 100, len(sample) // 160) > 0
        others = [reference.activity(s, 100, len(sample) // 160) > 0 for s in reference.speakers if s != speaker]
        alone = own & ~np.any(others, axis=0)
        pieces = [trimmed(_cut(sample, a / 100, b / 100)) for a, b in runs(alone) if b - a >= 100]
        voices[f"pyannote_{speaker}"] = Voice(f"pyannote_{speaker}", pieces)
    return voices


def librispeech_voices(shared: Path) -> dict[str, Voice]:
    source = LibriSpeechSource(shared / "speech" / "librispeech_test-other")
    return {v: Voice(v, [trimmed(u) for u in source.utterances(v)], "tune" if v in TUNE_SPEAKERS else "held-out")
            for v in (*TUNE_SPEAKERS, *HELD_OUT_SPEAKERS)}


def one_voice_set(shared: Path, rng: np.random.Generator) -> list[Recording]:
    """Each LibriSpeech utterance alone (30) and each real voice alone, at random levels."""
    recordings = []
    for voice in librispeech_voices(shared).values():
        for k, piece in enumerate(voice.pieces):
            recordings.append(single_voice(f"{voice.name}-{k}", piece, float(rng.uniform(-36, -12)), voice.split,
                                           activity_of=speech_of))
    for voice in real_voices(shared).values():
        piece = np.concatenate(voice.pieces[:2]) if voice.name == "talking_head" else max(voice.pieces, key=len)
        recordings.append(single_voice(voice.name, piece, float(rng.uniform(-36, -12)), voice.split,
                                       activity_of=speech_of))
    return recordings


def _piece(voice: Voice, seconds: float, rng: np.random.Generator) -> np.ndarray:
    """About `seconds` of one of the voice's pieces, from a random start."""
    piece = voice.pieces[int(rng.integers(len(voice.pieces)))]
    length = min(len(piece), int(seconds * SAMPLE_RATE))
    start = int(rng.integers(0, len(piece) - length + 1))
    return trimmed(piece[start:start + length])


def turns_of(voices: list[Voice], pattern: str, seconds: tuple[float, float], gaps: tuple[float, float],
             rng: np.random.Generator, name: str, kind: str, levels: dict[str, float] | None = None) -> Recording:
    """Turns in the order `pattern` gives (letters index `voices`), each lasting `seconds` (range), separated by
    `gaps` (range, negative: overlap)."""
    order = [voices[ord(c) - ord("A")] for c in pattern]
    turns = [(v.name, _piece(v, float(rng.uniform(*seconds)), rng)) for v in order]
    split = "held-out" if any(v.split == "held-out" for v in voices) else "tune"
    return in_turns(name, turns, [float(rng.uniform(*gaps)) for _ in turns[1:]],
                    levels or random_levels([v.name for v in voices], rng), split, kind, activity_of=speech_of)


def two_voice_set(shared: Path, rng: np.random.Generator) -> list[Recording]:
    """Two voices in short turns (5-10 s): every pair of LibriSpeech speakers within each split, real pairs, and
    cross-source pairs; and the pyannote sample's two similar voices in 10 s windows."""
    libri, real = librispeech_voices(shared), real_voices(shared)
    recordings = []
    for split in ("tune", "held-out"):
        names = [v for v in libri if libri[v].split == split]
        for a, b in itertools.combinations(names, 2):
            pattern = "ABA" if rng.random() < 0.5 else "AB"
            recordings.append(turns_of([libri[a], libri[b]], pattern, (2.0, 4.0), (0.2, 0.7), rng,
                                       f"{a}+{b}", "two voices"))
    pairs = [("interact_right", "interact_left"), ("anytalker_right", "anytalker_left"),
             ("talking_head", "anytalker_left"), ("talking_head", "interact_right"),
             ("pyannote_speaker90", "pyannote_speaker91")]
    for a, b in pairs:
        for pattern in ("AB", "ABA"):
            recordings.append(turns_of([real[a], real[b]], pattern, (2.0, 4.0), (0.2, 0.7), rng,
                                       f"{a}+{b}-{pattern}", "two voices"))
    sample = media.read_audio(shared / "diarization" / "pyannote_sample" / "sample.wav", SAMPLE_RATE)
    reference = Diarization.load_rttm(shared / "diarization" / "pyannote_sample" / "sample.rttm")
    for start in (5.0, 12.0, 20.0):
        recordings.append(window_of(sample, reference, start, start + 10.0, "pyannote_sample", "tune"))
    return recordings


def window_of(samples: np.ndarray, reference: Diarization, start: float, end: float, name: str,
              split: str) -> Recording:
    """[start, end) of a recording with its reference turns cut to it."""
    from mit_annotator.core.records import SpeakerTurn

    turns = [SpeakerTurn(t.speaker, max(t.start, start) - start, min(t.end, end) - start)
             for t in reference.turns if t.start < end and t.end > start]
    kind = "one voice" if len({t.speaker for t in turns}) == 1 else "two voices"
    return Recording(f"{name}[{start:g}-{end:g}]", _cut(samples, start, end), Diarization(turns, uri=name), split,
                     kind)


def overlap_set(shared: Path, rng: np.random.Generator, per_split: int = 4) -> list[Recording]:
    """Conversations of 2-3 LibriSpeech voices (about 15-20 s, levels within 8 dB of each other) where most turns
    overlap the previous one by up to 1.5 s (10-30% of the speech overlapped); and the pyannote sample as it is
    (its reference marks overlap)."""
    libri = librispeech_voices(shared)
    recordings = []
    for split in ("tune", "held-out"):
        names = [v for v in libri if libri[v].split == split]
        for k in range(per_split):
            while True:  # drawn again until 10-30% of the speech is overlapped
                chosen = [libri[v] for v in rng.choice(names, 2 + k % 2, replace=False)]
                pattern = "".join("ABC"[i % len(chosen)] for i in range(8))
                base = float(rng.uniform(-32, -16))  # voices of one conversation within 8 dB of each other
                levels = {v.name: base + float(rng.uniform(-4, 4)) for v in chosen}
                recording = turns_of(chosen, pattern, (2.0, 4.0), (-1.5, 0.3), rng, f"conversation-{split}-{k}",
                                     "overlap", levels)
                if 0.1 <= overlapped_share(recording.truth) <= 0.3:
                    break
            recordings.append(recording)
    sample = media.read_audio(shared / "diarization" / "pyannote_sample" / "sample.wav", SAMPLE_RATE)
    reference = Diarization.load_rttm(shared / "diarization" / "pyannote_sample" / "sample.rttm")
    recordings.append(Recording("pyannote_sample", sample, reference, "tune", "overlap, pyannote sample"))
    return recordings


def many_speakers_set(shared: Path, rng: np.random.Generator) -> list[Recording]:
    """4 and 5 LibriSpeech voices taking turns of 3-8 s (about 40 s, as the pyAudioAnalysis recordings) in each
    split; and the pyAudioAnalysis recordings (4 and 6 speakers; held out)."""
    from mit_annotator.core.records import SpeakerTurn

    libri = librispeech_voices(shared)
    recordings = []
    for split in ("tune", "held-out"):
        names = [v for v in libri if libri[v].split == split]
        for people in (4, 5):
            chosen = [libri[v] for v in rng.choice(names, people, replace=False)]
            order = [int(k) for k in rng.permutation(people)] + [int(k) for k in rng.integers(0, people, 4)]
            order = [k for i, k in enumerate(order) if i == 0 or k != order[i - 1]]
            pattern = "".join("ABCDE"[k] for k in order)
            recordings.append(turns_of(chosen, pattern, (3.0, 8.0), (0.2, 0.8), rng, f"{people}-voices-{split}",
                                       "many voices"))
    for stem in ("diarizationExample", "diarizationExample2"):
        folder = shared / "diarization" / "pyaudioanalysis"
        turns = []
        for line in (folder / f"{stem}.segments").read_text().splitlines():
            if line.strip():
                start, end, speaker = line.replace(",", " ").split()[:3]
                turns.append(SpeakerTurn(f"s{speaker.strip()}", float(start), float(end)))
        recordings.append(Recording(stem, media.read_audio(folder / f"{stem}.wav", SAMPLE_RATE),
                                    Diarization(turns, uri=stem), "held-out", "many voices"))
    return recordings


# Panels of three real talking people (mit_annotator.synthetic.remix.panel): interact_11's two people and
# talking_head_1's, each talking on screen all the time; part by part only some voices play ("AB": two at once).
# (name, split, the talkers left to right, talking_head_1's stretch at 25 fps, parts)
PANELS = [
    ("turns", "tune", ("left", "right", "head"), slice(0, 90), ["A", "B", "C", "B", "A", "C"]),
    ("turns+overlap", "tune", ("left", "right", "head"), slice(0, 90), ["A", "AB", "C", "BC", "A"]),
    ("long turns", "tune", ("left", "right", "head"), slice(0, 90), ["C", "C", "A", "A", "B", "B"]),
    ("turns", "held-out", ("left", "head", "right"), slice(100, 190), ["B", "C", "A", "C", "B", "A"]),
    ("turns+overlap", "held-out", ("head", "right", "left"), slice(180, 270), ["A", "C", "AC", "B", "AB", "C"]),
    ("overlap-heavy", "held-out", ("left", "head", "right"), slice(100, 190), ["AB", "C", "BC", "A", "AC"]),
]
LEFT_TALKS, RIGHT_TALKS = slice(118, 208), slice(5, 95)  # interact_11's frames at 25 fps where one person speaks


def talkers(shared: Path, head_stretch: slice) -> dict:
    """interact_11's left and right person (each while they talk) and talking_head_1 over `head_stretch`."""
    from mit_annotator.synthetic.remix import Talker

    interact, head = shared / "video" / "interact_11.mp4", shared / "video" / "talking_head_1.mp4"
    frames, audio = media.read_frames(interact, fps=25), media.read_audio(interact, SAMPLE_RATE)
    head_frames, head_audio = media.read_frames(head, fps=25), media.read_audio(head, SAMPLE_RATE)
    half, per_frame = frames.shape[2] // 2, SAMPLE_RATE // 25
    return {"left": Talker("left", frames[LEFT_TALKS, :, :half],
                           audio[LEFT_TALKS.start * per_frame:LEFT_TALKS.stop * per_frame]),
            "right": Talker("right", frames[RIGHT_TALKS, :, half:],
                            audio[RIGHT_TALKS.start * per_frame:RIGHT_TALKS.stop * per_frame]),
            "head": Talker("head", head_frames[head_stretch],
                           head_audio[head_stretch.start * per_frame:head_stretch.stop * per_frame])}


def panel_set(shared: Path) -> list[Recording]:
    """The panels' audio, with whose voice plays when as the truth."""
    from mit_annotator.core.records import SpeakerTurn
    from mit_annotator.synthetic.remix import panel

    recordings = []
    for name, split, order, stretch, parts in PANELS:
        people = talkers(shared, stretch)
        remix = panel([people[p] for p in order], parts, 25.0, SAMPLE_RATE)
        turns = [SpeakerTurn(who, a / 25, b / 25) for who, on in remix.speaking.items() for a, b in runs(on)]
        recordings.append(Recording(f"panel {name} {''.join(parts)}", remix.audio, Diarization(turns), split,
                                    "panel"))
    return recordings


def all_recordings(shared: Path, seed: int = 0) -> list[Recording]:
    rng = np.random.default_rng(seed)
    return (one_voice_set(shared, rng) + two_voice_set(shared, rng) + overlap_set(shared, rng)
            + many_speakers_set(shared, rng) + panel_set(shared))
