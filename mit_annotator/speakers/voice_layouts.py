"""Voices laid out the way each multi-speaker model reads them.

- parallel (kijai's MultiTalk with `multi_audio_type` "para", CovOG): every speaker's voice as long as the
  conversation, silent where they do not speak; frame t of the video reads frame t of every voice
  (`binding.split_voices`).
- sequential (ComfyUI core's WanInfiniteTalkToVideo in two_speakers mode, whose `multi_audio_type` is fixed to
  "add"): the node puts the second voice's features after the whole of the first's, and frame t of the video reads
  frame t of that joined timeline (25 fps). One call can therefore show one change of speaker: the first speaker up
  to the change, then the second. A conversation with more changes is generated in segments, a change each, every
  one continuing the last (`previous_frames`: the previous segment's last `motion_frame_count` frames, so the new
  call's timeline starts that many frames before its segment and those frames are trimmed from its output).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from mit_annotator.core.records import SpeakingActivity

LAYOUTS = ("parallel", "sequential")
SEQUENTIAL_FPS = 25.0  # WanInfiniteTalkToVideo reads wav2vec2's features resampled to 25 per second
MOTION_FRAMES = 9  # WanInfiniteTalkToVideo's default motion_frame_count


class LayoutError(ValueError):
    """A conversation a layout cannot express (e.g. two people at once, for a sequential consumer)."""


@dataclass(frozen=True)
class Segment:
    """One call of a sequential consumer: the video's [start, end) seconds, the first voice up to `switch`, the
    second after it; `context` seconds before `start` (the previous segment's motion frames) open its timeline."""

    start: float
    end: float
    switch: float
    first: int  # slot (0-based, in the binding's speaker order) of the voice heard first
    second: int
    context: float = 0.0

    def frames(self, fps: float = SEQUENTIAL_FPS) -> int:
        """Frames to generate: context and segment, rounded up to the 4n + 1 the node asks for."""
        needed = int(round(self.context * fps)) + self.kept(fps)
        return 4 * int(np.ceil(max(needed - 1, 0) / 4)) + 1

    def kept(self, fps: float = SEQUENTIAL_FPS) -> int:
        """Frames of the output that belong to this segment: after the context (which the node trims) and before
        the rounding's extra frames."""
        return int(round(self.end * fps)) - int(round(self.start * fps))


def speaker_turns(speaking: SpeakingActivity, slots: Sequence[int]) -> list[tuple[int, float, float]]:
    """(slot, start, end) seconds, in time order, covering the whole clip: each stretch where one of `slots`' people
    speaks, a silence split at its middle between the turns either side of it (a silence at either end goes to the
    nearest turn). Two people at once cannot be laid out one after the other: LayoutError, naming when."""
    fps, n = speaking.fps, speaking.num_frames
    who = np.full(n, -1, int)
    for slot, track_id in enumerate(slots):
        for a, b in speaking.person(track_id).speak:
            clash = np.flatnonzero(who[a:b] >= 0)
            if len(clash):
                at = (a + clash[0]) / fps
                raise LayoutError(f"two people speak at once at {at:.2f} s (slots {who[a + clash[0]] + 1} and "
                                  f"{slot + 1}): a sequential consumer (InfiniteTalk's two_speakers) plays one voice "
                                  "after the other and cannot express it; use a parallel consumer (MultiTalk)")
            who[a:b] = slot
    turns: list[list] = []
    for frame in np.flatnonzero(who >= 0):
        if turns and turns[-1][0] == who[frame]:  # the same voice again, after a pause or not: one turn
            turns[-1][2] = frame + 1
        else:
            turns.append([int(who[frame]), int(frame), int(frame) + 1])
    if not turns:
        return []
    bounds = [0] + [(turns[k][2] + turns[k + 1][1]) // 2 for k in range(len(turns) - 1)] + [n]
    return [(slot, float(bounds[k] / fps), float(bounds[k + 1] / fps)) for k, (slot, _, _) in enumerate(turns)]


def sequential_plan(speaking: SpeakingActivity, slots: Sequence[int],
                    motion_frames: int = MOTION_FRAMES) -> list[Segment]:
    """The segments a sequential consumer is run in to play the conversation of the first two `slots`: one per
    change of speaker (turns 1-2, 3-4, ...), each after the first continuing from the last `motion_frames` frames of
    the one before. A clip where one person speaks throughout is one segment whose second voice is empty."""
    if len(slots) < 2:
        raise LayoutError("a two-speaker consumer needs two people in the speaker order")
    for slot, track_id in enumerate(slots[2:], start=3):
        speak = speaking.person(track_id).speak
        if speak:
            raise LayoutError(f"person {track_id} (speaker {slot}) speaks too, from {speak[0][0] / speaking.fps:.2f} "
                              "s: a two-speaker consumer (InfiniteTalk's two_speakers) would play their voice with "
                              "another person's face; use MultiTalk (up to 4 voices) or cut the clip")
    turns = speaker_turns(speaking, list(slots[:2]))
    if not turns:
        raise LayoutError("nobody speaks in this clip: there is no voice to lay out")
    context = motion_frames / SEQUENTIAL_FPS
    segments = []
    for k in range(0, len(turns), 2):
        first, start, switch = turns[k]
        second, _, end = turns[k + 1] if k + 1 < len(turns) else (1 - first, switch, switch)
        segments.append(Segment(start, end, switch, first, second, context if segments else 0.0))
    return segments


def sequential_voices(samples: np.ndarray, sample_rate: int, segment: Segment) -> tuple[np.ndarray, np.ndarray]:
    """The two voices of one segment, cut from `samples` ((channels, T) or (T,), the mix, starting at the clip's
    start): the first from `context` before the segment to the switch, the second from the switch to the end, then
    silence to the frames the node generates (at least one frame: the node needs a second voice)."""
    samples = np.asarray(samples, np.float32)

    def at(seconds: float) -> int:
        return int(round(seconds * sample_rate))

    first = samples[..., at(segment.start - segment.context):at(segment.switch)]
    second = samples[..., at(segment.switch):at(segment.end)]
    total = at(segment.frames() / SEQUENTIAL_FPS)
    missing = max(total - first.shape[-1] - second.shape[-1], at(1 / SEQUENTIAL_FPS) - second.shape[-1], 0)
    pad = [(0, 0)] * (samples.ndim - 1) + [(0, missing)]
    return first, np.pad(second, pad)
