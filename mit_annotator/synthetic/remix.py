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
