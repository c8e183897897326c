"""The voices fed to the multi-speaker models, read the way each model reads them.

Each consumer's rule is written here in our own words from its code, apart from the pack's:
- ComfyUI core's WanInfiniteTalkToVideo (comfy_extras/nodes_wan.py, two_speakers): each audio input's wav2vec2
  features at 25 per second; `multi_audio_type` fixed to "add": the second input's features are placed after all of
  the first's (each input's row is zero outside its own span); a call reads frames [offset, offset + length) of that
  timeline, offset = len(previous_frames) - motion_frame_count (0 without previous frames), and its output's first
  `trim_image` = motion_frame_count frames (when continuing) repeat the previous frames. mask_1 goes with the first
  input, mask_2 with the second.
- kijai's MultiTalkWav2VecEmbeds with `multi_audio_type` "para": every audio_k read at the same frame t.
The check: every frame where person k speaks in the source lands, at the same time, on person k's mask, driven by the
source's own audio at that moment; and the total length is the video's.
"""

import json
import sys

import numpy as np
import pytest
import torch
from conftest import PACK_ROOT, shared_path

from mit_annotator.core import media
from mit_annotator.core.records import PersonSpeaking, SpeakingActivity
from mit_annotator.speakers.binding import speaker_order, split_voices
from mit_annotator.speakers.voice_layouts import LayoutError, sequential_plan, speaker_turns

sys.path.insert(0, str(PACK_ROOT))
from nodes.binding_nodes import InfiniteTalkJoin, InfiniteTalkSegment  # noqa: E402

RATE, FPS = 16000, 25.0
PER_FRAME = RATE // 25


def speaking_from(segments_by_person: dict[int, list[tuple[float, float]]], seconds: float,
                  fps: float = FPS) -> SpeakingActivity:
    frames = int(round(seconds * fps))
    people = []
    for track_id, spans in segments_by_person.items():
        speak = [(int(round(a * fps)), int(round(b * fps))) for a, b in spans]
        scores = np.full(frames, -2.0, np.float32)
        for a, b in speak:
            scores[a:b] = 2.0
        people.append(PersonSpeaking(track_id, scores, f"v{track_id}", speak, []))
    return SpeakingActivity(fps, frames, people)


def marked_mix(seconds: float) -> np.ndarray:
    """A 'recording' whose every sample says where it is: sample i = i (so any shift is seen)."""
    return np.arange(int(round(seconds * RATE)), dtype=np.float64).astype(np.float32)


def infinitetalk_frames(voice_1: np.ndarray, voice_2: np.ndarray, length: int, previous: int, motion: int):
    """Per frame the call generates: (1 or 2: the input whose features drive it, or 0: neither; the audio under it),
    by the rule in this module's docstring."""
    len_1, len_2 = len(voice_1) // PER_FRAME, len(voice_2) // PER_FRAME
    offset = previous - motion if previous else 0
    out = []
    for t in range(offset, offset + length):
        if t < len_1:
            out.append((1, voice_1[t * PER_FRAME:(t + 1) * PER_FRAME]))
        elif t < len_1 + len_2:
            out.append((2, voice_2[(t - len_1) * PER_FRAME:(t - len_1 + 1) * PER_FRAME]))
        else:
            out.append((0, None))
    return out


def played_by_infinitetalk(mix: np.ndarray, speaking: SpeakingActivity, motion: int = 9,
                           order: str = "first_to_speak"):
    """The whole conversation through the InfiniteTalk Segment node and core's node, segment after segment: per
    frame of the final video, the track id whose mask is driven and the audio under it."""
    masks = torch.arange(len(speaking.people), dtype=torch.float32)[:, None, None].repeat(1, 4, 4)  # mask k = k
    slots = speaker_order(speaking, order=order)
    audio = {"waveform": torch.from_numpy(mix)[None, None], "sample_rate": RATE}
    node, join = InfiniteTalkSegment, InfiniteTalkJoin
    segments = node.execute(audio, speaking, masks, order, 0, motion)[-1]
    video, heard = None, []  # the joined frames (each frame's value: its index in `heard`), and what drives each
    for k in range(segments):
        a1, a2, m1, m2, length, keep, previous_start, _ = node.execute(audio, speaking, masks, order, k, motion)
        assert (length - 1) % 4 == 0
        if k:  # the workflow: previous_frames = the joined video's `motion` frames from previous_start
            assert previous_start + motion == len(video)
        frames = infinitetalk_frames(a1["waveform"][0, 0].numpy(), a2["waveform"][0, 0].numpy(), length,
                                     motion if k else 0, motion)
        trim = motion if k else 0  # WanInfiniteTalkToVideo's trim_image
        generated = torch.arange(len(heard), len(heard) + length, dtype=torch.float32)[:, None, None, None]
        for which, samples in frames:
            mask = {1: m1, 2: m2}.get(which)
            heard.append((slots[int(mask[0, 0, 0])] if mask is not None else None, samples))
        video, = join.execute(generated, trim, keep, video)
    return [heard[int(v)] for v in video[:, 0, 0, 0]]


def check_every_speaking_frame(video, mix, speaking):
    assert abs(len(video) - speaking.num_frames) <= 1
    for frame in range(min(len(video), speaking.num_frames)):
        person, samples = video[frame]
        expected = mix[frame * PER_FRAME:(frame + 1) * PER_FRAME]
        speakers = [p.track_id for p in speaking.people if any(a <= frame < b for a, b in p.speak)]
        if speakers:
            assert person == speakers[0], (frame, person, speakers)
            np.testing.assert_array_equal(samples, expected, err_msg=f"frame {frame}: the audio under it")


@pytest.mark.parametrize("turns", [
    {0: [(0.3, 2.0)], 1: [(2.4, 4.0)]},  # one change
    {1: [(0.2, 1.5), (4.0, 5.2)], 0: [(1.8, 3.6)]},  # 3 turns, speaker 1 first: 2 segments
    {0: [(0.2, 1.4), (3.7, 4.6)], 1: [(1.6, 3.4), (4.9, 6.0)]},  # 4 turns: 2 segments
    {0: [(0.0, 1.0), (1.2, 2.0)], 1: [(2.5, 3.0), (3.1, 4.4)], 2: []},  # pauses in turns; a 3rd who listens
])
def test_the_sequential_layout_puts_each_speaking_frame_on_its_speakers_mask(turns):
    seconds = 6.4
    speaking, mix = speaking_from(turns, seconds), marked_mix(seconds)
    video = played_by_infinitetalk(mix, speaking)
    check_every_speaking_frame(video, mix, speaking)


def test_a_segment_that_opens_with_speaker_two_hands_it_mask_one():
    """In track-id order person 0 is speaker 1, but person 1 speaks first: every segment opens with speaker 2's
    voice, so mask_1 must be speaker 2's mask (core pairs mask_1 with its first audio input)."""
    seconds = 6.4
    speaking = speaking_from({1: [(0.2, 1.5), (4.0, 5.2)], 0: [(1.8, 3.6)]}, seconds)
    mix = marked_mix(seconds)
    check_every_speaking_frame(played_by_infinitetalk(mix, speaking, order="track_id"), mix, speaking)


def test_the_parallel_layout_puts_each_speaking_frame_on_its_speakers_voice():
    turns = {1: [(0.2, 1.5), (4.0, 5.2)], 0: [(1.8, 3.6)]}
    check_parallel(marked_mix(6.0) + 1.0, speaking_from(turns, 6.0))


def test_interact_11_through_both_layouts():
    turns = json.loads(shared_path("video", "interact_11.turns.json").read_text())["speaking_seconds"]
    stretch = 25 / 24  # the turns file's times fit the audio stretched so (BENCHMARKS.md)
    seconds = media.probe(shared_path("video", "interact_11.mp4")).duration
    speaking = speaking_from({0: [(a * stretch, b * stretch) for a, b in turns["left"]],
                              1: [(a * stretch, b * stretch) for a, b in turns["right"]]}, seconds)
    mix = marked_mix(seconds) + 1.0
    check_every_speaking_frame(played_by_infinitetalk(mix, speaking), mix, speaking)
    check_parallel(mix, speaking)
    assert speaker_order(speaking) == [1, 0]  # the right person speaks first: speaker 1


def test_segments_follow_the_turns_and_continue_each_other():
    speaking = speaking_from({0: [(0.2, 1.4), (3.7, 4.6)], 1: [(1.6, 3.4), (4.9, 6.0)]}, 6.4)
    plan = sequential_plan(speaking, [0, 1], motion_frames=9)  # turns at frames 5-35, 40-85, 92-115, 122-150
    assert [(s.first, s.second) for s in plan] == [(0, 1), (0, 1)]
    assert plan[0].start == 0.0 and plan[0].context == 0.0 and plan[-1].end == pytest.approx(6.4)
    assert plan[1].start == plan[0].end == pytest.approx(88 / 25) and plan[1].context == pytest.approx(9 / 25)
    assert plan[0].switch == pytest.approx(37 / 25)  # the middle of the pause (frames 35-40) between the turns
    assert sum(s.kept() for s in plan) == speaking.num_frames
    assert speaker_turns(speaking_from({0: [(1.0, 2.0)], 1: []}, 3.0), [0, 1]) == [(0, 0.0, 3.0)]


def test_what_a_sequential_consumer_cannot_play_is_said_plainly():
    overlap = speaking_from({0: [(0.2, 2.0)], 1: [(1.5, 3.0)]}, 3.2)
    with pytest.raises(LayoutError, match="two people speak at once at 1.52 s.*MultiTalk"):
        sequential_plan(overlap, [0, 1])
    with pytest.raises(LayoutError, match=r"person 2 \(speaker 3\) speaks too, from 5.00 s.*MultiTalk"):
        sequential_plan(speaking_from({0: [(0.2, 1.0)], 1: [(1.5, 3.0)], 2: [(5.0, 5.5)]}, 6.0), [0, 1, 2])
    with pytest.raises(LayoutError, match="nobody speaks"):
        sequential_plan(speaking_from({0: [], 1: []}, 2.0), [0, 1])
    node, masks = InfiniteTalkSegment, torch.zeros(2, 4, 4)
    audio = {"waveform": torch.zeros(1, 1, int(3.2 * RATE)), "sample_rate": RATE}
    with pytest.raises(ValueError, match="two people speak at once"):
        node.execute(audio, overlap, masks, "first_to_speak", 0, 9)
    alone = speaking_from({0: [(0.2, 1.0)], 1: [(1.5, 3.0)]}, 3.2)
    with pytest.raises(ValueError, match="segment 1 does not exist: this conversation has 1 segment"):
        node.execute(audio, alone, masks, "first_to_speak", 1, 9)
    with pytest.raises(ValueError, match="masks must be Speaker Masks' `masks` \\(2 people"):
        node.execute(audio, alone, torch.zeros(3, 4, 4), "first_to_speak", 0, 9)


def check_parallel(mix, speaking):
    """MultiTalk 'para': every voice read at frame t; the speaking person's voice carries the source's audio there,
    everyone else's is silent."""
    slots = speaker_order(speaking)
    voices = split_voices(mix, RATE, speaking, slots, fade=0.0)
    assert all(len(v) == len(mix) for v in voices)
    for frame in range(speaking.num_frames):
        window = slice(frame * PER_FRAME, (frame + 1) * PER_FRAME)
        speakers = [p.track_id for p in speaking.people if any(a <= frame < b for a, b in p.speak)]
        assert [slots[k] for k, v in enumerate(voices) if v[window].any()] == speakers, frame
        for k in (k for k, t in enumerate(slots) if t in speakers):
            np.testing.assert_array_equal(voices[k][window], mix[window])


@pytest.mark.parametrize("seed, turns", [(3, 3), (5, 4)])
def test_synthetic_conversations_through_both_layouts(speech, seed, turns):
    """Conversations from the synthetic generator (real LibriSpeech voices, turns and pauses, no overlap), with the
    number of turns asked for: the sequential chain (core's rule) and the parallel voices (MultiTalk's) both put
    each speaking frame on its speaker's mask and voice."""
    from mit_annotator.synthetic import ConversationSpec, synthesize_conversation

    seconds = {3: 7.0, 4: 9.0}[turns]
    conversation = synthesize_conversation(ConversationSpec(num_people=2, seconds=seconds, width=96, height=64,
                                                            seed=seed), speech)
    speaking = conversation.speaking
    assert len(speaker_turns(speaking, speaker_order(speaking))) == turns
    mix = marked_mix(speaking.num_frames / FPS) + 1.0
    check_every_speaking_frame(played_by_infinitetalk(mix, speaking), mix, speaking)
    check_parallel(mix, speaking)


def test_the_join_keeps_each_segments_own_frames_and_says_what_does_not_fit():
    join = InfiniteTalkJoin
    first = torch.arange(13, dtype=torch.float32)[:, None, None, None].repeat(1, 2, 2, 3)
    video, = join.execute(first, 0, 11, None)  # 13 generated (4n + 1), 11 its own
    second = torch.arange(100, 117, dtype=torch.float32)[:, None, None, None].repeat(1, 2, 2, 3)
    video, = join.execute(second, 9, 6, video)  # the first 9 repeat the previous frames; 6 its own
    assert video[:, 0, 0, 0].tolist() == list(range(11)) + list(range(109, 115))
    with pytest.raises(ValueError, match="fewer than trim 9 \\+ keep 10"):
        join.execute(second, 9, 10, video)
    with pytest.raises(ValueError, match="generate every segment at the same size"):
        join.execute(torch.zeros(17, 4, 4, 3), 9, 6, video)
