"""CovOG's training data: clip folders in the MIT layout or our records, read through `mit_annotator.dataset.reader`;
stage-1 items (a reference and a target frame) and stage-2 items (a run of frames with their conditioning), and
`EpochOrder`, the trainer's data order as a function of the seed and the epoch (so a resume reads what the
uninterrupted run would). docs/covog-model.md gives each item's contents.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch.utils.data import Dataset, default_collate
from transformers import Wav2Vec2Model

from covog.models.encoders import AUDIO_RATE, audio_features
from covog.pipeline.conditioning import PoseRenders, face_masks, speaking_scores
from covog.pipeline.sampler import SIZE_MULTIPLE
from mit_annotator.core import media
from mit_annotator.core.files import atomic_path
from mit_annotator.dataset.reader import LEGACY_FILES, SPEAKER_FILES, MitClip, RecordsClip, is_clip, open_clip

CLIP_FILES = LEGACY_FILES
AUDIO_FEATURES_FILE = "audio_features.safetensors"
RELEASED_AUDIO_FILE = "audio_embeding.pt"  # the released clips' wav2vec2 features (frames, 12, 768), sic
AUDIO_FEATURES_KEY = "audio_features"
# CovOG's stage-1 data: the target at least `sample_margin` frames from the reference, anywhere else in the clip (its
# configs: 30, and 50 for the CovOG stage-1 fine-tune; the paper: "30-50 frames apart")
MIN_FRAME_GAP = 30
CLIP_LENGTH = 15  # the paper: stage-2 clips of 15 frames ...
STRIDES = (1, 2)  # ... taken every 1 or 2 frames


class ClipError(ValueError):
    """A clip folder that cannot be trained on; the message names the folder."""


@dataclass(frozen=True)
class ClipInfo:
    """What is checked once per clip; the records themselves are read again per item (they can be large)."""

    folder: Path
    num_frames: int
    fps: float
    people: int
    reader: MitClip | RecordsClip


def find_clips(paths: list[str | os.PathLike] | str | os.PathLike) -> list[Path]:
    """Clip folders: each path is a clip folder itself, or a root whose subfolders holding the clip files are clips.

    A folder holding some of the clip files but not all is an error, not something to skip silently."""
    paths = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
    clips = []
    for path in map(Path, paths):
        if not path.is_dir():
            raise ClipError(f"{path}: no such folder")
        if _is_clip(path):
            clips.append(path)
            continue
        found = sorted(sub for sub in path.iterdir() if sub.is_dir() and _is_clip(sub))
        if not found:
            raise ClipError(f"{path}: no clips found (a clip folder holds {' or '.join(SPEAKER_FILES)} and pose/, "
                            f"or {', '.join(CLIP_FILES)})")
        clips.extend(found)
    return clips


def _is_clip(folder: Path) -> bool:
    try:
        return is_clip(folder)
    except ValueError as error:
        raise ClipError(str(error)) from None


def cache_audio_features(clip: ClipInfo, encoder: Wav2Vec2Model) -> Path:
    """Compute the whole clip's wav2vec2 features (frames, layers, dim) from the video's audio and write them
    atomically beside the clip; an existing cache of the right shape is kept."""
    path = clip.folder / AUDIO_FEATURES_FILE
    expected = (clip.num_frames, encoder.config.num_hidden_layers, encoder.config.hidden_size)
    if _cached_shape(path) == expected:
        return path
    if _released_features(clip, expected) is not None:
        return path
    if not clip.reader.audio_media.is_file():
        raise ClipError(f"{clip.folder}: no audio to compute its features from: neither video.mp4 nor a "
                        f"{RELEASED_AUDIO_FILE} of shape (frames, {expected[1]}, {expected[2]})")
    samples = media.read_audio(clip.reader.audio_media, AUDIO_RATE)
    features = audio_features(encoder, samples, clip.num_frames, clip.fps)
    with atomic_path(path) as tmp:
        save_file({AUDIO_FEATURES_KEY: features.cpu().contiguous()}, str(tmp), metadata={"fps": str(clip.fps)})
    return path


def _released_features(clip: ClipInfo, expected: tuple[int, int, int] | None) -> Path | None:
    """The clip's `audio_embeding.pt` (the released layout's features), cached in our format when it has the expected
    shape (any (frames >= the clip's, layers, dim) when `expected` is None); None when there is none that fits."""
    released = clip.folder / RELEASED_AUDIO_FILE
    if not released.is_file():
        return None
    try:
        features = torch.load(released, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many types for unreadable files
        raise ClipError(f"{clip.folder}: {RELEASED_AUDIO_FILE} is not readable ({str(error).splitlines()[0]})"
                        ) from None
    if not isinstance(features, torch.Tensor) or features.ndim != 3 or features.shape[0] < clip.num_frames:
        raise ClipError(f"{clip.folder}: {RELEASED_AUDIO_FILE} must be a (frames >= {clip.num_frames}, layers, dim) "
                        f"tensor, found {getattr(features, 'shape', type(features).__name__)}")
    if expected is not None and tuple(features.shape[1:]) != expected[1:]:
        return None
    path = clip.folder / AUDIO_FEATURES_FILE
    with atomic_path(path) as tmp:
        save_file({AUDIO_FEATURES_KEY: features[:clip.num_frames].float().contiguous()}, str(tmp),
                  metadata={"fps": str(clip.fps)})
    return path


def _cached_shape(path: Path) -> tuple[int, ...] | None:
    if not path.is_file():
        return None
    try:
        with safe_open(str(path), "pt") as file:
            return tuple(file.get_slice(AUDIO_FEATURES_KEY).get_shape())
    except Exception:  # unreadable or another file under that name: computed again
        return None


class ConversationClips(Dataset):
    """One item per clip per epoch, each drawn at random positions in its clip (torch's random generator)."""

    def __init__(self, clips: list[str | os.PathLike] | str | os.PathLike, size: tuple[int, int] = (640, 384),
                 stage: int = 1, clip_length: int = CLIP_LENGTH, strides: tuple[int, ...] = STRIDES,
                 audio_encoder: Wav2Vec2Model | None = None, min_frame_gap: int = MIN_FRAME_GAP):
        """clips: clip folders or roots of clip folders (see `find_clips`); size: (width, height), multiples of 64;
        audio_encoder: stage 2 computes the clips' missing audio features with it (None: they must be cached);
        min_frame_gap: stage 1's least distance between reference and target frame."""
        width, height = size
        if width <= 0 or height <= 0 or width % SIZE_MULTIPLE or height % SIZE_MULTIPLE:
            raise ValueError(f"training size {width}x{height}: both sides must be positive multiples of "
                             f"{SIZE_MULTIPLE}")
        if stage not in (1, 2):
            raise ValueError(f"stage must be 1 or 2, got {stage}")
        if clip_length < 1 or not strides or min(strides) < 1:
            raise ValueError(f"need clip_length >= 1 and strides >= 1, got {clip_length} and {strides}")
        if min_frame_gap < 1:
            raise ValueError(f"min_frame_gap must be at least 1, got {min_frame_gap}")
        self.size, self.stage, self.min_frame_gap = (width, height), stage, min_frame_gap
        self.clip_length, self.strides = clip_length, tuple(sorted(strides))
        self.clips = [self._check(folder) for folder in find_clips(clips)]
        if stage == 2:
            for clip in self.clips:
                self._prepare_audio(clip, audio_encoder)

    @property
    def people_counts(self) -> set[int]:
        return {clip.people for clip in self.clips}

    def _check(self, folder: Path) -> ClipInfo:
        reader = open_clip(folder)
        if not reader.people:
            raise ClipError(f"{folder}: tracks.json has no people")
        if reader.missing_keypoints:
            raise ClipError(f"{folder}: tracks {reader.missing_keypoints} have no keypoints (run the annotator's "
                            "pose stage)")
        if reader.speaking_frames < reader.num_frames:
            raise ClipError(f"{folder}: speaking.json covers {reader.speaking_frames} frames, the tracks "
                            f"{reader.num_frames}")
        needed = 2 if self.stage == 1 else self.clip_length  # stage 2 can always fall back to stride 1
        if reader.num_frames < needed:
            raise ClipError(f"{folder}: {reader.num_frames} frames; stage {self.stage} needs at least {needed}")
        return ClipInfo(folder, reader.num_frames, reader.fps, reader.people, reader)

    def _prepare_audio(self, clip: ClipInfo, encoder: Wav2Vec2Model | None):
        if encoder is not None:
            cache_audio_features(clip, encoder)
        elif _cached_shape(clip.folder / AUDIO_FEATURES_FILE) is None and _released_features(clip, None) is None:
            raise ClipError(f"{clip.folder}: no {AUDIO_FEATURES_FILE}; give the dataset the model's audio encoder "
                            "to compute it")

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, key: int | tuple[int, int]) -> dict:
        """An item of clip `key`, at positions drawn from torch's global generator; or, for a key (clip, seed) as
        `EpochOrder` gives them, from a generator of its own seeded with `seed`."""
        index, seed = key if isinstance(key, tuple) else (key, None)
        generator = None if seed is None else torch.Generator().manual_seed(seed)
        clip = self.clips[index]
        if self.stage == 1:
            return self._stage1_item(clip, generator)
        return self._stage2_item(clip, generator)

    def _stage1_item(self, clip: ClipInfo, generator: torch.Generator | None) -> dict:
        """reference, target: (3, H, W) float 0..1; reference_poses, target_poses: (people, 3, H, W) uint8."""
        reference_frame, target_frame = frame_pair(clip.num_frames, self.min_frame_gap, generator)
        renders = PoseRenders(clip.reader.tracks([reference_frame, target_frame]), self.size)
        return {
            "reference": self._frames(clip, range(reference_frame, reference_frame + 1))[0],
            "reference_poses": renders[reference_frame],
            "target": self._frames(clip, range(target_frame, target_frame + 1))[0],
            "target_poses": renders[target_frame],
            "reference_frame": reference_frame, "target_frame": target_frame,
        }

    def _stage2_item(self, clip: ClipInfo, generator: torch.Generator | None) -> dict:
        """frames: (F, 3, H, W) float 0..1; poses: (F, people, 3, H, W) uint8; face_masks: {factor: (F, people,
        H/8/factor, W/8/factor)}; speaking_scores: (F, people); audio_features: (F, layers, dim); reference and
        reference_poses as in stage 1; frame_indices: (F,) the clip frames used."""
        fitting = [s for s in self.strides if (self.clip_length - 1) * s + 1 <= clip.num_frames] or [1]
        stride = fitting[_randint(0, len(fitting) - 1, generator)]
        span = (self.clip_length - 1) * stride + 1
        start = _randint(0, clip.num_frames - span, generator)
        frames = range(start, start + span, stride)
        reference_frame = _randint(0, clip.num_frames - 1, generator)
        speaking = clip.reader.speaking()
        tracks = clip.reader.tracks([*frames, reference_frame])
        renders = PoseRenders(tracks, self.size)
        return {
            "frames": self._frames(clip, frames),
            "poses": renders[frames.start:frames.stop:stride],
            "speaking_scores": speaking_scores(speaking, tracks, frames),
            "face_masks": face_masks(tracks, frames, self.size),
            "audio_features": self._audio(clip, frames),
            "reference": self._frames(clip, range(reference_frame, reference_frame + 1))[0],
            "reference_poses": renders[reference_frame],
            "reference_frame": reference_frame, "frame_indices": torch.tensor(list(frames)),
        }

    def _frames(self, clip: ClipInfo, frames: range) -> torch.Tensor:
        """(len(frames), 3, H, W) float 0..1, frames counted at the tracks' rate."""
        pixels = clip.reader.read_frames(frames.start, frames.stop, self.size)
        if len(pixels) < frames.stop - frames.start:
            raise ClipError(f"{clip.folder}: the video ends at frame {frames.start + len(pixels)}; the clip has "
                            f"{clip.num_frames} frames")
        return torch.from_numpy(pixels[::frames.step].copy()).permute(0, 3, 1, 2).float() / 255.0

    def _audio(self, clip: ClipInfo, frames: range) -> torch.Tensor:
        with safe_open(str(clip.folder / AUDIO_FEATURES_FILE), "pt") as file:
            features = file.get_slice(AUDIO_FEATURES_KEY)[frames.start:frames.stop]
        return features[::frames.step].contiguous()


def frame_pair(num_frames: int, min_gap: int = MIN_FRAME_GAP,
               generator: torch.Generator | None = None) -> tuple[int, int]:
    """(reference, target): the reference uniform among the frames that have a target at least `min_gap` away (the
    gap shrinks to fit a shorter clip), the target uniform among those, before or after it."""
    gap = min(min_gap, num_frames - 1)
    with_target = [f for f in range(num_frames) if f - gap >= 0 or f + gap < num_frames]
    reference = with_target[_randint(0, len(with_target) - 1, generator)]
    targets = [*range(0, reference - gap + 1), *range(reference + gap, num_frames)]
    return reference, targets[_randint(0, len(targets) - 1, generator)]


def _randint(low: int, high: int, generator: torch.Generator | None = None) -> int:
    """Uniform in [low, high], inclusive, from `generator`, else from torch's global generator."""
    return int(torch.randint(low, high + 1, (), generator=generator).item())


@dataclass(frozen=True)
class EpochOrder:
    """The trainer's data order. Every epoch is a permutation of the clips from a generator seeded by (seed, epoch),
    padded from its start to whole steps, with one item seed per draw; each step deals `batch` draws to each of the
    `processes` processes in turn. Keys are (clip index, item seed), as `ConversationClips` reads them."""

    clips: int
    batch: int
    seed: int
    process: int = 0
    processes: int = 1

    def __post_init__(self):
        if self.clips < 1 or self.batch < 1 or not 0 <= self.process < self.processes:
            raise ValueError(f"an epoch order needs clips >= 1, batch >= 1 and 0 <= process < processes, got {self}")

    def __len__(self) -> int:
        """Steps per epoch."""
        return math.ceil(self.clips / (self.batch * self.processes))

    def batches(self, epoch: int, skip: int = 0) -> list[list[tuple[int, int]]]:
        """This process's batches of `epoch`, from step `skip` of it on."""
        rng = np.random.default_rng([self.seed, epoch])
        draws = len(self) * self.batch * self.processes
        order = np.resize(rng.permutation(self.clips), draws)  # np.resize repeats the permutation to fill the steps
        seeds = rng.integers(0, 2 ** 63 - 1, size=draws)
        keys = [(int(index), int(seed)) for index, seed in zip(order, seeds)]
        per_step = self.batch * self.processes
        mine = slice(self.process * self.batch, (self.process + 1) * self.batch)
        return [keys[step * per_step:(step + 1) * per_step][mine] for step in range(skip, len(self))]


def collate(items: list[dict]) -> dict:
    """Stack items into a batch; clips with different numbers of people cannot share one."""
    key = "target_poses" if "target_poses" in items[0] else "poses"
    counts = sorted({item[key].shape[-4] for item in items})
    if len(counts) > 1:
        raise ValueError(f"a batch mixes clips of {counts} people; use batch size 1 (the paper's: 1 per GPU) or "
                         "clips with one number of people")
    return default_collate(items)
