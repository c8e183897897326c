"""What LR-ASD reads, prepared as the authors' demo prepares it (LR-ASD's Columbia_test.py, itself TalkNet's): face
clips cut from the tracks and cropped from the frames, and the audio's MFCCs (see `active_speaker` for the scoring)."""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np
from scipy.signal import medfilt

from mit_annotator.core.keypoints import face_extent
from mit_annotator.core.records import SAMPLE_RATE, VideoTracks

MFCC_PER_FRAME = 4
MFCC_REACH = int(0.015 * SAMPLE_RATE)  # the last 25 ms MFCC window of a frame ends 15 ms after the frame
CROP_SCALE = 0.40  # published cropScale
BOX_SMOOTHING = 13  # published: median filter (frames) over the crop centre and size
CROP_SIZE, FACE_SIZE = 224, 112
PAD_GREY = 110
MAX_GAP = 10  # frames without a face bridged inside one face clip (published numFailedDet)
MIN_FACE = 16.0  # pixels: smaller faces are not scored
SCORE_FPS = 25.0  # LR-ASD reads video at 25 fps and audio at 100 Hz


@dataclass
class FaceClip:
    """Consecutive frames of one track's face: where to crop (centre x, centre y, half size per frame)."""

    track_id: int
    start: int  # first frame
    centres: np.ndarray  # (T, 2)
    sizes: np.ndarray  # (T,)
    faces: list[np.ndarray] = field(default_factory=list)  # 112x112 uint8 crops, filled while decoding

    @property
    def end(self) -> int:
        return self.start + len(self.sizes)


# ---------------------------------------------------------------------------------------------------------------------
# Audio


def mfcc_features(samples: np.ndarray) -> np.ndarray:
    """(N, 13) MFCCs at 100 Hz of 16 kHz mono float samples, computed as the published pipeline does: on 16-bit
    sample values (what it reads from a wav file), with python_speech_features' defaults."""
    try:
        from python_speech_features import mfcc
    except ImportError:
        raise RuntimeError("active-speaker scores need python_speech_features: pip install python_speech_features"
                           ) from None
    pcm = np.clip(np.round(np.asarray(samples, np.float64) * 32768.0), -32768, 32767)
    return mfcc(pcm, SAMPLE_RATE, numcep=13, winlen=0.025, winstep=0.010).astype(np.float32)


def clip_mfcc(audio: np.ndarray, start: int, frames: int) -> np.ndarray:
    """The 4 MFCC frames of each of `frames` video frames from `start`: from the clip's own audio, as the published
    pipeline cuts it, and the 15 ms the last MFCC window reaches past it (silence where the recording ends)."""
    per_frame = SAMPLE_RATE / SCORE_FPS
    first = int(round(start * per_frame))
    last = int(round((start + frames) * per_frame)) + MFCC_REACH
    samples = audio[first:last]
    if len(samples) < last - first:
        samples = np.concatenate([samples, np.zeros(last - first - len(samples), np.float32)])
    return mfcc_features(samples)[:MFCC_PER_FRAME * frames]


# ---------------------------------------------------------------------------------------------------------------------
# Faces


def face_clips(tracks: VideoTracks, config=None) -> list[FaceClip]:
    """The face clips of every track: runs of frames with a face at least `min_face` pixels wide, gaps of up to
    `max_gap` frames filled in, boxes smoothed as the published pipeline does (`config`: an ActiveSpeakerConfig,
    or None for the published values)."""
    min_face, max_gap = (MIN_FACE, MAX_GAP) if config is None else (config.min_face, config.max_gap)
    clips = []
    for track in tracks.tracks:
        boxes = crop_boxes(track)
        sizes = np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])
        usable = ~np.isnan(sizes) & (np.nan_to_num(sizes) >= min_face)
        frames = track.frames[usable]
        if len(frames) == 0:
            continue
        breaks = np.flatnonzero(np.diff(frames) > max_gap + 1) + 1
        for run_frames, run_boxes in zip(np.split(frames, breaks), np.split(boxes[usable], breaks)):
            clips.append(_clip(track.track_id, run_frames, run_boxes))
    return clips


def crop_boxes(track) -> np.ndarray:
    """(N, 4) face boxes to crop by: the extent of the face keypoints where they are seen (a detector-like box,
    which the published crop scale was set for), else the track's face box (a face detector's)."""
    boxes = track.face_boxes.copy() if track.face_boxes is not None else np.full((len(track), 4), np.nan, np.float32)
    if track.keypoints is not None:
        for row in range(len(track)):
            extent = face_extent(track.keypoints[row], track.keypoint_scores[row])
            if not np.isnan(extent).any():
                boxes[row] = extent
    return boxes


def _clip(track_id: int, frames: np.ndarray, boxes: np.ndarray) -> FaceClip:
    every = np.arange(frames[0], frames[-1] + 1)
    boxes = np.stack([np.interp(every, frames, boxes[:, k]) for k in range(4)], axis=1)
    kernel = min(BOX_SMOOTHING, len(every) if len(every) % 2 else len(every) - 1)  # never wider than the clip
    sizes = np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]) / 2
    centres = np.stack([(boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2], axis=1)
    smooth = [medfilt(values, kernel) for values in (sizes, centres[:, 0], centres[:, 1])]
    return FaceClip(track_id, int(every[0]), np.stack(smooth[1:], axis=1), smooth[0])


def crop_face(grey: np.ndarray, centre: np.ndarray, size: float) -> np.ndarray:
    """The network's 112x112 input from a greyscale frame: the published crop (computed in the coordinates of its
    padded frame, then read here without padding the whole frame), resized to 224, its centre."""
    pad = int(size * (1 + 2 * CROP_SCALE))
    cx, cy = centre[0] + pad, centre[1] + pad
    y1, y2 = int(cy - size) - pad, int(cy + size * (1 + 2 * CROP_SCALE)) - pad
    x1, x2 = int(cx - size * (1 + CROP_SCALE)) - pad, int(cx + size * (1 + CROP_SCALE)) - pad
    if y2 <= y1 or x2 <= x1:
        return np.full((FACE_SIZE, FACE_SIZE), PAD_GREY, np.uint8)
    crop = np.full((y2 - y1, x2 - x1), PAD_GREY, np.uint8)
    top, left = max(y1, 0), max(x1, 0)
    bottom, right = min(y2, grey.shape[0]), min(x2, grey.shape[1])
    if bottom > top and right > left:
        crop[top - y1:bottom - y1, left - x1:right - x1] = grey[top:bottom, left:right]
    resized = cv2.resize(crop, (CROP_SIZE, CROP_SIZE))
    margin = (CROP_SIZE - FACE_SIZE) // 2
    return resized[margin:margin + FACE_SIZE, margin:margin + FACE_SIZE]
