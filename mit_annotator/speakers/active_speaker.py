"""Active-speaker scores per tracked face with LR-ASD (see `lr_asd`): per person and frame, whether that face is
the one speaking (> 0: speaking), the `speaking_score` of the MIT layout.

Preprocessing follows the authors' demo; the encoders run once per face clip instead of once per window
(`exact_windows=True` reproduces the demo). docs/who-speaks.md gives the details and how far the two differ.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from mit_annotator.core import media
from mit_annotator.core.models import resolve_model
from mit_annotator.core.progress import report
from mit_annotator.core.records import SAMPLE_RATE, VideoTracks
from mit_annotator.speakers.asd_inputs import (
    MAX_GAP,
    MFCC_PER_FRAME,
    MIN_FACE,
    SCORE_FPS,
    FaceClip,
    clip_mfcc,
    crop_face,
    face_clips,
)

log = logging.getLogger("mit_annotator")

DURATIONS = (1, 2, 3, 4, 5, 6)  # seconds; the demo's durationSet {1,1,1,2,2,2,3,3,4,5,6} is a Python set: these six
PRECISIONS = ("auto", "float32", "int8")
VISUAL_REACH = 9  # frames on each side that one frame's face embedding depends on (3 blocks x (5 // 2 + 3 // 2))


class ActiveSpeakerError(ValueError):
    """Input the active-speaker model cannot score, with the input named."""


@dataclass
class ActiveSpeakerConfig:
    durations: tuple[int, ...] = DURATIONS
    exact_windows: bool = False  # True: encoders per window, as the published demo (6x the work)
    max_gap: int = MAX_GAP
    min_face: float = MIN_FACE
    chunk_frames: int = 400  # face frames per encoder chunk (memory; each chunk recomputes 18 frames)
    batch_frames: int = 800  # face frames per network call (memory)
    onnx_runtime: bool = True  # on the CPU, the visual encoder on ONNX Runtime (same values, 2.7x torch's speed)
    # the visual encoder on the CPU: "int8" in integers on ONNX Runtime (also when onnx_runtime is False; the
    # encoder 3.3x as fast as float32, all the scoring 1.6-2.1x; scores within 0.01-0.03 of float32's on average on
    # real faces, the same speakers found: BENCHMARKS.md), for the released weights, whose calibration the model
    # registry holds; "auto": int8 where it can run (calibrated weights, CPU, not exact_windows), else float32
    precision: str = "auto"

    def __post_init__(self):
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        if not self.durations or any(int(d) != d or d < 1 for d in self.durations):
            raise ValueError(f"durations must be whole seconds >= 1, got {self.durations}")
        if self.chunk_frames <= 2 * VISUAL_REACH:
            raise ValueError(f"chunk_frames must exceed {2 * VISUAL_REACH}, got {self.chunk_frames}")


# ---------------------------------------------------------------------------------------------------------------------
# The model


class ActiveSpeakerModel:
    """LR-ASD with its released weights, on `device` ("auto": CUDA when torch has it)."""

    def __init__(self, model: str | os.PathLike = "lr_asd", device: str = "auto",
                 models_dir: str | os.PathLike | None = None, download: bool = False,
                 config: ActiveSpeakerConfig | None = None):
        import torch

        if device not in ("auto", "cpu", "cuda"):
            raise ValueError(f"device must be auto, cpu or cuda, got {device!r}")
        if device == "cuda" and not torch.cuda.is_available():
            raise RuntimeError("device 'cuda' asked for, but this torch has no CUDA device")
        self.device = torch.device("cuda" if device != "cpu" and torch.cuda.is_available() else "cpu")
        self.path = resolve_model(model, models_dir, download)
        self.network = load_lr_asd(self.path).to(self.device)
        self.config = config or ActiveSpeakerConfig()
        self.encode_faces = self._face_encoder()
        log.info("[mit_annotator] %s (LR-ASD) runs on %s", self.path.name, self.device)

    def scores(self, video: str | os.PathLike | None, tracks: VideoTracks, audio: np.ndarray | None = None,
               frames: Iterable[np.ndarray] | None = None,
               progress: Callable[[int, int], None] | None = None) -> dict[int, np.ndarray]:
        """The speakers.who_speaks.ActiveSpeakerDetector interface: active_speaker_scores with this model."""
        return active_speaker_scores(video, tracks, self, audio, frames, progress)

    def _face_encoder(self) -> Callable:
        """(B, T, 112, 112) float tensor -> (B, T, 128): torch's network, or its ONNX Runtime twin on the CPU (in
        integers where the config's precision says so); `self.precision` says which runs."""
        int8 = self._int8_maxima()
        self.precision = "float32"
        if self.device.type != "cpu" or not (self.config.onnx_runtime or int8):
            return self.network.encode_faces
        try:
            import onnx  # noqa: F401  (builds the graph)
            import onnxruntime  # noqa: F401
        except ImportError:
            if self.config.precision == "int8":
                raise RuntimeError("int8 active-speaker scoring needs onnx and onnxruntime: pip install onnx "
                                   "onnxruntime") from None
            log.info("[mit_annotator] onnx and onnxruntime are not both installed: LR-ASD's visual encoder runs on "
                     "torch in float32 (2.7x slower than on ONNX Runtime, 9x slower than in int8 there)")
            return self.network.encode_faces
        import torch

        from mit_annotator.core.onnx_session import open_session
        from mit_annotator.speakers.lr_asd import visual_encoder_int8_onnx, visual_encoder_onnx

        # as many threads as torch uses here (annotate's workers share the cores out that way)
        threads = torch.get_num_threads()
        session = None
        if int8:
            try:
                session = open_session(visual_encoder_int8_onnx(self.network, int8), "cpu",
                                       f"{self.path.name} (visual encoder, int8)", threads=threads)
                self.precision = "int8"
            except ValueError as error:  # an ONNX Runtime build without its integer channels-last operators
                if self.config.precision == "int8":
                    raise
                log.warning("[mit_annotator] LR-ASD runs in float32: %s", error)
        if session is None:
            session = open_session(visual_encoder_onnx(self.network), "cpu", f"{self.path.name} (visual encoder)",
                                   threads=threads)
        return lambda faces: torch.from_numpy(session.run(None, {"faces": faces.numpy()})[0])

    def _int8_maxima(self) -> list[float] | None:
        """The calibration when the visual encoder is to run in int8, else None (float32): int8 runs on the CPU,
        not with exact windows (the published demo's values), and for weights the registry has a calibration;
        "auto" also leaves `onnx_runtime=False` (all on torch) in float32."""
        wanted = self.config.precision
        if wanted == "float32" or (wanted == "auto" and not self.config.onnx_runtime):
            return None
        if self.device.type != "cpu" or self.config.exact_windows:
            if wanted == "int8":
                log.warning("[mit_annotator] int8 runs on the CPU and not with exact windows: LR-ASD runs in "
                            "float32 here")
            return None
        try:
            return int8_calibration(self.path)
        except ActiveSpeakerError:
            if wanted == "int8":
                raise
            log.info("[mit_annotator] %s: no int8 calibration for these weights, so LR-ASD runs in float32",
                     self.path.name)
            return None

    def score_clips(self, clips: list[tuple[np.ndarray, np.ndarray]]) -> list[np.ndarray]:
        """Per (faces (T, 112, 112) uint8, mfcc (4T, 13)) clip, (T,) float32 speaking scores."""
        import torch

        for faces, mfcc in clips:
            if len(faces) == 0 or len(mfcc) != MFCC_PER_FRAME * len(faces):
                raise ActiveSpeakerError(f"a face clip of {len(faces)} frames needs {MFCC_PER_FRAME * len(faces)} "
                                         f"MFCC frames, got {len(mfcc)}")
        with torch.inference_mode():
            if self.config.exact_windows:
                return self._score_windows_exactly(clips)
            return self._score_with_shared_encoders(clips)

    def _score_with_shared_encoders(self, clips) -> list[np.ndarray]:
        import torch

        faces = self._encode_faces([faces for faces, _ in clips])
        audio = [self._run(self.network.encode_audio, [mfcc])[0] for _, mfcc in clips]
        return self._average_windows(
            lambda group: (torch.stack([audio[k][lo:hi] for k, lo, hi in group]),
                           torch.stack([faces[k][lo:hi] for k, lo, hi in group])),
            [len(f) for f, _ in clips])

    def _score_windows_exactly(self, clips) -> list[np.ndarray]:
        return self._average_windows(
            lambda group: (self._run(self.network.encode_audio, [clips[k][1][MFCC_PER_FRAME * lo:MFCC_PER_FRAME * hi]
                                                                 for k, lo, hi in group]),
                           self._run(self.encode_faces, [clips[k][0][lo:hi] for k, lo, hi in group])),
            [len(f) for f, _ in clips])

    def _average_windows(self, embed: Callable, lengths: list[int]) -> list[np.ndarray]:
        """Score every window of every duration and average per frame. `embed` gives the audio and face embeddings
        (B, L, 128) of a group of equal-length windows (clip k, frames lo..hi)."""
        totals = [np.zeros(n, np.float64) for n in lengths]
        for duration in self.config.durations:
            span = int(duration * SCORE_FPS)
            windows = [(k, lo, min(lo + span, n)) for k, n in enumerate(lengths) for lo in range(0, n, span)]
            for group in _by_length(windows, self.config.batch_frames):
                scores = self.network.score(*embed(group)).float().cpu().numpy()
                for (k, lo, hi), row in zip(group, scores):
                    totals[k][lo:hi] += row
        return [(total / len(self.config.durations)).astype(np.float32) for total in totals]

    def _encode_faces(self, clips: list[np.ndarray]) -> list:
        """Face embeddings of whole clips, computed in overlapping chunks batched across clips: each chunk carries
        VISUAL_REACH frames of context on each side, so every kept frame equals a single pass over its clip."""
        import torch

        size, reach = self.config.chunk_frames - 2 * VISUAL_REACH, VISUAL_REACH
        chunks = [(k, max(lo - reach, 0), min(lo + size + reach, len(faces)), lo, min(lo + size, len(faces)))
                  for k, faces in enumerate(clips) for lo in range(0, len(faces), size)]
        out = [torch.empty(len(faces), 128, device=self.device) for faces in clips]
        for group in _by_length(chunks, self.config.batch_frames):
            encoded = self._run(self.encode_faces, [clips[k][a:b] for k, a, b, _, _ in group])
            for (k, a, _, lo, hi), rows in zip(group, encoded):
                out[k][lo:hi] = rows[lo - a:hi - a]
        return out

    def _run(self, encoder, arrays: list[np.ndarray]):
        import torch

        batch = torch.from_numpy(np.stack(arrays)).to(self.device, torch.float32)
        return encoder(batch)


def make(options) -> ActiveSpeakerModel:
    """The "lr_asd" active-speaker model (speakers.who_speaks.ACTIVE_SPEAKER_MODELS)."""
    return ActiveSpeakerModel(options.weights, device=options.device, models_dir=options.models_dir,
                              download=options.download, config=ActiveSpeakerConfig(precision=options.precision))


def int8_calibration(path: str | os.PathLike) -> list[float]:
    """The int8 calibration (the visual encoder's activation maxima) the model registry holds for the weights file
    at `path`, recognised by its sha256."""
    from mit_annotator.core.models import KNOWN_MODELS, sha256_of

    digest = sha256_of(path)
    for known in KNOWN_MODELS.values():
        if known.sha256 == digest and known.int8_maxima:
            return list(known.int8_maxima)
    raise ActiveSpeakerError(f"{path}: no int8 calibration for these weights (the released LR-ASD files have one: "
                             f"{', '.join(k.filename for k in KNOWN_MODELS.values() if k.int8_maxima)}); use "
                             f"precision float32")


def calibrate_int8(network, clips: list[np.ndarray], batch_frames: int = 400) -> list[float]:
    """The largest value of each of the visual encoder's ReLU outputs over the face clips `clips` ((T, 112, 112)
    uint8 crops each): the calibration int8 scoring quantizes the activations by."""
    from mit_annotator.core.onnx_session import open_session
    from mit_annotator.speakers.lr_asd import visual_encoder_onnx

    session = open_session(visual_encoder_onnx(network, report_maxima=True), "cpu", "LR-ASD calibration")
    maxima = []
    for faces in clips:
        for start in range(0, len(faces), batch_frames):
            batch = faces[start:start + batch_frames][None].astype(np.float32)
            maxima.append(session.run(["maxima"], {"faces": batch})[0])
    if not maxima:
        raise ValueError("calibration needs at least one face clip")
    return [float(m) for m in np.max(maxima, axis=0)]


def load_lr_asd(path: str | os.PathLike):
    """The LR-ASD network with the weights of `path` (the released `.model` state dict, read weights-only, or a
    safetensors file with the same keys), in inference mode. A file that is not those weights fails naming it."""
    import torch

    from mit_annotator.speakers.lr_asd import LRASD

    path = Path(path)
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch and safetensors raise many types for unreadable files
        raise ActiveSpeakerError(f"{path}: not a readable LR-ASD weights file ({str(error).splitlines()[0]})") from None
    if not isinstance(state, dict):
        raise ActiveSpeakerError(f"{path}: expected a state dict, found {type(state).__name__}")
    network = LRASD()
    expected = network.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = sorted(k for k in set(expected) & set(state) if tuple(state[k].shape) != tuple(expected[k].shape))
    if missing or unexpected or wrong:
        raise ActiveSpeakerError(f"{path}: not LR-ASD weights ({len(missing)} keys missing, e.g. {missing[:2]}; "
                                 f"{len(unexpected)} unexpected, e.g. {unexpected[:2]}; "
                                 f"{len(wrong)} of the wrong shape, e.g. {wrong[:2]})")
    network.load_state_dict(state, strict=True)
    return network.eval()


# ---------------------------------------------------------------------------------------------------------------------
# A whole video


def active_speaker_scores(video: str | os.PathLike | None, tracks: VideoTracks, model: ActiveSpeakerModel,
                          audio: np.ndarray | None = None, frames: Iterable[np.ndarray] | None = None,
                          progress: Callable[[int, int], None] | None = None) -> dict[int, np.ndarray]:
    """Per track id, (num_frames,) float32 speaking scores; NaN where the face is not seen, too small, or past the
    end of the audio. `audio`: 16 kHz mono, `frames`: RGB frames at the tracks' rate; each read from `video` when
    not given (`video` may be None when both are)."""
    if abs(tracks.fps - SCORE_FPS) > 1e-3:
        raise ActiveSpeakerError(f"tracks of {video or 'the frames'} are at {tracks.fps:g} fps; active-speaker "
                                 f"scores need {SCORE_FPS:g} fps tracks (run the vision pass with --fps 25)")
    if audio is None or frames is None:
        if video is None:
            raise ValueError("active-speaker scores need the video, or its audio and frames")
        audio = media.read_audio(video, SAMPLE_RATE) if audio is None else audio
        frames = media.iter_frames(video, fps=tracks.fps, end=tracks.num_frames) if frames is None else frames
    clips = face_clips(tracks, model.config)
    scores = {t.track_id: np.full(tracks.num_frames, np.nan, np.float32) for t in tracks.tracks}
    cut = _cut_to_audio(clips, audio, str(video or "the audio"))
    pending: list[FaceClip] = []
    for index, frame in enumerate(crops_by_frame(frames, cut, tracks.num_frames)):
        pending.extend(frame)
        if sum(len(c.sizes) for c in pending) >= model.config.batch_frames or index == tracks.num_frames - 1:
            _score_into(scores, pending, audio, model)
            pending = []
        report(progress, index + 1, tracks.num_frames)
    _score_into(scores, pending, audio, model)
    return scores


def _cut_to_audio(clips: list[FaceClip], audio: np.ndarray, video: str) -> list[FaceClip]:
    """Clips shortened to the frames whose audio the recording holds (their scores stay NaN past its end)."""
    covered = int(len(audio) // (SAMPLE_RATE / SCORE_FPS))
    kept = []
    for clip in clips:
        if clip.end > covered:
            log.warning("[mit_annotator] %s: the audio ends at frame %d; track %d is not scored after it",
                        video, covered, clip.track_id)
            if clip.start >= covered:
                continue
            clip = FaceClip(clip.track_id, clip.start, clip.centres[:covered - clip.start],
                            clip.sizes[:covered - clip.start])
        kept.append(clip)
    return kept


def crops_by_frame(frames: Iterable[np.ndarray], clips: list[FaceClip], num_frames: int):
    """Crop every clip's face from each frame; yield, per frame, the clips that end with it (complete)."""
    by_start: dict[int, list[FaceClip]] = {}
    for clip in clips:
        by_start.setdefault(clip.start, []).append(clip)
    open_clips: list[FaceClip] = []
    for index, frame in enumerate(frames):
        if index >= num_frames:
            break
        open_clips.extend(by_start.get(index, []))
        if open_clips:
            grey = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
            for clip in open_clips:
                row = index - clip.start
                clip.faces.append(crop_face(grey, clip.centres[row], float(clip.sizes[row])))
        done = [c for c in open_clips if c.end == index + 1]
        open_clips = [c for c in open_clips if c.end > index + 1]
        yield done
    if open_clips:
        raise ActiveSpeakerError(f"the video has fewer frames than its tracks ({index + 1} < {num_frames})")


def _score_into(scores: dict[int, np.ndarray], clips: list[FaceClip], audio: np.ndarray,
                model: ActiveSpeakerModel) -> None:
    if not clips:
        return
    inputs = [(np.stack(c.faces), clip_mfcc(audio, c.start, len(c.faces))) for c in clips]
    for clip, values in zip(clips, model.score_clips(inputs)):
        scores[clip.track_id][clip.start:clip.end] = values
        clip.faces.clear()


def _by_length(items: list[tuple], batch_frames: int) -> Iterable[list[tuple]]:
    """(k, lo, hi, ...) items grouped by hi - lo, each group at most `batch_frames` frames (and at least one item)."""
    groups: dict[int, list] = {}
    for item in items:
        groups.setdefault(item[2] - item[1], []).append(item)
    for length, group in sorted(groups.items()):
        per_batch = max(1, batch_frames // max(length, 1))
        for start in range(0, len(group), per_batch):
            yield group[start:start + per_batch]
