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

from mit_annotator.core.records import SAMPLE_RATE

CHUNK = 512  # samples per model call at 16 kHz (silero-vad's fixed window)
STRETCH_CHUNKS = 256  # chunks per stretch (8.2 s): a 60 s recording runs as 8 rows
WARMUP_CHUNKS = 32  # about 1 s of the preceding audio lets a stretch's state settle
ROWS_AT_ONCE = 64  # stretches per batch (9 min of audio, 38 MB)
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


def level_gain(samples: np.ndarray) -> float:
    """The gain that brings the LOUD_PERCENTILE-th percentile of `samples`' chunk levels to TARGET_LEVEL_DB (at
    most MAX_GAIN_DB); the levels are measured a block at a time (no squared copy of a long recording)."""
    chunks = len(samples) // CHUNK
    if chunks == 0:
        return 1.0
    block = 4096  # chunks
    levels = np.concatenate([
        np.sqrt(np.mean(np.square(samples[k * CHUNK:min(k + block, chunks) * CHUNK].reshape(-1, CHUNK),
                                  dtype=np.float64), axis=1))
        for k in range(0, chunks, block)])
    loud = float(np.percentile(levels, LOUD_PERCENTILE))
    return float(10 ** (min(MAX_GAIN_DB, TARGET_LEVEL_DB - 20 * np.log10(max(loud, 1e-10))) / 20))


def level_normalised(samples: np.ndarray) -> np.ndarray:
    """`samples` scaled by `level_gain`, clipped to -1..1."""
    return scaled(samples, level_gain(samples))


def scaled(samples: np.ndarray, gain: float) -> np.ndarray:
    return np.clip(samples * np.float32(gain), -1.0, 1.0).astype(np.float32)


def speech_probabilities(vad, samples: np.ndarray, gain: float = 1.0) -> list[float]:
    """One speech probability per 512-sample chunk of 16 kHz `samples` (silero-vad's OnnxWrapper `vad`), the
    samples scaled by `gain` and clipped to -1..1. The stretches run ROWS_AT_ONCE at a time, so the batch stays
    small however long the recording (each row carries its own state: the grouping changes nothing)."""
    chunks = int(np.ceil(len(samples) / CHUNK))
    rows = int(np.ceil(chunks / STRETCH_CHUNKS))
    kept = []
    for first_row in range(0, rows, ROWS_AT_ONCE):
        outputs = _stretch_probabilities(vad, samples, gain, range(first_row, min(first_row + ROWS_AT_ONCE, rows)))
        kept += [outputs[k, (0 if row == 0 else WARMUP_CHUNKS):][:STRETCH_CHUNKS]
                 for k, row in enumerate(range(first_row, min(first_row + ROWS_AT_ONCE, rows)))]
    return np.concatenate(kept)[:chunks].astype(float).tolist()


def _stretch_probabilities(vad, samples: np.ndarray, gain: float, rows: range) -> np.ndarray:
    """(rows, steps) probabilities of the stretches `rows`: each but the recording's first starts WARMUP_CHUNKS
    early and starts fresh, as the first does at the recording's start."""
    import torch

    steps = WARMUP_CHUNKS + STRETCH_CHUNKS
    batch = np.zeros((len(rows), steps * CHUNK), np.float32)
    for k, row in enumerate(rows):
        first = 0 if row == 0 else row * STRETCH_CHUNKS - WARMUP_CHUNKS
        take = samples[first * CHUNK:(first + steps) * CHUNK]
        batch[k, :len(take)] = scaled(take, gain)
    batch = batch.reshape(len(rows), steps, CHUNK)
    vad.reset_states(len(rows))
    with torch.no_grad():
        return np.stack([vad(torch.from_numpy(np.ascontiguousarray(batch[:, step])), SAMPLE_RATE).numpy()
                         .reshape(len(rows)) for step in range(steps)], axis=1)


def speech_timestamps(vad, samples: np.ndarray, threshold: float, min_speech: float,
                      min_silence: float) -> list[tuple[float, float]]:
    """Speech regions (start, end) in seconds, as silero-vad's get_speech_timestamps finds them."""
    from silero_vad.utils_vad import get_speech_timestamps_from_probs

    stamps = get_speech_timestamps_from_probs(
        speech_probabilities(vad, samples, level_gain(samples)), sampling_rate=SAMPLE_RATE, threshold=threshold,
        min_speech_duration_ms=int(min_speech * 1000), min_silence_duration_ms=int(min_silence * 1000),
        audio_length_samples=len(samples))
    return [(s["start"] / SAMPLE_RATE, s["end"] / SAMPLE_RATE) for s in stamps]
