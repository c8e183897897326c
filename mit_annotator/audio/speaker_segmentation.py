"""pyannote's speaker segmentation network, written from the papers, and its released weights.

PyanNet (Bredin and Laurent 2021, "End-to-end speaker segmentation for overlap-aware resegmentation"): over a 5 s
chunk of 16 kHz audio, a SincNet front end (Ravanelli and Bengio 2018: 40 learnt band-pass sinc filters, each as a
cosine and a sine filter, then two plain convolutions), 4 bidirectional LSTM layers, 2 linear layers and one
sigmoid per local speaker (3): several speakers can be active in one frame, so overlapping speech is scored. Frames
are 270 samples apart, each seeing 991 samples.

The released checkpoint (`pyannote/segmentation`, MIT) is a PyTorch Lightning pickle; it is read without running
any of its classes (`lightning_checkpoint`), converted once to safetensors + JSON, and only that is loaded
afterwards. On the CPU the network runs on ONNX Runtime, on CUDA on torch.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from mit_annotator.core.records import SAMPLE_RATE

log = logging.getLogger("mit_annotator")

FORMAT = "mit_annotator.speaker_segmentation/1"  # the JSON beside a converted checkpoint


@dataclass(frozen=True)
class SegmentationSpec:
    """What the network is and what it was trained for (the checkpoint's hyper-parameters and specifications)."""

    sample_rate: int = SAMPLE_RATE
    sinc_stride: int = 10
    lstm_hidden: int = 128
    lstm_layers: int = 4
    linear_hidden: int = 128
    linear_layers: int = 2
    num_speakers: int = 3  # local speakers per chunk
    chunk_seconds: float = 5.0
    source_sha256: str | None = None

    @property
    def chunk_samples(self) -> int:
        return int(round(self.chunk_seconds * self.sample_rate))

    @property
    def _layers(self) -> list[tuple[int, int]]:
        """(kernel, stride) of each layer along time: the sinc filters, then max-pools (3) and convolutions (5)."""
        return [(251, self.sinc_stride), (3, 3), (5, 1), (3, 3), (5, 1), (3, 3)]

    @property
    def frame_step(self) -> int:
        """Samples between two output frames (270)."""
        return int(np.prod([stride for _, stride in self._layers]))

    @property
    def receptive_field(self) -> int:
        """Samples one output frame sees (991)."""
        size = 1
        for kernel, stride in reversed(self._layers):
            size = (size - 1) * stride + kernel
        return size

    def num_frames(self, num_samples: int) -> int:
        frames = num_samples
        for kernel, stride in self._layers:
            frames = (frames - kernel) // stride + 1
        return max(frames, 0)


class SincFilterbank(nn.Module):
    """The parametrised sinc filterbank (Pariente et al. 2020's extension of SincNet): per band [low, low + band],
    a cosine band-pass filter and its sine counterpart, Hamming-windowed; 2 x 40 filters of 251 taps."""

    def __init__(self, bands: int = 40, taps: int = 251, sample_rate: int = SAMPLE_RATE, min_low_hz: float = 50.0,
                 min_band_hz: float = 50.0):
        super().__init__()
        self.sample_rate, self.min_low_hz, self.min_band_hz = sample_rate, min_low_hz, min_band_hz
        half = taps // 2
        self.low_hz_ = nn.Parameter(torch.zeros(bands, 1))
        self.band_hz_ = nn.Parameter(torch.zeros(bands, 1))
        self.register_buffer("window_", torch.from_numpy(np.hamming(taps)[:half]).float())
        self.register_buffer("n_", 2 * np.pi * torch.arange(-half, 0.0).view(1, -1) / sample_rate)

    def filters(self) -> torch.Tensor:
        """(2 * bands, 1, taps): the cosine filters, then the sine ones."""
        low = self.min_low_hz + self.low_hz_.abs()
        high = torch.clamp(low + self.min_band_hz + self.band_hz_.abs(), self.min_low_hz, self.sample_rate / 2)
        band = high - low
        # The left half of each impulse response; the right half mirrors it (sign flipped for the sine filters).
        cos_left = (torch.sin(high @ self.n_) - torch.sin(low @ self.n_)) / (self.n_ / 2) * self.window_
        sin_left = (torch.cos(low @ self.n_) - torch.cos(high @ self.n_)) / (self.n_ / 2) * self.window_
        cosine = torch.cat([cos_left, 2 * band, cos_left.flip(1)], dim=1)
        sine = torch.cat([sin_left, torch.zeros_like(band), -sin_left.flip(1)], dim=1)
        return (torch.cat([cosine, sine]) / (2 * band.repeat(2, 1))).unsqueeze(1)


class _SincConv(nn.Module):
    def __init__(self, stride: int):
        super().__init__()
        self.filterbank = SincFilterbank()
        self.stride = stride

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        return F.conv1d(waveform, self.filterbank.filters(), stride=self.stride)


class SincNet(nn.Module):
    def __init__(self, stride: int = 10):
        super().__init__()
        self.wav_norm1d = nn.InstanceNorm1d(1, affine=True)
        self.conv1d = nn.ModuleList([_SincConv(stride), nn.Conv1d(80, 60, 5), nn.Conv1d(60, 60, 5)])
        self.norm1d = nn.ModuleList([nn.InstanceNorm1d(c, affine=True) for c in (80, 60, 60)])

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        x = self.wav_norm1d(waveform)
        for index, (conv, norm) in enumerate(zip(self.conv1d, self.norm1d)):
            x = conv(x)
            if index == 0:
                x = x.abs()  # the sinc filters' responses are signed; their magnitude is the feature
            x = F.leaky_relu(norm(F.max_pool1d(x, 3, 3)))
        return x


class SegmentationNetwork(nn.Module):
    """(batch, 1, samples) at 16 kHz -> (batch, frames, num_speakers) probabilities that each local speaker
    speaks. State-dict keys are those of the released checkpoint."""

    def __init__(self, spec: SegmentationSpec = SegmentationSpec()):
        super().__init__()
        self.spec = spec
        self.sincnet = SincNet(spec.sinc_stride)
        self.lstm = nn.LSTM(60, spec.lstm_hidden, num_layers=spec.lstm_layers, bidirectional=True,
                            batch_first=True)
        widths = [2 * spec.lstm_hidden] + [spec.linear_hidden] * spec.linear_layers
        self.linear = nn.ModuleList([nn.Linear(a, b) for a, b in zip(widths, widths[1:])])
        self.classifier = nn.Linear(widths[-1], spec.num_speakers)

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        x, _ = self.lstm(self.sincnet(waveform).transpose(1, 2))
        for linear in self.linear:
            x = F.leaky_relu(linear(x))
        return torch.sigmoid(self.classifier(x))


class SegmentationModelError(ValueError):
    """A segmentation checkpoint that cannot be used."""


def spec_from_checkpoint(content: dict, origin: str, sha256: str | None) -> SegmentationSpec:
    """The network's spec from a pyannote checkpoint's hyper-parameters and specifications; refuses what this
    network is not (another architecture, the powerset variant, another sample rate)."""
    from mit_annotator.core.lightning_checkpoint import plain

    meta = plain(content.get("pyannote.audio") or {})
    hyper = plain(content.get("hyper_parameters") or {})
    architecture = (meta.get("architecture") or {}).get("class")
    if architecture != "PyanNet":
        raise SegmentationModelError(f"{origin}: a model of class {architecture or 'unknown'}; only pyannote's PyanNet "
                                     "segmentation is supported")
    specifications = meta.get("specifications") or {}
    classes = specifications.get("classes") or []
    if specifications.get("powerset_max_classes") or not classes:
        raise SegmentationModelError(f"{origin}: a powerset or class-less segmentation model; only the multi-label "
                                     "one (a sigmoid per local speaker, pyannote/segmentation) is supported")
    lstm, linear = hyper.get("lstm") or {}, hyper.get("linear") or {}
    if hyper.get("sample_rate", SAMPLE_RATE) != SAMPLE_RATE or not lstm.get("monolithic", True):
        raise SegmentationModelError(f"{origin}: needs 16 kHz audio and a monolithic LSTM")
    return SegmentationSpec(sinc_stride=int((hyper.get("sincnet") or {}).get("stride", 10)),
                            lstm_hidden=int(lstm.get("hidden_size", 128)), lstm_layers=int(lstm.get("num_layers", 4)),
                            linear_hidden=int(linear.get("hidden_size", 128)),
                            linear_layers=int(linear.get("num_layers", 2)), num_speakers=len(classes),
                            chunk_seconds=float(specifications.get("duration", 5.0)), source_sha256=sha256)


def convert_checkpoint(source: str | os.PathLike, target: str | os.PathLike, sha256: str | None = None) -> Path:
    """Write `target` (.safetensors) and its JSON spec from a released pyannote checkpoint, read without running its
    pickled classes. Written under temporary names and then renamed, so a half-written pair is never found."""
    from safetensors.numpy import save_file

    from mit_annotator.core.lightning_checkpoint import read_checkpoint, state_dict

    content = read_checkpoint(source)
    spec = spec_from_checkpoint(content, str(source), sha256)
    weights = state_dict(content, str(source))
    _check_weights(weights, spec, str(source))
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".partial")
    save_file({k: np.ascontiguousarray(v) for k, v in weights.items()}, str(partial))
    spec_partial = target.with_suffix(".json.partial")
    spec_partial.write_text(json.dumps({"format": FORMAT, **asdict(spec)}, indent=1))
    os.replace(spec_partial, target.with_suffix(".json"))
    os.replace(partial, target)
    return target


def _check_weights(weights: dict[str, np.ndarray], spec: SegmentationSpec, origin: str) -> None:
    expected = {k: tuple(v.shape) for k, v in SegmentationNetwork(spec).state_dict().items()}
    missing = sorted(set(expected) - set(weights))
    if missing:
        raise SegmentationModelError(f"{origin}: weights missing ({', '.join(missing[:3])}...)")
    wrong = [k for k in expected if tuple(weights[k].shape) != expected[k]]
    if wrong:
        raise SegmentationModelError(f"{origin}: {wrong[0]} has shape {tuple(weights[wrong[0]].shape)}, expected "
                                     f"{expected[wrong[0]]}")


def load_converted(path: str | os.PathLike) -> SegmentationNetwork:
    """The network from a converted checkpoint (.safetensors and its .json beside it), in eval mode."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    try:
        meta = json.loads(path.with_suffix(".json").read_text())
    except (OSError, ValueError) as error:
        raise SegmentationModelError(f"{path.with_suffix('.json')}: the converted model's spec is unreadable "
                                     f"({error})") from None
    if meta.pop("format", None) != FORMAT:
        raise SegmentationModelError(f"{path.with_suffix('.json')}: not a converted segmentation model spec")
    try:
        spec = SegmentationSpec(**meta)
        weights = load_file(str(path))
    except (TypeError, SafetensorError, OSError) as error:
        raise SegmentationModelError(f"{path}: unreadable converted segmentation model ({error})") from None
    network = SegmentationNetwork(spec)
    _check_weights({k: v.numpy() for k, v in weights.items()}, spec, str(path))
    network.load_state_dict(weights, strict=True)
    return network.eval()


class SpeakerSegmentation:
    """The network ready to run: `scores(chunks)` with chunks (N, chunk_samples) float32 at 16 kHz -> (N, frames,
    local speakers). ONNX Runtime on the CPU (a graph exported from the loaded weights), torch on CUDA."""

    def __init__(self, network: SegmentationNetwork, device: str = "auto", name: str = "speaker segmentation",
                 batch_size: int = 8):
        from mit_annotator.core.onnx_session import DEVICES

        if device not in DEVICES:
            raise ValueError(f"device must be one of {', '.join(DEVICES)}, got {device!r}")
        self.network, self.spec, self.name, self.batch_size = network, network.spec, name, batch_size
        self.device = torch.device("cuda" if device in ("auto", "cuda", "tensorrt") and torch.cuda.is_available()
                                   else "cpu")
        if device in ("cuda", "tensorrt") and self.device.type != "cuda":
            raise RuntimeError(f"device {device!r} asked for, but torch sees no CUDA GPU")
        self.session = None
        if self.device.type == "cpu":
            from mit_annotator.core.onnx_session import open_session

            self.session = open_session(self.onnx(), "cpu", name=f"{name} (ONNX)", threads=torch.get_num_threads())
        else:
            self.network.to(self.device)
            log.info("[mit_annotator] %s runs on torch (%s)", name, self.device)

    def onnx(self) -> bytes:
        """The network as an ONNX graph (batch axis free, one chunk length)."""
        import io
        import warnings

        buffer = io.BytesIO()
        example = torch.zeros(1, 1, self.spec.chunk_samples)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the exporter's notices about its own future
            torch.onnx.export(self.network.cpu(), (example,), buffer, input_names=["waveform"],
                              output_names=["speakers"], opset_version=17, dynamo=False,
                              dynamic_axes={"waveform": {0: "batch"}, "speakers": {0: "batch"}})
        return buffer.getvalue()

    def scores(self, chunks: np.ndarray) -> np.ndarray:
        chunks = np.ascontiguousarray(chunks, dtype=np.float32)
        if chunks.ndim != 2 or chunks.shape[1] != self.spec.chunk_samples:
            raise ValueError(f"chunks must be (N, {self.spec.chunk_samples}) samples, got {chunks.shape}")
        out = np.zeros((len(chunks), self.spec.num_frames(self.spec.chunk_samples), self.spec.num_speakers),
                       np.float32)
        for start in range(0, len(chunks), self.batch_size):
            batch = chunks[start:start + self.batch_size, None]
            if self.session is not None:
                out[start:start + len(batch)] = self.session.run(None, {"waveform": batch})[0]
            else:
                with torch.inference_mode():
                    out[start:start + len(batch)] = self.network(torch.from_numpy(batch).to(self.device)).cpu()
        return out


def converted_path(source: Path, sha256: str, known_name: str | None) -> Path:
    """Where the conversion of `source` goes: beside it when that folder is writable, else in the models cache."""
    from mit_annotator.core.models import default_models_dir

    name = f"{known_name}.safetensors" if known_name else f"{source.stem}.{sha256[:12]}.safetensors"
    folder = source.parent if _writable(source.parent) else default_models_dir() / "converted"
    return folder / name


def _writable(folder: Path) -> bool:
    """Whether files may be added to `folder`: its mode allows it (a folder marked read-only stays so even for
    root, whom os.access lets write anywhere) and this process may."""
    import stat

    try:
        mode = folder.stat().st_mode
    except OSError:
        return False
    return bool(mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH)) and os.access(folder, os.W_OK)


def load_segmentation(model: str | os.PathLike = "pyannote_segmentation", models_dir: str | os.PathLike | None = None,
                      device: str = "auto", download: bool = False) -> SpeakerSegmentation:
    """The segmentation model from a converted file (.safetensors), or from the released checkpoint, converted on
    first use (its sha256 checked against the registry's) and read from the conversion afterwards."""
    from mit_annotator.core.models import KNOWN_MODELS, find_converted, resolve_model, sha256_of

    known = KNOWN_MODELS.get(str(model)) or next(  # the released file's own names stand for it too
        (k for k in KNOWN_MODELS.values() if k.converted and str(model) in (k.filename, k.converted)), None)
    path = find_converted(known, models_dir) if known else None
    if path is None:
        path = resolve_model(known.name if known else model, models_dir, download)
    if path.suffix != ".safetensors":
        digest = sha256_of(path)
        if known and known.sha256 and digest != known.sha256:
            raise SegmentationModelError(f"{path}: sha256 {digest[:12]}... is not the released "
                                         f"{known.filename}'s ({known.sha256[:12]}...): a damaged or different "
                                         f"file; get it again from {known.url}")
        target = converted_path(path, digest, known.name if known else None)
        if not _converted_from(target, digest):
            log.info("[mit_annotator] converting %s to %s (once; its pickled classes are not run)", path, target)
            convert_checkpoint(path, target, digest)
        path = target
    return SpeakerSegmentation(load_converted(path), device, name=Path(path).name)


def _converted_from(target: Path, sha256: str) -> bool:
    try:
        meta = json.loads(target.with_suffix(".json").read_text())
    except (OSError, ValueError):
        return False
    return target.is_file() and meta.get("source_sha256") == sha256
