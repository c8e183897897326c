"""The automatic speaker binding for people who run the multi-speaker models' own scripts: each script's input file,
per-person voices and reference image, written from the annotator's tracks and who-speaks assignment
(MultiTalk, InfiniteTalk, LongCat-Video-Avatar, AnyTalker). How each script reads its inputs, from its code, is in
docs/who-speaks.md.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from mit_annotator.core.records import SAMPLE_RATE, SpeakingActivity, VideoTracks
from mit_annotator.speakers.binding import BindingError, nearest_seen_frame, region_boxes, speaker_order, split_voices

TARGETS = ("multitalk", "infinitetalk", "anytalker", "longcat")
TWO_SPEAKERS = {"multitalk", "infinitetalk", "longcat"}
REGION = "head"  # the region each person's box covers: what the models drive with the voice


def people_for(target: str, speaking: SpeakingActivity, tracks: VideoTracks, reference: int) -> list[int]:
    """Track ids in the order the target pairs voices with people: AnyTalker left to right (its own rule), the
    others the first to speak first; refused (BindingError) when a two-speaker script would have to play a third
    person's voice."""
    if target not in TARGETS:
        raise BindingError(f"target must be one of {', '.join(TARGETS)}, got {target!r}")
    if target == "anytalker":
        return sorted((p.track_id for p in speaking.people),
                      key=lambda t: float(np.nanmean(box_at(tracks, t, reference)[0::2])))
    order = speaker_order(speaking, tracks)
    talking = [t for t in order if speaking.person(t).speak]
    if len(talking) > 2:
        raise BindingError(f"{len(talking)} people speak ({', '.join(f'person {t}' for t in talking)}): {target}'s "
                           "script takes two speakers; use anytalker, or cut the clip to two speakers")
    return order[:2]


def box_at(tracks: VideoTracks, track_id: int, frame: int) -> np.ndarray:
    """The person's REGION box at `frame` (or at the nearest frame where it is known), in pixels."""
    nearest = nearest_seen_frame(tracks, track_id, frame, REGION)
    track = tracks.track(track_id)
    row = int(np.argmin(np.abs(track.frames - nearest)))
    return region_boxes(track, REGION)[row]


def pixel_box(box: np.ndarray, width: int, height: int) -> tuple[int, int, int, int]:
    """(top, left, bottom, right) whole pixels inside the image."""
    x1, y1, x2, y2 = box
    return (int(np.clip(np.floor(y1), 0, height)), int(np.clip(np.floor(x1), 0, width)),
            int(np.clip(np.ceil(y2), 0, height)), int(np.clip(np.ceil(x2), 0, width)))


def write_model_inputs(target: str, frame: np.ndarray, audio: np.ndarray, tracks: VideoTracks,
                       speaking: SpeakingActivity, out: str | os.PathLike, reference: int = 0,
                       prompt: str = "Two people talking to each other.") -> Path:
    """Write into `out` the reference image (`frame`, RGB at the tracks' size), one WAV per person (`audio`: 16 kHz
    mono, starting with the clip) and the target script's input file; returns the input file's path."""
    import cv2

    from mit_annotator.core.media import write_wav

    if (frame.shape[1], frame.shape[0]) != (tracks.width, tracks.height):
        raise BindingError(f"the reference frame is {frame.shape[1]}x{frame.shape[0]}, the tracks' video "
                           f"{tracks.width}x{tracks.height}: give a frame of the video the tracks came from")
    people = people_for(target, speaking, tracks, reference)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    image = out / "reference.png"
    cv2.imwrite(str(image), np.ascontiguousarray(frame[:, :, ::-1]))
    voices = split_voices(np.asarray(audio, np.float32), SAMPLE_RATE, speaking, people)
    wavs = []
    for k, (track_id, voice) in enumerate(zip(people, voices), start=1):
        wavs.append(write_wav(out / f"person{k}_track{track_id}.wav", voice, SAMPLE_RATE))
    boxes = [pixel_box(box_at(tracks, t, reference), tracks.width, tracks.height) for t in people]
    names = [f"person{k}" for k in range(1, len(people) + 1)]
    if target == "anytalker":
        data = {"conversation": {"image_path": str(image), "caption": prompt, "enhance_caption": "",
                                 "audio_list": [str(w) for w in wavs]}}
    else:
        data = {"prompt": prompt, "cond_video" if target == "infinitetalk" else "cond_image": str(image),
                "cond_audio": dict(zip(names, map(str, wavs))), "audio_type": "para",
                "bbox": {name: list(box) for name, box in zip(names, boxes)}}
        if target == "longcat":
            silent = [t.track_id for t in tracks.tracks if t.track_id not in people]
            others = [v for t in silent for v in pixel_box(box_at(tracks, t, reference), tracks.width,
                                                           tracks.height)]
            if others:
                data["bbox"]["others"] = others
    path = out / f"{target}_input.json"
    path.write_text(json.dumps(data, indent=1))
    return path
