"""Synthetic conversations with exact ground truth: 2-4 drawn people taking turns with real speech.

The oracle for the annotator's stages and the toy task for training CovOG. Everything is decided from the seed: the
voices, the timeline (turns, pauses, overlaps, an optional off-screen voice), the figures and their motion. Each
person's mouth opens with the loudness of their own voice; the ground truth is what was drawn and what was said.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from mit_annotator.core import keypoints as kp
from mit_annotator.core import media
from mit_annotator.core.documents import save_json
from mit_annotator.core.progress import report
from mit_annotator.core.records import (
    Diarization,
    PersonSpeaking,
    PersonTrack,
    SpeakerTurn,
    SpeakingActivity,
    VideoTracks,
)
from mit_annotator.core.segments import MERGE_SHORTER_THAN_S, speak_listen_segments
from mit_annotator.synthetic import figures as fig
from mit_annotator.synthetic.speech import (
    ACTIVITY_HOP_S,
    SAMPLE_RATE,
    SpeechSource,
    default_speech_source,
    level_to_target,
    runs,
    speech_activity,
)

SCORE_SCALE = 2.0  # ground-truth speaking score: SCORE_SCALE * (2 * share of the frame spoken - 1)
PEAK = 0.9
FADE_S = 0.02
MAX_PAUSE_S = 0.3  # longer pauses inside an utterance are shortened to this: turns stay lively
MOUTH_FLOOR_DB, MOUTH_RANGE_DB = -44.0, 20.0  # loudness mapped onto mouth opening 0..1
CALM = 0.3  # how animated everyone is when motion does not follow speech (0: still, 1: a speaker's most)


@dataclass
class ConversationSpec:
    num_people: int = 2
    seconds: float = 8.0
    fps: float = 25.0  # the MIT dataset's rate
    width: int = 640  # CovOG's inference size (paper)
    height: int = 384
    seed: int = 0
    overlap_probability: float = 0.0  # chance that a turn starts before the previous one ends
    offscreen_voice: bool = False  # an extra voice with no one on screen (a narrator, someone off camera)
    pause_seconds: tuple[float, float] = (0.3, 0.9)
    utterance_seconds: tuple[float, float] = (1.2, 2.6)
    framing: str = "body"  # "body": upper bodies, legs off the bottom; "face": head close-ups (figures.place_figures)
    # gestures and head motion grow while a person speaks; False: everyone moves alike, speaking or not, so the poses
    # (the mouths aside) do not tell who speaks
    animated_while_speaking: bool = True

    def __post_init__(self):
        checks = [
            ("framing", self.framing in fig.FRAMINGS, f"must be one of {fig.FRAMINGS}"),
            ("num_people", 2 <= self.num_people <= 4, "must be 2, 3 or 4"),
            ("seconds", 1.0 <= self.seconds <= 3600, "must be between 1 and 3600"),
            ("fps", 1.0 <= self.fps <= 120, "must be between 1 and 120"),
            ("width", 64 <= self.width <= 4096, "must be between 64 and 4096"),
            ("height", 64 <= self.height <= 4096, "must be between 64 and 4096"),
            ("overlap_probability", 0.0 <= self.overlap_probability <= 1.0, "must be between 0 and 1"),
            ("pause_seconds", 0 <= self.pause_seconds[0] <= self.pause_seconds[1], "must be (low, high), 0 <= low"),
            ("utterance_seconds", 0.3 <= self.utterance_seconds[0] <= self.utterance_seconds[1],
             "must be (low, high), 0.3 <= low"),
        ]
        for name, ok, rule in checks:
            if not ok:
                raise ValueError(f"ConversationSpec.{name} {rule}, got {getattr(self, name)!r}")
        self.pause_seconds = tuple(self.pause_seconds)
        self.utterance_seconds = tuple(self.utterance_seconds)

    @property
    def num_frames(self) -> int:
        return int(round(self.seconds * self.fps))


@dataclass
class Placement:
    """One utterance placed on the timeline."""

    voice: str
    start: int  # sample
    samples: np.ndarray
    active: np.ndarray  # per-sample voice activity


@dataclass(eq=False)
class Conversation:
    spec: ConversationSpec
    speech_source: str
    voices: list[str]  # per on-screen person
    offscreen_voices: list[str]
    placements: list[Placement]
    person_audio: np.ndarray  # (num_people, samples) each person's own voice
    offscreen_audio: np.ndarray  # (num_offscreen, samples)
    tracks: VideoTracks
    speaking: SpeakingActivity
    diarization: Diarization
    mouth_open: np.ndarray  # (num_people, frames) as drawn
    figures: list[fig.Figure] = field(repr=False)
    poses: list[list[fig.PoseFrame]] = field(repr=False)  # [person][frame]
    backdrop: np.ndarray = field(repr=False)

    @property
    def mix(self) -> np.ndarray:
        return self.person_audio.sum(axis=0) + self.offscreen_audio.sum(axis=0)

    def tracks_with_mouths_closed(self) -> VideoTracks:
        """The tracks as drawn, but every face posed with its mouth closed: a generator conditioned on these poses
        has to open the mouths from the audio."""
        people = []
        for track, figure, poses in zip(self.tracks.tracks, self.figures, self.poses):
            keypoints = track.keypoints.copy()
            keypoints[:, kp.FACE] = [fig.face_points(figure, p.head_centre, p.head_angle, 0.0) for p in poses]
            people.append(replace(track, keypoints=keypoints))
        return replace(self.tracks, tracks=people)

    def render_frame(self, frame: int) -> np.ndarray:
        canvas = self.backdrop.copy()
        for figure, poses in zip(self.figures, self.poses):
            fig.draw_figure(canvas, figure, poses[frame])
        return canvas

    def frames(self) -> Iterator[np.ndarray]:
        for k in range(self.spec.num_frames):
            yield self.render_frame(k)

    def save(self, folder: str | Path, progress: Callable[[int, int], None] | None = None) -> dict[str, Path]:
        """Write the video (mixed audio), each voice's own track and the ground truth; returns the paths."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        total = self.spec.num_frames

        def frames_with_progress():
            for k, frame in enumerate(self.frames()):
                yield frame
                report(progress, k + 1, total)

        paths = {"video": media.write_video(folder / "video.mp4", frames_with_progress(), self.spec.fps,
                                            self.mix, SAMPLE_RATE)}
        for k, track in enumerate(self.person_audio):
            paths[f"person_{k}_audio"] = media.write_wav(folder / f"person_{k}.wav", track, SAMPLE_RATE)
        for k, track in enumerate(self.offscreen_audio):
            paths[f"offscreen_{k}_audio"] = media.write_wav(folder / f"offscreen_{k}.wav", track, SAMPLE_RATE)
        paths["tracks"] = self.tracks.save(folder / "tracks.json")
        paths["speaking"] = self.speaking.save(folder / "speaking.json")
        paths["diarization"] = self.diarization.save_rttm(folder / "diarization.rttm")
        paths["conversation"] = folder / "conversation.json"
        summary = {"format": "mit_annotator.synthetic_conversation", "version": 1, "spec": asdict(self.spec),
                   "speech_source": self.speech_source, "voices": self.voices,
                   "offscreen_voices": self.offscreen_voices,
                   "people": [{"track_id": k, "voice": v, "shirt": list(f.shirt)}
                              for k, (v, f) in enumerate(zip(self.voices, self.figures))],
                   "files": {name: p.name for name, p in paths.items() if name != "conversation"}}
        save_json(summary, paths["conversation"])
        return paths

    def describe(self) -> str:
        """A human-readable account of who is on screen and who speaks when."""
        fps = self.spec.fps
        lines = [f"{self.spec.num_people} people, {self.spec.num_frames} frames at {fps:g} fps "
                 f"({self.spec.num_frames / fps:.1f} s), {self.spec.width}x{self.spec.height}, "
                 f"speech from {self.speech_source}, seed {self.spec.seed}"]
        for person, figure in zip(self.speaking.people, self.figures):
            spoken = sum(t.duration for t in self.diarization.turns if t.speaker == person.voice)
            turns = sum(1 for t in self.diarization.turns if t.speaker == person.voice)
            segments = ", ".join(f"{s / fps:.1f}-{e / fps:.1f}s" for s, e in person.speak) or "none"
            lines.append(f"  person {person.track_id} (shirt rgb{figure.shirt}): voice {person.voice}, "
                         f"{turns} turns, {spoken:.1f} s of speech; speaks {segments}")
        for voice in self.offscreen_voices:
            spoken = sum(t.duration for t in self.diarization.turns if t.speaker == voice)
            lines.append(f"  off-screen voice {voice}: {spoken:.1f} s of speech, on no one's face")
        overlap = _overlap_seconds(self.diarization)
        lines.append(f"  overlapping speech: {overlap:.1f} s")
        return "\n".join(lines)


def synthesize_conversation(spec: ConversationSpec, speech: SpeechSource | None = None) -> Conversation:
    """Build a conversation from `spec` (deterministic given spec.seed and the speech source)."""
    speech = speech or default_speech_source()
    rng = np.random.default_rng(spec.seed)
    available = speech.voices()
    needed = spec.num_people + int(spec.offscreen_voice)
    if len(available) < needed:
        raise ValueError(f"{speech.name} has {len(available)} voices; {needed} are needed")
    chosen = [str(v) for v in rng.choice(available, needed, replace=False)]
    voices, offscreen = chosen[:spec.num_people], chosen[spec.num_people:]

    total = int(round(spec.num_frames / spec.fps * SAMPLE_RATE))
    placements = _plan_turns(spec, voices, offscreen, speech, total, rng)
    tracks_audio = np.zeros((needed, total), dtype=np.float32)
    activity = np.zeros((needed, total), dtype=bool)
    for p in placements:
        k = chosen.index(p.voice)
        tracks_audio[k, p.start:p.start + len(p.samples)] += p.samples
        activity[k, p.start:p.start + len(p.samples)] |= p.active
    peak = float(np.abs(tracks_audio.sum(axis=0)).max())
    if peak > PEAK:
        tracks_audio *= PEAK / peak
    diarization = _diarization(chosen, activity)

    num_frames = spec.num_frames
    figures = fig.place_figures(spec.num_people, spec.width, spec.height, rng, spec.framing)
    mouth = np.stack([_mouth_opening(tracks_audio[k], activity[k], spec.fps, num_frames)
                      for k in range(spec.num_people)])
    speaking_share = np.stack([diarization.activity(v, spec.fps, num_frames) for v in voices])
    poses = []
    for k, figure in enumerate(figures):
        gesture = _smooth(speaking_share[k], 0.15) if spec.animated_while_speaking else np.full(num_frames, CALM)
        poses.append([fig.pose_at(figure, f / spec.fps, mouth[k, f], gesture[f]) for f in range(num_frames)])

    tracks = VideoTracks(spec.width, spec.height, spec.fps, num_frames,
                         [_track(k, figures[k], poses[k], spec.width, spec.height) for k in range(spec.num_people)],
                         shots=[(0, num_frames)], source="synthetic")
    people = []
    for k, voice in enumerate(voices):
        scores = SCORE_SCALE * (2 * speaking_share[k] - 1)
        speak, listen = speak_listen_segments(scores, spec.fps, merge_shorter_than=MERGE_SHORTER_THAN_S)
        people.append(PersonSpeaking(k, scores, voice, speak, listen))
    speaking = SpeakingActivity(spec.fps, num_frames, people, unassigned_voices=list(offscreen))
    return Conversation(spec, speech.name, voices, offscreen, placements, tracks_audio[:spec.num_people],
                        tracks_audio[spec.num_people:], tracks, speaking, diarization, mouth, figures, poses,
                        fig.background(spec.width, spec.height, rng))


def _plan_turns(spec: ConversationSpec, voices: list[str], offscreen: list[str], speech: SpeechSource, total: int,
                rng: np.random.Generator) -> list[Placement]:
    """Turns in sequence: the least-heard voice next (never the same twice in a row; an off-screen voice once all
    but one of the people on screen have spoken, and then for less), with pauses or overlaps between turns."""
    heard = {v: 0.0 for v in voices + offscreen}  # seconds, off-screen time counted double
    next_utterance = {v: int(rng.integers(len(speech.utterances(v)))) for v in heard}
    placements: list[Placement] = []
    t = int(rng.uniform(0.2, 0.5) * SAMPLE_RATE)
    last = None
    while t < total - int(0.8 * SAMPLE_RATE):
        candidates = [v for v in voices if v != last]
        if sum(heard[v] > 0 for v in voices) >= len(voices) - 1:
            candidates += [v for v in offscreen if v != last]
        least = min(heard[v] for v in candidates)
        voice = str(rng.choice([v for v in candidates if heard[v] <= least + 0.5]))
        utterances = speech.utterances(voice)
        samples = utterances[next_utterance[voice] % len(utterances)]
        next_utterance[voice] += 1
        samples, active = _cut_utterance(samples, rng.uniform(*spec.utterance_seconds), total - t)
        placements.append(Placement(voice, t, samples, active))
        heard[voice] += len(samples) / SAMPLE_RATE * (2.0 if voice in offscreen else 1.0)
        last = voice
        end = t + len(samples)
        if rng.random() < spec.overlap_probability:
            t = max(t + int(0.6 * len(samples)), end - int(rng.uniform(0.3, 0.8) * SAMPLE_RATE))
        else:
            t = end + int(rng.uniform(*spec.pause_seconds) * SAMPLE_RATE)
    return placements


def _cut_utterance(samples: np.ndarray, seconds: float, room: int) -> tuple[np.ndarray, np.ndarray]:
    """Trim the silence around an utterance, shorten its long pauses, cut it at a quiet point near `seconds`,
    level it and fade its end."""
    active = speech_activity(samples)
    keep = active.copy()
    for start, end in runs(~active):
        if start > 0 and end < len(active):  # a pause inside: keep at most MAX_PAUSE_S of it
            half = min(end - start, int(MAX_PAUSE_S * SAMPLE_RATE)) // 2
            keep[start:start + half] = keep[end - half:end] = True
    if keep.any():
        samples, active = samples[keep], active[keep]
    length = min(len(samples), room, _quiet_point(samples, int(seconds * SAMPLE_RATE)))
    samples = level_to_target(samples[:length], active[:length])
    fade = min(int(FADE_S * SAMPLE_RATE), length)
    samples[length - fade:] *= np.linspace(1.0, 0.0, fade, dtype=np.float32)
    return samples, speech_activity(samples) if length < len(active) else active[:length]


def _quiet_point(samples: np.ndarray, target: int, search_s: float = 0.4) -> int:
    """The quietest 10 ms just after `target`, so a cut falls between words where it can."""
    if target >= len(samples):
        return len(samples)
    hop = int(ACTIVITY_HOP_S * SAMPLE_RATE)
    lo = max(hop, target - int(0.1 * SAMPLE_RATE))
    hi = min(len(samples) - hop, target + int(search_s * SAMPLE_RATE))
    starts = np.arange(lo, max(hi, lo + 1), hop)
    energy = [float(np.mean(samples[s:s + hop] ** 2)) for s in starts]
    return int(starts[int(np.argmin(energy))]) + hop // 2


def _diarization(voices: list[str], activity: np.ndarray) -> Diarization:
    turns = []
    for voice, active in zip(voices, activity):
        for start, end in runs(active):
            turns.append(SpeakerTurn(voice, start / SAMPLE_RATE, end / SAMPLE_RATE))
    return Diarization(turns, uri="synthetic_conversation")


def _mouth_opening(audio: np.ndarray, active: np.ndarray, fps: float, num_frames: int) -> np.ndarray:
    """Per frame: the speaker's own loudness mapped to 0..1 while they speak, with a quick attack and slower release."""
    opening = np.zeros(num_frames)
    for k in range(num_frames):
        a, b = int(k / fps * SAMPLE_RATE), int((k + 1) / fps * SAMPLE_RATE)
        if b <= a or not active[a:b].any():
            continue
        level = 10 * np.log10(np.mean(audio[a:b].astype(np.float64) ** 2) + 1e-12)
        opening[k] = np.clip((level - MOUTH_FLOOR_DB) / MOUTH_RANGE_DB, 0.0, 1.0)
    out = np.zeros(num_frames)
    for k in range(num_frames):
        previous = out[k - 1] if k else 0.0
        rate = 0.8 if opening[k] > previous else 0.55
        out[k] = previous + rate * (opening[k] - previous)
    return out.astype(np.float32)


def _smooth(values: np.ndarray, rate: float) -> np.ndarray:
    out = np.zeros(len(values))
    for k, v in enumerate(values):
        out[k] = (out[k - 1] if k else 0.0) + rate * (v - (out[k - 1] if k else 0.0))
    return out


def _track(track_id: int, figure: fig.Figure, poses: list[fig.PoseFrame], width: int, height: int) -> PersonTrack:
    keypoints = np.stack([p.keypoints for p in poses])
    inside = ((keypoints[..., 0] >= 0) & (keypoints[..., 0] < width) &
              (keypoints[..., 1] >= 0) & (keypoints[..., 1] < height))
    limits = np.array([0, 0, width, height], dtype=np.float32)
    boxes = np.stack([_clip_box(fig.drawn_extent(figure, p), limits) for p in poses])
    faces = np.stack([_clip_box(fig.head_box(figure, p), limits) for p in poses])
    return PersonTrack(track_id, np.arange(len(poses)), boxes, keypoints, inside.astype(np.float32), faces, shot=0)


def _clip_box(box: np.ndarray, limits: np.ndarray) -> np.ndarray:
    return np.clip(box, limits[[0, 1, 0, 1]], limits[[2, 3, 2, 3]])


def _overlap_seconds(diarization: Diarization) -> float:
    events = sorted([(t.start, 1) for t in diarization.turns] + [(t.end, -1) for t in diarization.turns])
    overlap, depth, previous = 0.0, 0, 0.0
    for time, step in events:
        if depth >= 2:
            overlap += time - previous
        depth += step
        previous = time
    return overlap

