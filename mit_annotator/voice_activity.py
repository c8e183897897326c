"""Voice activity with silero-vad, its recurrent model run over many stretches of the recording at once.

silero-vad reads 32 ms chunks one after another, carrying its state: one model call per chunk, about 30 calls per
second of audio, each too small to keep a CPU busy. Here the recording is cut into stretches that run side by side
as one batch (the ONNX model takes a batch, one state per row). Each stretch but the first starts `WARMUP_CHUNKS`
earlier and drops those outputs, so its state has settled by the time its own chunks come; the first starts fresh at
the recording's start, as silero-vad does. The probabilities then
go through silero-vad's own `get_speech_timestamps_from_probs`, the same post-processing as `get_speech_timestamps`.

silero-vad's probabilities depend on the level: a far-field recording at -40 dBFS loses a quarter of its speech
(BENCHMARKS.md). The recording is first brought to one level: its loud chunks (the 90th percentile of chunk
levels) to -20 dBFS, by at most +40 dB, so quiet speech is heard and noise or music stay what they are.
"""

from __future__ import annotations

import numpy as np

SAMPLE_RATE = 16000
CHUNK = 512  # samples per model call at 16 kHz (silero-vad's fixed window)
STRETCH_CHUNKS = 256  # chunks per stretch (8.2 s): a 60 s recording runs as 8 rows
WARMUP_CHUNKS = 32  # about 1 s of the preceding audio lets a stretch's state settle
TARGET_LEVEL_DB = -20.0  # where the loud chunks of a recording are brought before voice activity
LOUD_PERCENTILE = 90
MAX_GAIN_DB = 40.0


def require_silero_vad() -> None:
    """Raise ImportError when silero-vad is not installed, without importing it (see load_vad)."""
    import importlib.util

    if importlib.util.find_spec("silero_vad") is None:
        raise ImportError("No module named 'silero_vad'", name="silero_vad")


def load_vad():
    """silero-vad's ONNX model. Importing silero_vad sets torch's CPU threads to 1 for the whole process (its
    model module calls torch.set_num_threads(1)); the count the process had is put back."""
    import torch

    threads = torch.get_num_threads()
    try:
        from silero_vad import load_silero_vad
    finally:
        torch.set_num_threads(threads)
    return load_silero_vad(onnx=True)


def level_normalised(samples: np.ndarray) -> np.ndarray:
    """`samples` scaled so that the LOUD_PERCENTILE-th percentile of its chunk levels is TARGET_LEVEL_DB (the gain
    at most MAX_GAIN_DB), clipped to -1..1."""
    usable = len(samples) // CHUNK * CHUNK
    if usable == 0:
        return np.asarray(samples, np.float32)
    levels = np.sqrt(np.mean(np.square(samples[:usable].reshape(-1, CHUNK), dtype=np.float64), axis=1))
    loud = float(np.percentile(levels, LOUD_PERCENTILE))
    gain_db = min(MAX_GAIN_DB, TARGET_LEVEL_DB - 20 * np.log10(max(loud, 1e-10)))
    return np.clip(samples * np.float32(10 ** (gain_db / 20)), -1.0, 1.0).astype(np.float32)


def speech_probabilities(vad, samples: np.ndarray) -> list[float]:
    """One speech probability per 512-sample chunk of 16 kHz `samples` (silero-vad's OnnxWrapper `vad`)."""
    import torch

    chunks = int(np.ceil(len(samples) / CHUNK))
    padded = np.zeros(chunks * CHUNK, np.float32)
    padded[:len(samples)] = samples
    by_chunk = padded.reshape(chunks, CHUNK)
    rows = int(np.ceil(chunks / STRETCH_CHUNKS))
    steps = WARMUP_CHUNKS + STRETCH_CHUNKS
    starts = [0] + [row * STRETCH_CHUNKS - WARMUP_CHUNKS for row in range(1, rows)]  # the first row starts fresh
    batch = np.zeros((rows, steps, CHUNK), np.float32)
    for row, first in enumerate(starts):
        take = by_chunk[first:first + steps]
        batch[row, :len(take)] = take
    vad.reset_states(rows)
    with torch.no_grad():
        outputs = np.stack([vad(torch.from_numpy(batch[:, step]), SAMPLE_RATE).numpy().reshape(rows)
                            for step in range(steps)], axis=1)
    kept = [outputs[0, :STRETCH_CHUNKS]] + [outputs[row, WARMUP_CHUNKS:] for row in range(1, rows)]
    return np.concatenate(kept)[:chunks].astype(float).tolist()


def speech_timestamps(vad, samples: np.ndarray, threshold: float, min_speech: float,
                      min_silence: float) -> list[tuple[float, float]]:
    """Speech regions (start, end) in seconds, as silero-vad's get_speech_timestamps finds them."""
    from silero_vad.utils_vad import get_speech_timestamps_from_probs

    stamps = get_speech_timestamps_from_probs(
        speech_probabilities(vad, level_normalised(samples)), sampling_rate=SAMPLE_RATE, threshold=threshold,
        min_speech_duration_ms=int(min_speech * 1000), min_silence_duration_ms=int(min_silence * 1000),
        audio_length_samples=len(samples))
    return [(s["start"] / SAMPLE_RATE, s["end"] / SAMPLE_RATE) for s in stamps]
