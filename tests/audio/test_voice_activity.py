"""Batched silero-vad against silero-vad's own loop, on real recordings."""

import numpy as np
import pytest
import torch
from conftest import SHARED_DATA

from mit_annotator.audio.voice_activity import CHUNK, STRETCH_CHUNKS, speech_probabilities, speech_timestamps
from mit_annotator.core import media

RECORDINGS = SHARED_DATA / "diarization"


@pytest.fixture(scope="module")
def vad():
    from silero_vad import load_silero_vad

    return load_silero_vad(onnx=True)


def silero_loop(vad, samples):
    vad.reset_states()
    probabilities = []
    for start in range(0, len(samples), CHUNK):
        chunk = np.pad(samples[start:start + CHUNK], (0, max(0, start + CHUNK - len(samples))))
        probabilities.append(vad(torch.from_numpy(chunk), 16000).item())
    return np.array(probabilities)


@pytest.mark.parametrize("name", ["pyannote_sample/sample.wav", "pyaudioanalysis/diarizationExample.wav"])
def test_the_same_speech_as_silero_vads_own_loop(vad, name):
    from silero_vad import get_speech_timestamps

    path = RECORDINGS / name
    if not path.is_file():
        pytest.skip(f"{path} not found")
    samples = media.read_audio(path, 16000)
    assert len(samples) > 3 * STRETCH_CHUNKS * CHUNK  # several stretches side by side
    ours = np.array(speech_probabilities(vad, samples))
    theirs = silero_loop(vad, samples)
    assert ours.shape == theirs.shape
    np.testing.assert_allclose(ours[:STRETCH_CHUNKS], theirs[:STRETCH_CHUNKS], atol=1e-5)  # the first runs fresh
    assert np.abs(ours - theirs).mean() < 0.01 and np.abs(ours - theirs).max() < 0.3
    expected = [(s["start"] / 16000, s["end"] / 16000) for s in get_speech_timestamps(
        torch.from_numpy(samples), vad, threshold=0.5, min_speech_duration_ms=250, min_silence_duration_ms=300)]
    found = speech_timestamps(vad, samples, threshold=0.5, min_speech=0.25, min_silence=0.3)
    assert len(found) == len(expected)
    assert np.abs(np.array(found) - np.array(expected)).max() <= 0.05


def test_stretches_run_in_groups_give_the_probabilities_of_one_batch(vad, monkeypatch):
    """A long recording's stretches go through the model a group at a time (bounded memory); each row carries its own
    state, so the grouping changes nothing, and the gain is applied as level_normalised applies it."""
    from mit_annotator.audio import voice_activity

    path = RECORDINGS / "pyaudioanalysis/diarizationExample.wav"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    samples = media.read_audio(path, 16000) * np.float32(0.02)  # quiet: the gain matters
    gain = voice_activity.level_gain(samples)
    assert gain > 10
    whole = np.array(speech_probabilities(vad, voice_activity.level_normalised(samples)))
    monkeypatch.setattr(voice_activity, "ROWS_AT_ONCE", 2)
    grouped = np.array(speech_probabilities(vad, samples, gain))
    assert len(samples) > 5 * STRETCH_CHUNKS * CHUNK and grouped.shape == whole.shape
    np.testing.assert_allclose(grouped, whole, atol=1e-5)


def test_short_and_silent_audio(vad):
    assert speech_timestamps(vad, np.zeros(100, np.float32), 0.5, 0.25, 0.3) == []
    assert len(speech_probabilities(vad, np.zeros(16000, np.float32))) == int(np.ceil(16000 / CHUNK))


def far_field(samples, level_db, noise_db, seed=0):
    """`samples` as a distant microphone hears them: a decaying room echo, brought to `level_db` dBFS, with
    low-frequency room noise at `noise_db` dBFS."""
    rng = np.random.default_rng(seed)
    echo = np.exp(-np.arange(4000) / 800) * rng.normal(size=4000)  # 0.25 s tail, 50 ms decay constant
    echo[0] = 1.0
    heard = np.convolve(samples, echo)[:len(samples)]
    noise = np.cumsum(rng.normal(size=len(samples)))
    noise -= np.convolve(noise, np.ones(1600) / 1600, mode="same")  # brown noise without its drift
    return (at_level(heard, level_db) + at_level(noise, noise_db)).astype(np.float32)


def at_level(samples, level_db):
    return samples * 10 ** ((level_db - 10 * np.log10(np.mean(np.square(samples)))) / 20)


def seconds_of_speech(vad, samples):
    return sum(end - start for start, end in speech_timestamps(vad, samples, 0.5, 0.25, 0.3))


@pytest.mark.parametrize("name", ["pyannote_sample/sample.wav", "pyaudioanalysis/diarizationExample.wav",
                                  "pyaudioanalysis/diarizationExample2.wav"])
def test_quiet_and_far_field_speech_is_found_as_in_the_loud_recording(vad, name):
    samples = media.read_audio(RECORDINGS / name, 16000)
    loud = seconds_of_speech(vad, samples)
    quiet = seconds_of_speech(vad, at_level(samples, -40.0).astype(np.float32))
    far = seconds_of_speech(vad, far_field(samples, -40.0, -60.0))
    print(f"{name}: {loud:.1f} s of speech loud, {quiet:.1f} s at -40 dBFS, {far:.1f} s far-field with noise")
    assert loud > 15
    assert abs(quiet - loud) <= 0.05 * loud and abs(far - loud) <= 0.05 * loud


def test_noise_alone_is_no_speech_at_any_level(vad):
    rng = np.random.default_rng(1)
    white = rng.normal(size=10 * 16000)
    for level in (-70.0, -40.0, -20.0):
        assert seconds_of_speech(vad, at_level(white, level).astype(np.float32)) == 0.0
        assert seconds_of_speech(vad, far_field(white, level, level - 10.0)) == 0.0  # echoed, with room hum


def test_level_normalisation():
    from mit_annotator.audio.voice_activity import MAX_GAIN_DB, TARGET_LEVEL_DB, level_normalised

    rng = np.random.default_rng(2)
    quiet = at_level(rng.normal(size=16000), -45.0).astype(np.float32)
    chunk_levels = 20 * np.log10(np.sqrt(np.mean(np.square(level_normalised(quiet)[:31 * CHUNK].reshape(31, -1)),
                                                 axis=1)))
    assert abs(np.percentile(chunk_levels, 90) - TARGET_LEVEL_DB) < 0.5
    silent = np.full(16000, 1e-7, np.float32)
    np.testing.assert_allclose(level_normalised(silent), silent * 10 ** (MAX_GAIN_DB / 20), rtol=1e-5)
    assert np.abs(level_normalised(rng.normal(size=16000).astype(np.float32) * 5)).max() <= 1.0
    assert len(level_normalised(np.zeros(10, np.float32))) == 10


def music(seconds=10, seed=3):
    """A melody of plucked notes (six harmonics, decaying) over chords and a drum kit: pitched, rhythmic, with onsets
    much as speech has."""
    rng, rate = np.random.default_rng(seed), 16000

    def note(frequency, length, harmonics, decay):
        t = np.arange(int(length * rate)) / rate
        return sum(np.sin(2 * np.pi * frequency * k * t) / k for k in range(1, harmonics + 1)) * np.exp(-decay * t)

    melody = np.concatenate([note(220 * 2 ** (rng.integers(0, 24) / 12), rng.choice([0.25, 0.5, 1.0]), 6, 3.0)
                             for _ in range(8 * seconds)])[:seconds * rate]
    chords = np.concatenate([sum(note(110 * 2 ** (rng.integers(0, 12) / 12) * ratio, 0.5, 8, 1.0)
                                 for ratio in (1, 1.26, 1.5, 2)) for _ in range(2 * seconds)])
    drums, hit = np.zeros(seconds * rate), np.arange(1600)
    for beat in range(4 * seconds):
        drums[beat * 4000:beat * 4000 + 1600] += rng.normal(size=1600) * np.exp(-hit / 400)
        if beat % 4 == 0:
            drums[beat * 4000:beat * 4000 + 1600] += 3 * np.sin(2 * np.pi * 60 * hit / rate) * np.exp(-hit / 1500)
    return {"melody": melody, "chords": chords, "drums": drums, "band": melody + 0.5 * chords + 0.5 * drums}


def test_music_alone_is_no_speech_and_no_speaker_at_any_level(vad):
    from mit_annotator.audio.diarization import Diarizer

    for name, samples in music().items():
        for level in (-40.0, -20.0):
            assert seconds_of_speech(vad, at_level(samples, level).astype(np.float32)) == 0.0, (name, level)
    band = at_level(music()["band"], -40.0).astype(np.float32)
    assert Diarizer()(band).turns == []  # the whole path: level normalised, voice activity, no voice
