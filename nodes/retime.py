"""Frame-rate adaptation at the graph's edges: LR-ASD reads 25 fps (the MIT rate), while ComfyUI's Load Video gives
a video at its own rate (e.g. 24 fps). Tracks and frames are looked at at 25 fps by nearest frame, and the speaking
activity found there is brought back to the video's own frames."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np

from mit_annotator.core.records import PersonSpeaking, PersonTrack, SpeakingActivity, VideoTracks
from mit_annotator.core.segments import MERGE_SHORTER_THAN_S, speak_listen_segments

RATE = 25.0  # the rate LR-ASD and the MIT layout count frames at


def source_frames(num_frames: int, fps: float, rate: float = RATE) -> np.ndarray:
    """For each frame at `rate` covering the video's length, the index of the nearest of its `num_frames` frames."""
    count = max(int(round(num_frames / fps * rate)), 1)
    return np.clip(np.round(np.arange(count) * fps / rate).astype(np.int64), 0, num_frames - 1)


def tracks_at(tracks: VideoTracks, rate: float = RATE) -> VideoTracks:
    """The tracks re-counted at `rate`: frame j holds what the nearest source frame holds."""
    if abs(tracks.fps - rate) < 1e-6:
        return tracks
    picks = source_frames(tracks.num_frames, tracks.fps, rate)
    kept = []
    for track in tracks.tracks:
        rows = np.array([track.row_of(int(f)) if track.row_of(int(f)) is not None else -1 for f in picks])
        new_frames = np.flatnonzero(rows >= 0)
        rows = rows[new_frames]

        def pick(values):
            return None if values is None else values[rows]

        kept.append(PersonTrack(track.track_id, new_frames, track.boxes[rows], pick(track.keypoints),
                                pick(track.keypoint_scores), pick(track.face_boxes), track.shot,
                                pick(track.face_landmarks), track.identity))
    shots = [(int(np.searchsorted(picks, s)), int(np.searchsorted(picks, e))) for s, e in tracks.shots]
    return VideoTracks(tracks.width, tracks.height, rate, len(picks), kept, shots, tracks.source)


def frames_at(frames: Iterable[np.ndarray], num_frames: int, fps: float, rate: float = RATE) -> Iterator[np.ndarray]:
    """The frames re-counted at `rate` (nearest source frame), read once and in order."""
    if abs(fps - rate) < 1e-6:
        yield from frames
        return
    picks = source_frames(num_frames, fps, rate)
    position = 0
    for index, frame in enumerate(frames):
        while position < len(picks) and picks[position] == index:
            yield frame
            position += 1


def speaking_at(speaking: SpeakingActivity, fps: float, num_frames: int) -> SpeakingActivity:
    """The speaking activity re-counted at `fps` over `num_frames` frames: each frame takes the score of the frame
    nearest in time; speak/listen segments recomputed by the same rules (the merged variant, as the assignment)."""
    if abs(speaking.fps - fps) < 1e-6 and speaking.num_frames == num_frames:
        return speaking
    picks = np.clip(np.round(np.arange(num_frames) * speaking.fps / fps).astype(np.int64), 0, speaking.num_frames - 1)
    people = []
    for person in speaking.people:
        scores = person.scores[picks]
        speak, listen = speak_listen_segments(scores, fps, merge_shorter_than=MERGE_SHORTER_THAN_S)
        people.append(PersonSpeaking(person.track_id, scores, person.voice, speak, listen, person.evidence))
    return SpeakingActivity(fps, num_frames, people, list(speaking.unassigned_voices))
