"""Test variants of a real two-person video in which who speaks is known and the listener's lips move.

Take a stretch where the left person talks and one where the right person talks; put the left half of the first's
frames beside the right half of the second's: both people now talk on screen all the time. Then choose whose
recorded voice plays, part by part: the right's (the left person mouths words that are not heard), the left's, or
both mixed (two people at once). No visual cue tells the speaker from the listener: only whether the mouth moves
with the voice that plays.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

PARTS = {"R": "the right person's voice", "L": "the left person's voice", "B": "both voices mixed"}


@dataclass
class Remix:
    frames: np.ndarray  # (T, H, W, 3) uint8 RGB
    audio: np.ndarray  # mono float32 at `sample_rate`
    fps: float
    sample_rate: int
    speaking: dict[str, np.ndarray]  # "left" / "right": (T,) bool, whose voice plays in each frame


def side_by_side(frames: np.ndarray, audio: np.ndarray, fps: float, sample_rate: int, left_talks: slice,
                 right_talks: slice, parts: str, split_x: int | None = None) -> Remix:
    """A remix of `frames` (and their `audio`) whose parts play the voices named by `parts` (letters of PARTS).
    `left_talks` / `right_talks`: equally long frame ranges where that person speaks alone; `split_x`: the column
    between the two people (default: the middle)."""
    length = left_talks.stop - left_talks.start
    if length <= 0 or right_talks.stop - right_talks.start != length:
        raise ValueError(f"the two talking stretches must be equally long and not empty, got {left_talks} and "
                         f"{right_talks}")
    if not parts or set(parts) - set(PARTS):
        raise ValueError(f"parts must be letters of {''.join(PARTS)}, got {parts!r}")
    split = frames.shape[2] // 2 if split_x is None else split_x
    both = frames[right_talks].copy()
    both[:, :, :split] = frames[left_talks][:, :, :split]
    per_frame = sample_rate / fps
    voice = {side: audio[int(round(s.start * per_frame)):int(round(s.stop * per_frame))]
             for side, s in (("L", left_talks), ("R", right_talks))}
    samples = min(len(v) for v in voice.values())
    voice = {side: v[:samples] for side, v in voice.items()}
    voice["B"] = np.clip(voice["L"] + voice["R"], -1.0, 1.0)
    speaking = {"left": np.repeat([p in "LB" for p in parts], length),
                "right": np.repeat([p in "RB" for p in parts], length)}
    return Remix(np.concatenate([both] * len(parts)), np.concatenate([voice[p] for p in parts]).astype(np.float32),
                 fps, sample_rate, speaking)


@dataclass
class Talker:
    """One real person talking: their frames (T, H, W, 3) uint8 RGB, cropped to them, and their own voice over
    those frames (mono float32)."""

    name: str
    frames: np.ndarray
    voice: np.ndarray


def panel(talkers: list[Talker], parts: list[str], fps: float, sample_rate: int, height: int = 224) -> Remix:
    """The talkers side by side (each scaled to `height`), all talking on screen all the time; part k plays the
    voices of the talkers whose index (as a letter: "A" the first) is in `parts[k]` ("" silence, "AB" two at once),
    every part as long as the shortest talker. `speaking` is keyed by talker name."""
    import cv2

    if not talkers or not parts:
        raise ValueError("a panel needs talkers and parts")
    letters = {chr(ord("A") + i) for i in range(len(talkers))}
    if any(set(p) - letters for p in parts):
        raise ValueError(f"parts must be letters of {''.join(sorted(letters))}, got {parts}")
    length = min(len(t.frames) for t in talkers)
    samples = int(round(length * sample_rate / fps))
    if any(len(t.voice) < samples for t in talkers):
        raise ValueError("every talker's voice must last as long as their frames")
    tiles = []
    for t in talkers:
        width = int(round(t.frames.shape[2] * height / t.frames.shape[1])) // 2 * 2
        tiles.append(np.stack([cv2.resize(f, (width, height), interpolation=cv2.INTER_AREA)
                               for f in t.frames[:length]]))
    row = np.concatenate(tiles, axis=2)
    audio = [sum((t.voice[:samples] for i, t in enumerate(talkers) if chr(ord("A") + i) in p),
                 np.zeros(samples, np.float32)) for p in parts]
    speaking = {t.name: np.repeat([chr(ord("A") + i) in p for p in parts], length) for i, t in enumerate(talkers)}
    mix = np.concatenate(audio)
    peak = float(np.abs(mix).max())
    return Remix(np.concatenate([row] * len(parts)), (mix * min(1.0, 0.99 / max(peak, 1e-9))).astype(np.float32),
                 fps, sample_rate, speaking)
