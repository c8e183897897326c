"""The MIT dataset's clip folder: its name and the names of the files in it, for the writer (`export`), the reader
(`reader`) and the batch that finds clip folders (`pipeline.batch`). What each file holds: `export`'s docstring."""

from __future__ import annotations

import re

VIDEO = "video.mp4"
SPEAKER_INFO = "speaker_info.json"
SPEAKER_INFO_MERGED = "speaker_info_merged.json"
SPEAKER_INFO_BBOX = "speaker_info_with_instance_bbox.json"
META = "meta.json"
POSE_DIR, POSE_FRAME_DIR, FRAMES_DIR = "pose", "pose_frame", "frames"
# ours, beside the MIT files (and all a clip folder held before the MIT layout)
TRACKS, SPEAKING, DIARIZATION, CLIP_RECORD = "tracks.json", "speaking.json", "diarization.rttm", "clip.json"

CLIP_NAME = re.compile(r"^(?P<source>[A-Za-z0-9-]+)_(?P<video>[A-Za-z0-9_-]+)_(?P<start>\d{6,})to(?P<end>\d{6,})$")


def clip_folder_name(source: str, video: str, start: int, end: int) -> str:
    """`{source}_{video}_{start:06d}to{end:06d}`: frames [start, end) of the source video at 25 fps."""
    return f"{source}_{video}_{start:06d}to{end:06d}"


def frame_file(index: int, count: int, suffix: str) -> str:
    """`output_0001.png` for frame 0: numbered from 1 as ffmpeg numbers extracted frames, at least 4 digits."""
    return f"output_{index + 1:0{max(4, len(str(count)))}d}{suffix}"
