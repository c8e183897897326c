"""Batched silero-vad against silero-vad's own loop, on real recordings."""

import numpy as np
import pytest
import torch
from conftest import SHARED_DATA

from mit_annotator import media
from mit_annotator.voice_activity import CHUNK, STRETCH_CHUNKS, speech_probabilities, speech_timestamps

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


def test_short_and_silent_audio(vad):
    assert speech_timestamps(vad, np.zeros(100, np.float32), 0.5, 0.25, 0.3) == []
    assert len(speech_probabilities(vad, np.zeros(16000, np.float32))) == int(np.ceil(16000 / CHUNK))
