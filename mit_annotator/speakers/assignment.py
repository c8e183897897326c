"""Which voice belongs to which person on screen, and when each person speaks.

Each (voice, person) pair is scored by activity (an active-speaker score, else lip activity, while the voice speaks)
plus synchrony (the mouth following the voice's loudness); the best one-to-one match decides, a split voice may join
its person, and speaking scores are the voice's activity refined by the face's score. docs/who-speaks.md says why.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import linear_sum_assignment

from mit_annotator.core.records import Diarization, PersonSpeaking, SpeakingActivity
from mit_annotator.core.segments import MERGE_SHORTER_THAN_S, speak_listen_segments

SCORE_SCALE = 2.0  # voice part of a speaking score = SCORE_SCALE * (2 * share of the frame the voice speaks - 1)
ACTIVE_SPEAKER, LIPS, OWN_AUDIO = "active_speaker", "lips", "own_audio"  # the evidence a person's scores rest on
ACTIVE_SPEAKER_WEIGHT = 0.25  # x an active-speaker score clipped to +-ACTIVE_SPEAKER_LIMIT: at most 1.5 < SCORE_SCALE
ACTIVE_SPEAKER_LIMIT = 6.0
STILL = 1e-9  # a standard deviation below this: the signal does not vary (rounding aside), nothing to correlate


@dataclass
class AssignmentConfig:
    max_lag: float = 0.2  # seconds of audio/video offset tolerated
    # agreement (activity correlation + synchrony) a voice needs with a person, and a second voice of one person
    # (the diarizer split them); set on real footage and synthetic conversations (BENCHMARKS.md)
    min_correlation: float = 0.2
    min_extra_correlation: float = 0.35
    min_overlap: float = 1.0  # seconds in which both the voice and the person must be observable


@dataclass
class Evidence:
    """What the assignment reads, per person id: (num_frames,) arrays with NaN where unknown."""

    lips: dict[int, np.ndarray] = field(default_factory=dict)  # lip activity: how much the mouth moves
    active_speaker: dict[int, np.ndarray] = field(default_factory=dict)  # LR-ASD scores (> 0: speaking)
    mouth: dict[int, np.ndarray] = field(default_factory=dict)  # mouth opening or motion, for synchrony
    loudness: np.ndarray | None = None  # the audio's level per frame (dB), for synchrony

    @property
    def people(self) -> list[int]:
        return sorted(set(self.lips) | set(self.active_speaker) | set(self.mouth))


def correlate(voice_activity: np.ndarray, lip_activity: np.ndarray, max_lag_frames: int,
              min_frames: int) -> float:
    """Best Pearson correlation over lags of up to `max_lag_frames` (lips may lead or trail the audio), counting only
    frames where the lips are seen; NaN when fewer than `min_frames` such frames exist."""
    best = np.nan
    for lag in range(-max_lag_frames, max_lag_frames + 1):
        voice = _shifted(voice_activity, lag)
        seen = ~np.isnan(voice) & ~np.isnan(lip_activity)
        if seen.sum() < min_frames or np.std(voice[seen]) < STILL or np.std(lip_activity[seen]) < STILL:
            continue
        r = float(np.corrcoef(voice[seen], lip_activity[seen])[0, 1])
        best = r if np.isnan(best) else max(best, r)
    return best


def synchrony(voice_activity: np.ndarray, mouth: np.ndarray, loudness: np.ndarray, max_lag_frames: int,
              min_frames: int) -> float:
    """How closely a mouth follows the audio's loudness while the voice speaks: the mean product of the loudness
    (standardised over the voice's frames) and the mouth (standardised over every frame the person is seen), at the
    best lag of up to `max_lag_frames`. A mouth that moves with the voice scores like a correlation; one that is
    still while the voice speaks scores near 0 however its few moves fall. NaN when fewer than `min_frames` frames
    have both."""
    seen = ~np.isnan(mouth)
    if seen.sum() < min_frames or np.std(mouth[seen]) < STILL:
        return float("nan")
    standard = (mouth - np.mean(mouth[seen])) / np.std(mouth[seen])
    speaking = (voice_activity > 0.5) & ~np.isnan(loudness)
    best = float("nan")
    for lag in range(-max_lag_frames, max_lag_frames + 1):
        shifted = _shifted(standard, lag)
        both = speaking & ~np.isnan(shifted)
        if both.sum() < min_frames or np.std(loudness[both]) < STILL:
            continue
        level = (loudness[both] - loudness[both].mean()) / loudness[both].std()
        value = float(np.mean(level * shifted[both]))
        best = value if np.isnan(best) else max(best, value)
    return best


def _shifted(values: np.ndarray, lag: int) -> np.ndarray:
    """`values` delayed by `lag` frames (advanced when negative), NaN where nothing moved in."""
    out = np.roll(values.astype(np.float64), lag)
    if lag > 0:
        out[:lag] = np.nan
    elif lag < 0:
        out[lag:] = np.nan
    return out


def assign_speakers(diarization: Diarization, evidence: Evidence | dict[int, np.ndarray], fps: float,
                    num_frames: int, config: AssignmentConfig | None = None) -> tuple[SpeakingActivity, np.ndarray]:
    """Speaking activity per person, and the voice x person agreement matrix it was decided on (rows:
    `diarization.speakers`, columns: sorted person ids). `evidence` may be lip activity alone (a dict). A person's
    active-speaker scores count when they cover at least `min_overlap` seconds."""
    config = config or AssignmentConfig()
    if not isinstance(evidence, Evidence):
        evidence = Evidence(lips=evidence)
    _check(evidence, num_frames)
    lag, needed = int(round(config.max_lag * fps)), int(round(config.min_overlap * fps))
    voices, people = diarization.speakers, evidence.people
    kinds = {p: _kind(evidence, p, needed) for p in people}
    activity = {v: diarization.activity(v, fps, num_frames) for v in voices}
    corr = np.array([[_agreement(activity[v], p, evidence, lag, needed) for p in people] for v in voices])
    corr = corr.reshape(len(voices), len(people))
    voices_of = {people[c]: [voices[r] for r in rows] for c, rows in match_voices(corr, config).items()}
    speaking = [_person_speaking(p, voices_of.get(p, []), activity, fps, num_frames, kinds[p],
                                 evidence.active_speaker[p] if kinds[p] == ACTIVE_SPEAKER else None) for p in people]
    taken = {v for own in voices_of.values() for v in own}
    unassigned = [v for v in voices if v not in taken]
    return SpeakingActivity(fps, num_frames, speaking, unassigned), corr


def match_voices(agreement: np.ndarray, config: AssignmentConfig) -> dict[int, list[int]]:
    """Column (person) -> rows (voices) from a voices x people agreement matrix: the one-to-one match with the most
    agreement in total (Hungarian; NaN counts as -1), kept where it reaches `min_correlation`; then each voice left
    over joins the person it agrees with most, if that reaches `min_extra_correlation` and the person has a voice."""
    matched: dict[int, list[int]] = {}
    if agreement.size:
        rows, cols = linear_sum_assignment(-np.nan_to_num(agreement, nan=-1.0))
        for r, c in zip(rows, cols):
            if not np.isnan(agreement[r, c]) and agreement[r, c] >= config.min_correlation:
                matched[int(c)] = [int(r)]
    taken = {r for own in matched.values() for r in own}
    for r in range(agreement.shape[0]):  # a voice the diarizer split off one person's joins them
        if r in taken or np.isnan(agreement[r]).all():
            continue
        c = int(np.nanargmax(agreement[r]))
        if agreement[r, c] >= config.min_extra_correlation and c in matched:
            matched[c].append(r)
    return matched


def _agreement(voice: np.ndarray, person: int, evidence: Evidence, lag: int, needed: int) -> float:
    """Activity (the mean of the active-speaker and the lip-activity correlations, those measurable) plus synchrony
    (where measurable); NaN when nothing is."""
    activity = [correlate(voice, values[person], lag, needed)
                for values in (evidence.active_speaker, evidence.lips) if person in values]
    activity = [a for a in activity if not np.isnan(a)]
    parts = [float(np.mean(activity))] if activity else []
    if evidence.loudness is not None and person in evidence.mouth:
        parts.append(synchrony(voice, evidence.mouth[person], evidence.loudness, lag, needed))
    parts = [p for p in parts if not np.isnan(p)]
    return float(sum(parts)) if parts else float("nan")


def _check(evidence: Evidence, num_frames: int) -> None:
    named = {"lip activity": evidence.lips, "active-speaker scores": evidence.active_speaker,
             "mouth measure": evidence.mouth}
    for name, values in named.items():
        for person, row in values.items():
            if len(row) != num_frames:
                raise ValueError(f"{name} of person {person} has {len(row)} frames, expected {num_frames}")
    if evidence.loudness is not None and len(evidence.loudness) != num_frames:
        raise ValueError(f"loudness has {len(evidence.loudness)} frames, expected {num_frames}")


def _kind(evidence: Evidence, person: int, needed: int) -> str | None:
    """What a person's match rests on: active-speaker scores where they cover `needed` frames, else the lips."""
    scores = evidence.active_speaker.get(person)
    if scores is not None and np.count_nonzero(~np.isnan(scores)) >= needed:
        return ACTIVE_SPEAKER
    return LIPS if person in evidence.lips or person in evidence.mouth else None


def speaking_in_order(diarization: Diarization, voices: list[str], track_ids: list[int], fps: float,
                      num_frames: int) -> SpeakingActivity:
    """Speaking activity when it is known whose each voice is: voices[k] (e.g. the speech of person k's own audio
    file) is track_ids[k]'s. A voice without turns is a person who never speaks."""
    if len(voices) != len(track_ids):
        raise ValueError(f"{len(voices)} voices for {len(track_ids)} people: give one voice per person")
    activity = {v: diarization.activity(v, fps, num_frames) for v in voices}
    speaking = [_person_speaking(track_id, [voice], activity, fps, num_frames, OWN_AUDIO)
                for voice, track_id in zip(voices, track_ids)]
    return SpeakingActivity(fps, num_frames, speaking, [])


def _person_speaking(track_id: int, own: list[str], activity: dict[str, np.ndarray], fps: float, num_frames: int,
                     evidence: str | None, active_speaker: np.ndarray | None = None) -> PersonSpeaking:
    voice = "+".join(own) if own else None
    share = np.max([activity[v] for v in own], axis=0) if own else np.zeros(num_frames, np.float32)
    scores = SCORE_SCALE * (2 * share - 1)
    if active_speaker is not None:
        model = np.clip(np.nan_to_num(active_speaker, nan=0.0), -ACTIVE_SPEAKER_LIMIT, ACTIVE_SPEAKER_LIMIT)
        scores = scores + ACTIVE_SPEAKER_WEIGHT * model
    speak, listen = speak_listen_segments(scores, fps, merge_shorter_than=MERGE_SHORTER_THAN_S)
    return PersonSpeaking(track_id, scores, voice, speak, listen, evidence)
