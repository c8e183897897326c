"""Input folders for the annotate tests: real and synthetic conversations with exact ground truth, a shot cut, a
corrupt file and a video without audio."""

from __future__ import annotations

import itertools
import os
from pathlib import Path

import numpy as np

from mit_annotator.core import media
from mit_annotator.synthetic import ConversationSpec, synthesize_conversation

SIZE = (320, 180)


def conversation(speech, people: int, seconds: float, seed: int, size=SIZE):
    return synthesize_conversation(ConversationSpec(num_people=people, seconds=seconds, width=size[0],
                                                    height=size[1], seed=seed), speech)


def save_video(path: Path, frames, audio: np.ndarray | None) -> Path:
    return media.write_video(path, frames, 25.0, audio, 16000)


def shot_cut(speech, path: Path, seeds=(11, 12), people=(2, 3), seconds=(10.0, 10.0)):
    """Two conversations one after the other (other people, another set): one video with a shot cut. Returns the
    two conversations and the cut's frame."""
    first, second = (conversation(speech, n, s, seed) for n, s, seed in zip(people, seconds, seeds))
    save_video(path, itertools.chain(first.frames(), second.frames()), np.concatenate([first.mix, second.mix]))
    return first, second, first.spec.num_frames


def corrupt(source: Path, path: Path) -> Path:
    """The first third of a real mp4: the index at its end is gone."""
    data = source.read_bytes()
    path.write_bytes(data[: len(data) // 3])
    return path


def without_audio(speech, path: Path, seed: int = 31) -> Path:
    talk = conversation(speech, 2, 5.4, seed)
    return save_video(path, talk.frames(), None)


def link(target: Path, path: Path) -> Path:
    os.symlink(target, path)
    return path


def panning(speech, path: Path, seed: int = 16, seconds: float = 6.0, pixels_per_frame: float = 0.4):
    """A conversation filmed by a camera that pans right across a textured set: every frame is a window of a wider
    rendering, moved by `pixels_per_frame`."""
    import cv2

    width, height = SIZE
    talk = conversation(speech, 2, seconds, seed, size=(width + 100, height))
    rng = np.random.default_rng(seed)
    texture = cv2.resize(rng.integers(60, 200, (height // 6, (width + 100) // 6, 3), dtype=np.uint8),
                         (width + 100, height), interpolation=cv2.INTER_CUBIC)
    talk.backdrop = texture

    def frames():
        for k, frame in enumerate(talk.frames()):
            shift = np.float32([[1, 0, -(30 + pixels_per_frame * k)], [0, 1, 0]])
            yield cv2.warpAffine(frame, shift, (width, height), flags=cv2.INTER_LINEAR)

    save_video(path, frames(), talk.mix)
    return talk
