"""CovOG's per-person conditioning from the annotator's records: skeleton renders (the pose encoder's input), face
masks at the UNet's resolutions and speaking scores per frame, in one fixed person order (the tracks' order)."""

from __future__ import annotations

import numpy as np
import torch

from covog.models.audio_driver import FACE_MASK_FACTORS
from covog.models.encoders import audio_features
from covog.models.model import CovOGModel
from covog.pipeline.sampler import PIXELS_PER_LATENT_CELL, Conditions
from mit_annotator.core.records import SpeakingActivity, VideoTracks, check_speaking_matches
from mit_annotator.speakers.assignment import SCORE_SCALE
from mit_annotator.vision.skeleton import render_person


class PoseRenders:
    """The skeleton renders of a whole video, (frames, people, 3, height, width) uint8, drawn only when a slice of
    frames is asked for: a long video's renders would not fit in memory at once. Each person's render is masked to
    their box; a person not seen in a frame has a black render there. `size` is the video's (width, height)."""

    def __init__(self, tracks: VideoTracks, size: tuple[int, int], frames: range | None = None):
        missing = [t.track_id for t in tracks.tracks if t.keypoints is None or t.keypoint_scores is None]
        if missing:
            raise ValueError(f"tracks {missing} have no keypoints: run the pose stage first (mit_annotator poses)")
        self.tracks, self.size = tracks, size
        self.frames = frames if frames is not None else range(tracks.num_frames)
        self.shape = (len(self.frames), len(tracks.tracks), 3, size[1], size[0])
        self.ndim, self.dtype = 5, torch.uint8

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, index) -> torch.Tensor:
        if isinstance(index, int):
            return self[index:index + 1][0]
        if not isinstance(index, slice):
            raise TypeError("pose renders are read by frame or by a slice of frames")
        width, height = self.size
        frames = self.frames[index]
        scale = (width / self.tracks.width, height / self.tracks.height)
        out = np.zeros((len(frames), len(self.tracks.tracks), height, width, 3), dtype=np.uint8)
        for t, frame in enumerate(frames):
            for p, track in enumerate(self.tracks.tracks):
                row = track.row_of(frame)
                if row is not None:
                    out[t, p] = render_person(track.keypoints[row], track.keypoint_scores[row], self.size,
                                              box=track.boxes[row], scale=scale)
        return torch.from_numpy(out).permute(0, 1, 4, 2, 3)


def face_masks(tracks: VideoTracks, frames: range, size: tuple[int, int],
               factors: tuple[int, ...] = FACE_MASK_FACTORS) -> dict[int, torch.Tensor]:
    """Per resolution the audio driver reads (latent size / factor), a (frames, people, h, w) float mask that is 1
    inside each person's face box.

    `size` is the generated video's (width, height); boxes are scaled from the tracks' frame size. A frame where a
    person's face is unknown (not seen, or NaN box) has an empty mask for them.
    """
    width, height = size
    if width % (PIXELS_PER_LATENT_CELL * max(factors)) or height % (PIXELS_PER_LATENT_CELL * max(factors)):
        raise ValueError(f"video size {width}x{height} must be a multiple of {PIXELS_PER_LATENT_CELL * max(factors)}")
    sx, sy = width / tracks.width, height / tracks.height
    masks = {}
    for factor in factors:
        h, w = height // (PIXELS_PER_LATENT_CELL * factor), width // (PIXELS_PER_LATENT_CELL * factor)
        out = np.zeros((len(frames), len(tracks.tracks), h, w), dtype=np.float32)
        cell_x, cell_y = width / w, height / h
        for t, frame in enumerate(frames):
            for p, track in enumerate(tracks.tracks):
                row = track.row_of(frame)
                if row is None or track.face_boxes is None or np.isnan(track.face_boxes[row]).any():
                    continue
                x1, y1, x2, y2 = track.face_boxes[row] * (sx, sy, sx, sy)
                # every cell the box touches, so a small face still gets at least one cell
                c1, c2 = int(np.clip(x1 // cell_x, 0, w - 1)), int(np.clip(np.ceil(x2 / cell_x), 1, w))
                r1, r2 = int(np.clip(y1 // cell_y, 0, h - 1)), int(np.clip(np.ceil(y2 / cell_y), 1, h))
                out[t, p, r1:r2, c1:c2] = 1.0
        masks[factor] = torch.from_numpy(out)
    return masks


def speaking_scores(speaking: SpeakingActivity, tracks: VideoTracks, frames: range) -> torch.Tensor:
    """(frames, people) speaking scores in the tracks' person order; a person without scores is a listener."""
    if len(frames) and speaking.num_frames < max(frames) + 1:
        raise ValueError(f"speaking scores cover {speaking.num_frames} frames; frames up to {max(frames) + 1} "
                         "are asked")
    check_speaking_matches(speaking, tracks)
    for person in speaking.people:
        if np.isnan(person.scores[np.asarray(frames)]).any():
            raise ValueError(f"person {person.track_id}'s speaking scores are missing (null) in some frames: give "
                             "the assignment `assign` writes (every frame scored), not raw active-speaker scores")
    known = {p.track_id: p.scores for p in speaking.people}
    listener = np.full(speaking.num_frames, -SCORE_SCALE, dtype=np.float32)  # the score of someone never speaking
    rows = np.asarray(frames)  # a strided range keeps its stride
    columns = [known.get(t.track_id, listener)[rows] for t in tracks.tracks]
    return torch.from_numpy(np.stack(columns, axis=1).astype(np.float32))


def build_conditions(model: CovOGModel, tracks: VideoTracks, reference: np.ndarray,
                     audio: np.ndarray | list[np.ndarray], speaking: SpeakingActivity, size: tuple[int, int],
                     reference_frame: int = 0) -> Conditions:
    """The sampler's inputs for the tracks' whole video at `size` (width, height).

    reference: (height, width, 3) uint8 RGB at `size`; audio: 16 kHz mono, the mixed track or one per person in the
    tracks' order; speaking: per-person scores (the annotator's assignment); reference_frame: the frame whose poses
    the reference image shows (its pose renders go to the pose adaptor).
    """
    width, height = size
    if reference.shape != (height, width, 3):
        raise ValueError(f"reference image must be {width}x{height} RGB, got shape {reference.shape}")
    frames = range(tracks.num_frames)
    poses = PoseRenders(tracks, size)
    if not 0 <= reference_frame < len(poses):
        raise ValueError(f"reference_frame {reference_frame} is outside the {len(poses)} frames")
    if isinstance(audio, list):
        if len(audio) != len(tracks.tracks):
            raise ValueError(f"{len(audio)} per-person audio tracks for {len(tracks.tracks)} people")
        features = torch.stack([audio_features(model.audio_encoder, a, len(frames), tracks.fps) for a in audio])
    else:
        features = audio_features(model.audio_encoder, audio, len(frames), tracks.fps)
    return Conditions(
        reference=torch.from_numpy(reference).permute(2, 0, 1).float() / 255.0,
        reference_poses=poses[reference_frame].float() / 255.0,
        poses=poses, audio_features=features, speaking_scores=speaking_scores(speaking, tracks, frames),
        face_masks=face_masks(tracks, frames, size))
