"""Which voice belongs to which person on screen: each diarized speaker's activity against each person's lip
activity, the best one-to-one match (Hungarian), and per-person speaking scores and speak/listen segments.

A voice that matches no one well enough (an off-screen speaker, a narrator) stays unassigned; a person whom no
voice matches is a listener throughout. When the diarizer split one person's voice in two, the second part joins
them if it clearly follows their lips; the person's `voice` then names both, joined by "+".
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment

from .records import Diarization, PersonSpeaking, SpeakingActivity
from .segments import MERGE_SHORTER_THAN_S, speak_listen_segments

SCORE_SCALE = 2.0  # speaking score = SCORE_SCALE * (2 * share of the frame the assigned voice speaks - 1)


@dataclass
class AssignmentConfig:
    max_lag: float = 0.2  # seconds of audio/video offset tolerated
    min_correlation: float = 0.15  # a voice needs at least this much agreement with a person's lips
    min_extra_correlation: float = 0.3  # a second voice of one person (the diarizer split them) needs this much
    min_overlap: float = 1.0  # seconds in which both the voice and the person must be observable


def correlate(voice_activity: np.ndarray, lip_activity: np.ndarray, max_lag_frames: int,
              min_frames: int) -> float:
    """Best Pearson correlation over lags of up to `max_lag_frames` (lips may lead or trail the audio), counting only
    frames where the lips are seen; NaN when fewer than `min_frames` such frames exist."""
    best = np.nan
    for lag in range(-max_lag_frames, max_lag_frames + 1):
        voice = np.roll(voice_activity, lag).astype(np.float64)
        if lag > 0:
            voice[:lag] = np.nan
        elif lag < 0:
            voice[lag:] = np.nan
        seen = ~np.isnan(voice) & ~np.isnan(lip_activity)
        if seen.sum() < min_frames or np.std(voice[seen]) == 0 or np.std(lip_activity[seen]) == 0:
            continue
        r = float(np.corrcoef(voice[seen], lip_activity[seen])[0, 1])
        best = r if np.isnan(best) else max(best, r)
    return best


def assign_speakers(diarization: Diarization, lip_activity: dict[int, np.ndarray], fps: float, num_frames: int,
                    config: AssignmentConfig | None = None) -> tuple[SpeakingActivity, np.ndarray]:
    """Speaking activity per tracked person, and the voice x person correlation matrix it was decided on
    (rows: `diarization.speakers`, columns: sorted track ids)."""
    config = config or AssignmentConfig()
    voices = diarization.speakers
    people = sorted(lip_activity)
    for track_id in people:
        if len(lip_activity[track_id]) != num_frames:
            raise ValueError(f"lip activity of person {track_id} has {len(lip_activity[track_id])} frames, "
                             f"expected {num_frames}")
    activity = {v: diarization.activity(v, fps, num_frames) for v in voices}
    lag, needed = int(round(config.max_lag * fps)), int(round(config.min_overlap * fps))
    corr = np.array([[correlate(activity[v], lip_activity[p], lag, needed) for p in people] for v in voices])
    corr = corr.reshape(len(voices), len(people))
    assigned: dict[int, str] = {}
    if corr.size:
        rows, cols = linear_sum_assignment(-np.nan_to_num(corr, nan=-1.0))
        for r, c in zip(rows, cols):
            if not np.isnan(corr[r, c]) and corr[r, c] >= config.min_correlation:
                assigned[people[c]] = voices[r]
    voices_of = {p: [v] for p, v in assigned.items()}
    for r, voice in enumerate(voices):  # voices left over that clearly follow one person's lips are theirs too
        if voice in assigned.values() or np.isnan(corr[r]).all():
            continue
        c = int(np.nanargmax(corr[r]))
        if corr[r, c] >= config.min_extra_correlation and people[c] in voices_of:
            voices_of[people[c]].append(voice)
    speaking = [_person_speaking(p, voices_of.get(p, []), activity, fps, num_frames) for p in people]
    taken = {v for own in voices_of.values() for v in own}
    unassigned = [v for v in voices if v not in taken]
    return SpeakingActivity(fps, num_frames, speaking, unassigned), corr


def speaking_in_order(diarization: Diarization, voices: list[str], track_ids: list[int], fps: float,
                      num_frames: int) -> SpeakingActivity:
    """Speaking activity when it is known whose each voice is: voices[k] (e.g. the speech of person k's own audio
    file) is track_ids[k]'s. A voice without turns is a person who never speaks."""
    if len(voices) != len(track_ids):
        raise ValueError(f"{len(voices)} voices for {len(track_ids)} people: give one voice per person")
    activity = {v: diarization.activity(v, fps, num_frames) for v in voices}
    speaking = [_person_speaking(track_id, [voice], activity, fps, num_frames)
                for voice, track_id in zip(voices, track_ids)]
    return SpeakingActivity(fps, num_frames, speaking, [])


def _person_speaking(track_id: int, own: list[str], activity: dict[str, np.ndarray], fps: float,
                     num_frames: int) -> PersonSpeaking:
    voice = "+".join(own) if own else None
    share = np.max([activity[v] for v in own], axis=0) if own else np.zeros(num_frames, np.float32)
    scores = SCORE_SCALE * (2 * share - 1)
    speak, listen = speak_listen_segments(scores, fps, merge_shorter_than=MERGE_SHORTER_THAN_S)
    return PersonSpeaking(track_id, scores, voice, speak, listen)
