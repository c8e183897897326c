"""The overlap-aware diarizer: one voice stays one speaker, two voices stay two, overlapping speech is found; its
parts pinned on hand-made inputs; the registry that chooses a diarizer by name."""

import logging

import numpy as np
import pytest
from conftest import shared_path
from test_voice_activity import music

from mit_annotator.audio.diarization import STAGES, DiarizationConfig, Diarizer
from mit_annotator.audio.diarizers import diarizer_choices, make_diarizer
from mit_annotator.audio.local_speakers import OverlapSettings, Segments, average_linkage, stitch, stretch_frames
from mit_annotator.audio.overlap_diarization import (
    FrameGrid,
    OverlapAwareDiarizer,
    reconstruct,
    speaker_count,
    to_turns,
)
from mit_annotator.core import media
from mit_annotator.core.records import Diarization
from mit_annotator.synthetic.recordings import in_turns, overlapped_share, trimmed
from mit_annotator.vision.metrics import diarization_error


@pytest.fixture(scope="module")
def diarizer(tmp_path_factory):
    import os

    old = os.environ.get("MIT_MODELS_DIR")
    os.environ["MIT_MODELS_DIR"] = str(tmp_path_factory.mktemp("models-cache"))  # where the conversion goes
    try:
        yield make_diarizer("overlap", shared_path("models"), "cpu")
    finally:
        os.environ.pop("MIT_MODELS_DIR") if old is None else os.environ.__setitem__("MIT_MODELS_DIR", old)


def frames_with_several(diarization: Diarization, seconds: float, step: float = 0.01) -> np.ndarray:
    count = np.zeros(int(np.ceil(seconds / step)) + 1, int)
    for turn in diarization.turns:
        count[int(turn.start / step):int(turn.end / step)] += 1
    return count > 1


def test_one_voice_alone_is_one_speaker(diarizer, speech):
    """The offline diarizer splits some of these (resemblyzer's d-vectors drift along one voice: BENCHMARKS.md)."""
    rng = np.random.default_rng(1)
    for voice in ("1688", "2033", "3080", "533"):
        for utterance in speech.utterances(voice)[:2]:
            level = rng.uniform(-36, -12)
            samples = (utterance * 10 ** (level / 20) / np.sqrt(np.mean(utterance ** 2))).astype(np.float32)
            found = diarizer(samples[:10 * 16000])
            assert len(found.speakers) == 1, (voice, len(utterance) / 16000, found.speakers)


def real_voice(path, start, end):
    return trimmed(media.read_audio(path, 16000)[int(start * 16000):int(end * 16000)])


def test_two_real_voices_in_turns_stay_two(diarizer):
    video = shared_path("video", "interact_11.mp4")
    right, left = real_voice(video, 0.0, 4.2), real_voice(video, 4.3, 8.6)
    recording = in_turns("interact", [("right", right), ("left", left), ("right", right[:2 * 16000])], [0.4, 0.5],
                         {"right": -20.0, "left": -26.0}, "test", "two voices")
    found = diarizer(recording.samples)
    assert len(found.speakers) == 2
    assert diarization_error(recording.truth, found).der < 0.2


def test_overlapping_speech_is_found_on_the_pyannote_sample(diarizer):
    audio = media.read_audio(shared_path("diarization", "pyannote_sample", "sample.wav"), 16000)
    reference = Diarization.load_rttm(shared_path("diarization", "pyannote_sample", "sample.rttm"))
    found = diarizer(audio)
    assert len(found.speakers) == 2
    assert diarization_error(reference, found).der < 0.12  # the offline diarizer: 0.18 (one voice per instant)
    truth, hypothesis = frames_with_several(reference, 30.0), frames_with_several(found, 30.0)
    recall = (truth & hypothesis).sum() / truth.sum()
    precision = (truth & hypothesis).sum() / hypothesis.sum()
    assert recall >= 0.75 and precision >= 0.6, (recall, precision)


def test_two_people_at_once_in_conversations(diarizer, speech):
    """Four LibriSpeech conversations whose middle turn overlaps both neighbours by about a second (19-44% of the
    speech overlapped): pooled, most overlapped frames are found and most found ones are real (measured 0.70 / 0.75;
    the offline diarizer finds none)."""
    both = truth = found = 0
    for a, b in (("1998", "2414"), ("3080", "1688"), ("2033", "1998"), ("533", "3005")):
        pieces = [(a, trimmed(speech.utterances(a)[0])[:4 * 16000]), (b, trimmed(speech.utterances(b)[2])[:4 * 16000]),
                  (a, trimmed(speech.utterances(a)[2])[:3 * 16000])]
        recording = in_turns("overlap", pieces, [-1.2, -1.0], {a: -22.0, b: -25.0}, "test", "overlap")
        assert overlapped_share(recording.truth) > 0.15
        hypothesis = diarizer(recording.samples)
        assert len(hypothesis.speakers) == 2
        real = frames_with_several(recording.truth, recording.seconds)
        said = frames_with_several(hypothesis, recording.seconds)
        both, truth, found = both + (real & said).sum(), truth + real.sum(), found + said.sum()
    assert both / truth >= 0.6 and both / found >= 0.6, (both / truth, both / found)


def test_a_long_recording_is_diarized_in_blocks_whose_speakers_are_linked(diarizer, speech, monkeypatch):
    """Past LONG_RECORDING_S the recording goes in blocks (bounded memory) cut in pauses, and the blocks' speakers
    are linked by their centroids: here 3 voices over 80 s in blocks of about 20 s (each block hears 2 or 3 of them)
    come out as the 3 voices, with the error of the whole-recording run, and no turn is cut at a block boundary."""
    from mit_annotator.audio import overlap_diarization

    rng = np.random.default_rng(5)
    voices = ("1688", "3080", "2414")
    pieces, k = [], 0
    while sum(len(p) for _, p in pieces) < 72 * 16000:
        voice = voices[int(rng.integers(3))] if k % 4 else voices[k // 4 % 3]
        own = speech.utterances(voice)
        pieces.append((voice, trimmed(own[k % len(own)])[:int(rng.uniform(3, 7) * 16000)]))
        k += 1
    recording = in_turns("long", pieces, [float(g) for g in rng.uniform(0.3, 0.8, len(pieces) - 1)],
                         {v: -22.0 for v in voices}, "test", "long")
    whole = diarizer(recording.samples)
    monkeypatch.setattr(overlap_diarization, "LONG_RECORDING_S", 30.0)
    monkeypatch.setattr(overlap_diarization, "BLOCK_S", 20.0)
    reported = []
    blocked = diarizer(recording.samples, progress=lambda done, total: reported.append((done, total)))
    blocks = recording.seconds / 20.0
    assert reported[-1] == (round(blocks) * 4, round(blocks) * 4) and len(reported) == round(blocks) * 4
    assert len(whole.speakers) == len(blocked.speakers) == 3
    whole_error = diarization_error(recording.truth, whole).der
    assert diarization_error(recording.truth, blocked).der <= whole_error + 0.05, whole_error
    for a, b in zip(blocked.turns, blocked.turns[1:]):
        assert not (a.speaker == b.speaker and b.start <= a.end), (a, b)


def test_a_long_digital_silence_between_turns_is_nobodys_speech(diarizer):
    """The segmentation network alone takes a long digital silence inside a chunk for its speaker still talking;
    silero-vad's speech gates it, so no turn runs on through the silence."""
    video = shared_path("video", "interact_11.mp4")
    right, left = real_voice(video, 0.0, 4.2), real_voice(video, 4.3, 8.6)
    silence = np.zeros(3 * 16000, np.float32)
    found = diarizer(np.concatenate([right, silence, left]))
    quiet_from, quiet_to = len(right) / 16000, (len(right) + len(silence)) / 16000
    inside = [(t.start, t.end) for t in found.turns if t.start < quiet_to - 0.3 and t.end > quiet_from + 0.3]
    assert inside == [] and len(found.speakers) == 2, found.turns


def test_silence_noise_music_and_very_short_audio_give_a_result(diarizer, speech):
    assert diarizer(np.zeros(16000 * 3, np.float32)).turns == []
    noise = (np.random.default_rng(0).normal(size=16000 * 6) * 0.05).astype(np.float32)
    assert len(diarizer(noise).speakers) <= 1
    band = music(6)["band"]
    assert diarizer((band / np.abs(band).max() * 0.3).astype(np.float32)).turns == []
    for samples in (np.full(500, 0.1, np.float32), speech.utterances("367")[0][:991]):  # under one frame's field
        assert isinstance(diarizer(samples), Diarization)
    short = trimmed(speech.utterances("367")[0])[:int(2.5 * 16000)]  # less than one 5 s chunk
    assert len(diarizer(short).speakers) == 1
    with pytest.raises(ValueError, match="no audio samples"):
        diarizer(np.zeros(0, np.float32))


def test_eight_voices_give_a_result_within_the_bounds(diarizer, speech):
    voices = speech.voices()[:8]
    pieces = [(v, trimmed(speech.utterances(v)[0])[:3 * 16000]) for v in voices]
    recording = in_turns("eight", pieces, [0.4] * 7, {v: -22.0 for v in voices}, "test", "many")
    found = diarizer(recording.samples, DiarizationConfig(max_speakers=8))
    assert 4 <= len(found.speakers) <= 8
    assert len(diarizer(recording.samples, DiarizationConfig(max_speakers=3)).speakers) <= 3


def test_a_known_speaker_count_is_honoured(diarizer):
    video = shared_path("video", "interact_11.mp4")
    recording = in_turns("two", [("r", real_voice(video, 0.0, 4.2)), ("l", real_voice(video, 4.3, 8.6))], [0.5],
                         {"r": -20.0, "l": -20.0}, "test", "two voices")
    assert len(diarizer(recording.samples, DiarizationConfig(num_speakers=1)).speakers) == 1


def test_each_stage_is_reported_and_cancel_stops_between_them(diarizer, speech):
    samples = trimmed(speech.utterances("2033")[0])[:6 * 16000]
    seen = []
    diarizer(samples, progress=lambda done, total: seen.append((done, total)))
    assert seen == [(k, STAGES) for k in range(1, STAGES + 1)]

    class Cancelled(Exception):
        pass

    def cancel(done, total):
        if done == 2:
            raise Cancelled

    with pytest.raises(Cancelled):
        diarizer(samples, progress=cancel)


# The parts, on hand-made network outputs: 2 chunks of 10 frames, 3 frames apart; 2 local speakers.

def two_chunks(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    return np.stack([first, second]).astype(bool)


def test_stitching_follows_a_voice_whatever_its_local_speaker_number():
    voice_a = np.r_[np.ones(8), np.zeros(2)]  # frames 0-7 of chunk 0 = global 0-7
    voice_b = np.r_[np.zeros(8), np.ones(2)]
    first = np.stack([voice_a, voice_b], axis=1)
    shifted = np.r_[voice_a[3:], np.zeros(3)], np.r_[voice_b[3:], np.ones(3)]
    second = np.stack([shifted[1], shifted[0]], axis=1)  # the network numbers them the other way round here
    stretch = stitch(two_chunks(first, second), np.array([0, 3]), 0.5, 3)
    assert stretch[0, 0] == stretch[1, 1] and stretch[0, 1] == stretch[1, 0] and stretch[0, 0] != stretch[0, 1]
    on = stretch_frames(two_chunks(first, second), np.array([0, 3]), stretch, 13)
    assert on[stretch[0, 0]].tolist() == [True] * 8 + [False] * 5


def test_a_chain_of_links_never_joins_two_local_speakers_of_one_chunk():
    """Chunk 0 hears two voices (A on frames 0-9, B on 10-19). Chunk 1 links to A, chunk 2 to B, and chunks 1 and
    2 agree with each other: taking that last link would make A and B one voice, which chunk 0 heard apart."""
    def on(start, end, frames=20):
        column = np.zeros(frames)
        column[start:end] = 1
        return column

    silent = np.zeros(20)
    chunks = np.stack([np.stack([on(0, 10), on(10, 20)], axis=1),
                       np.stack([on(0, 15), silent], axis=1),
                       np.stack([on(5, 20), silent], axis=1)]).astype(bool)
    stretch = stitch(chunks, np.array([0, 0, 0]), 0.3, 6)
    assert stretch[1, 0] == stretch[0, 0] and stretch[2, 0] == stretch[0, 1]  # the best links are taken
    assert stretch[0, 0] != stretch[0, 1]


def test_a_local_speaker_that_another_chunk_hears_as_two_voices_links_to_nothing():
    both = np.stack([np.ones(10), np.zeros(10)], axis=1)  # chunk 0 hears frames 3-9 as one voice
    apart = np.stack([np.r_[np.ones(4), np.zeros(6)], np.r_[np.zeros(4), np.ones(6)]], axis=1)  # chunk 1: two
    stretch = stitch(two_chunks(both, apart), np.array([0, 3]), 0.3, 3)
    assert stretch[0, 0] not in (stretch[1, 0], stretch[1, 1])
    linked = stitch(two_chunks(both, apart), np.array([0, 3]), 0.3, 5)  # each part shorter than 5 frames: one
    assert linked[0, 0] in (linked[1, 0], linked[1, 1])


def test_the_count_averages_the_chunks_middles_and_the_most_active_speakers_fill_it():
    active = np.zeros((2, 10, 2), bool)  # chunk 0 sees global frames 0-9, chunk 1 frames 3-12
    active[:, :, 0] = True
    active[0, 5:9, 1] = True  # both hear a second voice at global 5-8
    active[1, 2:6, 1] = True
    active[1, 9, 1] = True  # chunk 1's last frame (global 12) is its warm-up: counted only as nobody else sees it
    active[0, 1, 1] = True  # global 1: chunk 0 alone in its middle says two
    count = speaker_count(active, np.array([0, 3]), 13, warm_up=0.1)
    assert count.tolist() == [1, 2, 1, 1, 1, 2, 2, 2, 2, 1, 1, 1, 2]
    active[0, 1, 1] = active[1, 9, 1] = False
    count = speaker_count(active, np.array([0, 3]), 13, warm_up=0.1)
    scores = active * np.array([0.9, 0.7])
    stretch = np.array([[0, 1], [0, 1]])
    segments = Segments.from_pieces([[(0, 13)], [(5, 9)]], 13)
    binary = reconstruct(scores, np.array([0, 3]), stretch, segments, np.array([0, 1]), count, 13)
    assert binary[0].all() and binary[1].tolist() == [False] * 5 + [True] * 4 + [False] * 4


def test_average_linkage_never_joins_what_was_heard_apart_and_holds_the_bounds():
    similarity = np.array([[1.0, 0.9, 0.2], [0.9, 1.0, 0.3], [0.2, 0.3, 1.0]])
    apart = np.zeros((3, 3), bool)
    assert sorted(map(sorted, average_linkage(similarity, apart, 0.5, 1, 8))) == [[0, 1], [2]]
    apart[0, 1] = apart[1, 0] = True
    assert sorted(map(sorted, average_linkage(similarity, apart, 0.5, 1, 8))) == [[0], [1], [2]]
    assert sorted(map(sorted, average_linkage(similarity, apart, 0.5, 1, 2))) == [[0], [1, 2]]  # at most 2
    no_apart = np.zeros((3, 3), bool)
    assert len(average_linkage(similarity, no_apart, 0.95, 3, 8)) == 3
    assert len(average_linkage(similarity, no_apart, 0.0, 2, 8)) == 2  # never below min


def test_turns_fill_short_pauses_drop_short_bursts_and_name_speakers_by_first_appearance():
    grid = FrameGrid(0.02, 0.01)
    binary = np.zeros((2, 100), bool)
    binary[1, 10:40] = True
    binary[1, 42:60] = True  # a 0.04 s pause: filled
    binary[0, 50:53] = True  # 0.06 s: dropped
    binary[0, 70:90] = True
    turns = to_turns(binary, grid, OverlapSettings(min_turn=0.1, min_pause=0.1), duration=2.0)
    assert [(t.speaker, t.start, t.end) for t in turns] == [("SPEAKER_00", 0.2, 1.2), ("SPEAKER_01", 1.4, 1.8)]


def test_the_registry_names_every_diarizer_and_auto_falls_back_offline(tmp_path, monkeypatch, caplog):
    assert diarizer_choices() == ("auto", "overlap", "overlap-embeddings", "offline", "pyannote")
    monkeypatch.setenv("MIT_MODELS_DIR", str(tmp_path))
    caplog.set_level(logging.INFO, "mit_annotator")
    assert isinstance(make_diarizer("auto", tmp_path, "cpu"), Diarizer)
    assert "overlap-aware diarizer's model is not here" in caplog.text and "pytorch_model.bin" in caplog.text
    caplog.clear()
    for use, identity in (("diarize", "network"), ("assign", "embeddings")):
        chosen = make_diarizer("auto", shared_path("models"), "cpu", use=use)
        assert isinstance(chosen, OverlapAwareDiarizer) and chosen.settings.identity == identity
    assert "diarizing with the overlap-aware" in caplog.text
    assert make_diarizer("overlap-embeddings", shared_path("models"), "cpu").settings.identity == "embeddings"
    with pytest.raises(ValueError, match="diarizer must be one of auto, overlap, overlap-embeddings, offline"):
        make_diarizer("nemo")
