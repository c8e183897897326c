"""Offline speaker diarization: who speaks when, with models that ship inside their wheels.

1. Voice activity: silero-vad (its ONNX model), stretches of the recording run side by side (`voice_activity`).
2. Speaker embeddings: resemblyzer's d-vector encoder on 1.2 s windows every 0.3 s over the speech.
3. Clustering: spectral clustering on the refined cosine affinity (Wang et al., "Speaker diarization with LSTM",
   2018), the number of speakers from the largest eigen-gap within the bounds the caller knows.
4. Re-segmentation: each short frame of speech goes to the speaker whose centroid is nearest to the embeddings
   around it, its scores smoothed over half a second, so turns start and end where the voice changes rather than on
   window edges.

`PyannoteDiarizer` is the optional alternative: pyannote.audio's pretrained pipeline, when it is installed and an
access token is in the environment.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.cluster.vq import kmeans2
from scipy.ndimage import uniform_filter1d

from mit_annotator.audio.voice_activity import load_vad, speech_timestamps
from mit_annotator.core.records import SAMPLE_RATE, Diarization, SpeakerTurn


@dataclass
class DiarizationConfig:
    num_speakers: int | None = None  # exactly this many, when known
    min_speakers: int = 1
    max_speakers: int = 8
    step: float = 0.3  # seconds between embedding windows
    window: float = 1.2  # seconds of audio per embedding (resemblyzer was trained on 1.6; 1.2 is as accurate here
    # and a third cheaper, see BENCHMARKS.md)
    vad_threshold: float = 0.5
    min_speech: float = 0.25  # seconds; shorter bursts are not speech
    min_silence: float = 0.3  # seconds; shorter pauses do not split speech
    frame: float = 0.05  # seconds, the resolution of the output turns
    smooth: float = 0.5  # seconds of median smoothing over the frame labels
    prune: float = 0.15  # share of each row of the affinity kept (row-wise thresholding)
    same_voice_similarity: float = 0.9  # clusters whose centroids are this alike (cosine) are one speaker

    def __post_init__(self):
        if self.num_speakers is not None:
            if self.num_speakers < 1:
                raise ValueError(f"num_speakers must be at least 1, got {self.num_speakers}")
            self.min_speakers = self.max_speakers = self.num_speakers
        if not 1 <= self.min_speakers <= self.max_speakers:
            raise ValueError(f"need 1 <= min_speakers <= max_speakers, got {self.min_speakers} and "
                             f"{self.max_speakers}")


    @classmethod
    def for_people(cls, people: int, max_speakers: int | None = None) -> DiarizationConfig:
        """For a recording of `people` people on screen: at most `max_speakers` voices, by default the people and
        EXTRA_VOICES more (off-screen speakers)."""
        return cls(max_speakers=max(max_speakers or people + EXTRA_VOICES, 1))


EXTRA_VOICES = 2  # voices a diarization allows beyond the people on screen (off-screen speakers, narrators)
STAGES = 4  # the steps a diarizer reports: voice activity, embeddings, clustering, turns


class Diarizer:
    """Loads the two models once; call it on 16 kHz mono float32 samples."""

    def __init__(self, device: str = "cpu"):
        from resemblyzer import VoiceEncoder

        self.vad = load_vad()
        self.encoder = VoiceEncoder(device=device, verbose=False)

    def __call__(self, samples: np.ndarray, config: DiarizationConfig | None = None,
                 uri: str = "recording", progress: Callable[[int, int], None] | None = None) -> Diarization:
        """`progress(done, STAGES)` after each stage (voice activity, embeddings, clustering, turns); it may raise to
        stop between stages (ComfyUI's Cancel)."""
        progress = progress or (lambda done, total: None)
        config = config or DiarizationConfig()
        samples = checked_samples(samples)
        speech = self.speech_regions(samples, config)
        progress(1, STAGES)
        times, embeddings = self.embed(samples, speech, config) if speech else (np.zeros(0), np.zeros((0, 256)))
        progress(2, STAGES)
        labels = cluster(embeddings, config) if len(embeddings) else np.zeros(0, int)
        progress(3, STAGES)
        turns = _turns(speech, times, embeddings, labels, config) if len(embeddings) else []
        progress(STAGES, STAGES)
        return Diarization(turns, uri=uri)

    def speech_regions(self, samples: np.ndarray, config: DiarizationConfig) -> list[tuple[float, float]]:
        return speech_timestamps(self.vad, samples, config.vad_threshold, config.min_speech, config.min_silence)

    def embed(self, samples: np.ndarray, speech: list[tuple[float, float]],
              config: DiarizationConfig) -> tuple[np.ndarray, np.ndarray]:
        """Unit-length embeddings of `config.window` s windows every `config.step` s whose centre is in speech, and
        their centre times. Windows over silence are never computed. resemblyzer's own preprocessing (its volume
        normalisation and mel spectrogram), computed a block of windows at a time: the spectrogram of a 3-hour
        recording would not fit beside it."""
        import torch

        width = int(round(config.window * MEL_RATE))
        total = max(1 + len(samples) // MEL_HOP, width)  # the spectrogram's frames, padded to one window
        starts = np.arange(0, total - width + 1, max(1, int(round(config.step * MEL_RATE))))
        centres = (starts + width / 2) / MEL_RATE
        keep = windows_in_speech(centres, speech)
        gain = resemblyzer_gain(samples)
        embeddings = [np.zeros((0, 256), np.float32)]
        for group in window_groups(starts[keep], width):
            mel = mel_frames(samples, gain, group[0], group[-1] + width)
            windows = np.stack([mel[start - group[0]:start - group[0] + width] for start in group])
            with torch.inference_mode():
                embeddings.append(self.encoder(torch.from_numpy(windows).to(self.encoder.device)).cpu().numpy())
        return np.minimum(centres[keep], len(samples) / SAMPLE_RATE), np.concatenate(embeddings)


MEL_RATE, MEL_HOP, MEL_FFT = 100, 160, 400  # resemblyzer's mel frames: 25 ms windows every 10 ms at 16 kHz
EMBED_BATCH = 64  # windows per encoder call
MEL_BLOCK = 6000  # mel frames (60 s) held at once


def windows_in_speech(centres: np.ndarray, speech: list[tuple[float, float]]) -> np.ndarray:
    """Which windows (by their increasing centre times) to embed: those centred in speech, and for speech shorter
    than a window the window nearest to it."""
    keep = np.zeros(len(centres), bool)
    for a, b in speech:
        first, last = np.searchsorted(centres, a, "left"), np.searchsorted(centres, b, "right")
        keep[first:last] = True
        if first == last and len(centres):
            keep[np.argmin(np.abs(centres - (a + b) / 2))] = True
    return keep


def window_groups(starts: np.ndarray, width: int) -> list[np.ndarray]:
    """The windows' start frames in groups of at most EMBED_BATCH whose frames span at most MEL_BLOCK."""
    groups, first = [], 0
    for k in range(1, len(starts) + 1):
        if k == len(starts) or k - first == EMBED_BATCH or starts[k] + width - starts[first] > MEL_BLOCK:
            groups.append(starts[first:k])
            first = k
    return groups


def resemblyzer_gain(samples: np.ndarray, target_dbfs: float = -30.0) -> float:
    """resemblyzer's normalize_volume(samples, -30, increase_only=True) as a gain, its RMS summed a block at a time."""
    int16_max = 32767
    squares = sum(float(np.dot(block, block)) for block in
                  (samples[k:k + 2**20].astype(np.float64) for k in range(0, len(samples), 2**20)))
    rms = np.sqrt(squares / max(len(samples), 1)) * int16_max
    change = target_dbfs - 20 * np.log10(rms / int16_max) if rms > 0 else np.inf
    return float(10 ** (change / 20)) if 0 < change < np.inf else 1.0


def mel_frames(samples: np.ndarray, gain: float, first: int, end: int) -> np.ndarray:
    """(end - first, 40) frames of resemblyzer's wav_to_mel_spectrogram(samples * gain) (librosa's centred, zero
    padded power mel spectrogram), computed from the samples those frames cover; frames past the recording are 0."""
    import librosa

    frames = np.zeros((end - first, 40), np.float32)
    last = min(end, 1 + len(samples) // MEL_HOP)
    if last <= first:
        return frames
    a, b = first * MEL_HOP - MEL_FFT // 2, (last - 1) * MEL_HOP + MEL_FFT // 2
    segment = np.zeros(b - a, np.float32)
    segment[max(0, -a):max(0, -a) + len(samples[max(a, 0):b])] = samples[max(a, 0):b]
    mel = librosa.feature.melspectrogram(y=segment * np.float32(gain), sr=SAMPLE_RATE, n_fft=MEL_FFT,
                                         hop_length=MEL_HOP, n_mels=40, center=False)
    frames[:last - first] = mel.astype(np.float32).T
    return frames


def checked_samples(samples: np.ndarray) -> np.ndarray:
    samples = np.asarray(samples, dtype=np.float32).reshape(-1)
    if samples.size == 0:
        raise ValueError("no audio samples to diarize")
    return samples


def cluster(embeddings: np.ndarray, config: DiarizationConfig) -> np.ndarray:
    """Speaker labels 0..K-1 for unit-length embeddings: spectral clustering for each allowed K, keeping the K whose
    clusters are best separated in the embedding space (mean silhouette, cosine distance)."""
    count = len(embeddings)
    high = min(config.max_speakers, count - 1)
    if count < 3 or high < 2:
        return np.zeros(count, dtype=int)
    affinity = _refined_affinity(embeddings, config.prune)
    _, vectors = np.linalg.eigh(affinity)
    vectors = vectors[:, ::-1]
    distance = 1.0 - embeddings @ embeddings.T
    best, best_score = np.zeros(count, dtype=int), -np.inf
    for k in range(max(2, config.min_speakers), high + 1):
        labels = _kmeans(vectors[:, :k], k)
        score = _silhouette(distance, labels)
        if score > best_score:
            best, best_score = labels, score
    if config.min_speakers == 1 and _one_voice(embeddings, _kmeans(vectors[:, :2], 2), config):
        return np.zeros(count, dtype=int)
    return _relabel_by_appearance(_merge_alike(embeddings, best, config))


def _one_voice(embeddings: np.ndarray, halves: np.ndarray, config: DiarizationConfig) -> bool:
    """Whether the best split in two still sounds like one person: its halves' centroids nearly coincide."""
    centroids = [embeddings[halves == k].mean(axis=0) for k in (0, 1)]
    centroids = [c / np.linalg.norm(c) for c in centroids]
    return float(centroids[0] @ centroids[1]) >= config.same_voice_similarity


def _merge_alike(embeddings: np.ndarray, labels: np.ndarray, config: DiarizationConfig) -> np.ndarray:
    """Join the two most alike clusters while their centroids are as close as one voice is to itself (spectral
    clustering can cut one speaker's drifting voice in several pieces)."""
    labels = labels.copy()
    while len(set(labels.tolist())) > config.min_speakers:
        present = sorted(set(labels.tolist()))
        centroids = np.stack([embeddings[labels == c].mean(axis=0) for c in present])
        centroids /= np.linalg.norm(centroids, axis=1, keepdims=True)
        similarity = centroids @ centroids.T - 2 * np.eye(len(present))
        i, j = np.unravel_index(np.argmax(similarity), similarity.shape)
        if similarity[i, j] < config.same_voice_similarity and len(present) <= config.max_speakers:
            break
        labels[labels == present[j]] = present[i]
    return labels


def _kmeans(features: np.ndarray, k: int) -> np.ndarray:
    features = features / np.maximum(np.linalg.norm(features, axis=1, keepdims=True), 1e-9)
    best, best_inertia = None, np.inf
    for seed in range(8):  # several starts; keep the tightest
        centroids, labels = kmeans2(features, k, minit="++", seed=seed)
        inertia = float(((features - centroids[labels]) ** 2).sum())
        if inertia < best_inertia:
            best, best_inertia = labels, inertia
    return best


def _silhouette(distance: np.ndarray, labels: np.ndarray) -> float:
    present = sorted(set(labels.tolist()))
    if len(present) < 2:
        return -1.0
    mean_to = np.stack([distance[:, labels == c].mean(axis=1) for c in present], axis=1)  # (n, k)
    own = np.array([present.index(l) for l in labels.tolist()])
    sizes = np.array([(labels == c).sum() for c in present])
    a = mean_to[np.arange(len(labels)), own] * sizes[own] / np.maximum(sizes[own] - 1, 1)  # leave self out
    others = mean_to.copy()
    others[np.arange(len(labels)), own] = np.inf
    b = others.min(axis=1)
    score = (b - a) / np.maximum(np.maximum(a, b), 1e-9)
    score[sizes[own] == 1] = 0.0
    return float(score.mean())


def _refined_affinity(embeddings: np.ndarray, prune: float) -> np.ndarray:
    """Cosine affinity refined as in Wang et al. 2018: row-wise pruning, symmetrisation, diffusion, row-max scaling."""
    affinity = np.clip(embeddings @ embeddings.T, 0.0, 1.0)
    keep = max(1, int(round(prune * len(affinity))))
    threshold = -np.sort(-affinity, axis=1)[:, keep - 1:keep]
    affinity = np.where(affinity >= threshold, affinity, 0.01 * affinity)
    affinity = np.maximum(affinity, affinity.T)
    affinity = affinity @ affinity.T
    affinity = affinity / np.maximum(affinity.max(axis=1, keepdims=True), 1e-9)
    return (affinity + affinity.T) / 2


def _relabel_by_appearance(labels: np.ndarray) -> np.ndarray:
    order = {label: number for number, label in enumerate(dict.fromkeys(labels.tolist()))}
    return np.array([order[label] for label in labels.tolist()], dtype=int)


def frame_speakers(speech: list[tuple[float, float]], times: np.ndarray, embeddings: np.ndarray, labels: np.ndarray,
                   config: DiarizationConfig) -> tuple[np.ndarray, np.ndarray]:
    """Re-segmentation: every `config.frame` s of speech goes to the speaker whose centroid is nearest to the
    embeddings around it (windows covering it, weighted towards their centres), smoothed over `config.smooth` s.
    Returns the frames' start times and each frame's label (of `labels`' values; -1 outside speech). Windows
    labelled -1 count around their frames but belong to no centroid."""
    speakers = sorted(set(labels.tolist()) - {-1})
    centroids = np.stack([embeddings[labels == s].mean(axis=0) for s in speakers])
    centroids /= np.linalg.norm(centroids, axis=1, keepdims=True)
    end = max(b for _, b in speech)
    starts = np.arange(0.0, end, config.frame)
    centres = starts + config.frame / 2
    in_speech = np.zeros(len(centres), dtype=bool)
    for a, b in speech:
        in_speech[np.searchsorted(centres, a, "left"):np.searchsorted(centres, b, "left")] = True
    scores = windows_around(centres, times, embeddings.astype(np.float64) @ centroids.T.astype(np.float64),
                            config.window / 2)
    width = max(1, int(round(config.smooth / config.frame)))
    best = np.argmax(uniform_filter1d(scores, size=width, axis=0, mode="nearest"), axis=1)
    return starts, np.where(in_speech, np.array(speakers)[best], -1)


def windows_around(centres: np.ndarray, times: np.ndarray, values: np.ndarray, half: float) -> np.ndarray:
    """(frames, columns): per frame centre, the sum of the `values` rows of the windows (at increasing `times`)
    within `half` of it, weighted 1 - distance / half; a frame beyond every window takes its nearest window's row.
    Only the few windows near each frame are visited: the dense frames x windows matrix of a 3-hour recording would
    not fit in memory."""
    reach = half * (1 + 1e-9)  # a little wide: the weights themselves decide who counts, as in the dense form
    first = np.searchsorted(times, centres - reach, "left")
    last = np.searchsorted(times, centres + reach, "right")
    out, total = np.zeros((len(centres), values.shape[1])), np.zeros(len(centres))
    for offset in range(int((last - first).max(initial=0))):
        index = first + offset
        rows = np.minimum(index, len(times) - 1)
        weight = np.where(index < last, np.clip(1.0 - np.abs(centres - times[rows]) / half, 0.0, None), 0.0)
        out += weight[:, None] * values[rows]
        total += weight
    uncovered = np.flatnonzero(total == 0)
    if len(uncovered):
        after = np.minimum(np.searchsorted(times, centres[uncovered]), len(times) - 1)
        before = np.searchsorted(times, times[np.maximum(after - 1, 0)], "left")  # the first of equal times
        closer = np.where(np.abs(centres[uncovered] - times[before]) <= np.abs(centres[uncovered] - times[after]),
                          before, after)
        out[uncovered] = values[closer]
    return out


def _turns(speech: list[tuple[float, float]], times: np.ndarray, embeddings: np.ndarray, labels: np.ndarray,
           config: DiarizationConfig) -> list[SpeakerTurn]:
    """Re-segment speech frame by frame against the speakers' centroids (`frame_speakers`) and cut into turns."""
    starts, frame_labels = frame_speakers(speech, times, embeddings, labels, config)
    turns = []
    start = None
    for k in range(len(starts) + 1):
        same = k < len(starts) and start is not None and frame_labels[k] == frame_labels[start]
        if start is not None and not same:
            turns.append(SpeakerTurn(f"SPEAKER_{frame_labels[start]:02d}", round(start * config.frame, 3),
                                     round(k * config.frame, 3)))
            start = None
        if k < len(starts) and frame_labels[k] >= 0 and start is None:
            start = k
    return turns


PYANNOTE_MODEL = "pyannote/speaker-diarization-3.1"
TOKEN_VARIABLES = ("HF_TOKEN", "PYANNOTE_AUTH_TOKEN")


class PyannoteDiarizer:
    """pyannote.audio's pretrained pipeline, for those who have it: pyannote.audio installed (it needs torchaudio)
    and a Hugging Face access token for the gated model, read from $HF_TOKEN or $PYANNOTE_AUTH_TOKEN (never from or
    into a file or a workflow). Called like `Diarizer`."""

    def __init__(self, model: str = PYANNOTE_MODEL, device: str = "cpu"):
        try:
            from pyannote.audio import Pipeline
        except ImportError as error:
            raise RuntimeError(f"the pyannote backend needs pyannote.audio ({error}): pip install pyannote.audio, "
                               "or use the offline diarizer") from None
        token = next((os.environ[v] for v in TOKEN_VARIABLES if os.environ.get(v)), None)
        if not token:
            raise RuntimeError(f"the pyannote backend needs a Hugging Face access token for {model} (accept its "
                               f"conditions on huggingface.co) in ${TOKEN_VARIABLES[0]} or ${TOKEN_VARIABLES[1]}")
        keyword = "token" if "token" in inspect.signature(Pipeline.from_pretrained).parameters else "use_auth_token"
        try:
            self.pipeline = Pipeline.from_pretrained(model, **{keyword: token})
        except Exception as error:  # hub, network and licence errors all land here
            raise RuntimeError(f"could not load {model} from Hugging Face: {error}") from None
        if self.pipeline is None:
            raise RuntimeError(f"could not load {model}: is the access token allowed to use it?")
        if device != "cpu":
            import torch

            self.pipeline.to(torch.device(device))

    def __call__(self, samples: np.ndarray, config: DiarizationConfig | None = None,
                 uri: str = "recording", progress: Callable[[int, int], None] | None = None) -> Diarization:
        import torch

        progress = progress or (lambda done, total: None)
        progress(0, STAGES)
        config = config or DiarizationConfig()
        samples = checked_samples(samples)
        bounds = ({"num_speakers": config.num_speakers} if config.num_speakers else
                  {"min_speakers": config.min_speakers, "max_speakers": config.max_speakers})
        output = self.pipeline({"waveform": torch.from_numpy(samples)[None], "sample_rate": SAMPLE_RATE}, **bounds)
        annotation = getattr(output, "speaker_diarization", output)  # pyannote 4 wraps the annotation
        progress(STAGES, STAGES)
        return Diarization([SpeakerTurn(str(label), float(segment.start), float(segment.end))
                            for segment, _, label in annotation.itertracks(yield_label=True)], uri=uri)


def make_offline(options) -> Diarizer:
    """The "offline" backend (diarizers.DIARIZERS)."""
    return Diarizer(device="cpu" if options.device == "auto" else options.device)


def make_pyannote(options) -> PyannoteDiarizer:
    """The "pyannote" backend (diarizers.DIARIZERS)."""
    return PyannoteDiarizer(device="cpu" if options.device == "auto" else options.device)
