"""Video and audio I/O on PyAV (ffmpeg's libraries, bundled in the wheel: no ffmpeg binary needed).

Frames are RGB uint8 arrays (H, W, 3). Audio is mono float32 in -1..1 at a requested sample rate. A variable-frame-
rate video is read at a constant rate by picking, for each output time, the source frame nearest to it.
"""

from __future__ import annotations

import os
import wave
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from mit_annotator.core.files import atomic_path
from mit_annotator.core.records import nearest_frames

MAX_FRAME_GAP_S = 60.0  # longer between two frames: broken or crafted timestamps, not a recording
VFR_TOLERANCE = 0.05  # relative spread of frame durations above which a stream counts as variable-rate


class MediaError(ValueError):
    """A media file that cannot be used, with the file and the problem in the message."""

    def __init__(self, path: str | os.PathLike, problem: str):
        super().__init__(f"{path}: {problem}")
        self.path = str(path)
        self.problem = problem


@dataclass(frozen=True)
class VideoInfo:
    path: str
    width: int
    height: int
    fps: float  # average frame rate
    num_frames: int
    duration: float  # seconds, from the first frame's start to the last frame's end
    variable_frame_rate: bool
    audio_sample_rate: int | None  # None: no audio stream
    audio_channels: int | None

    @property
    def has_audio(self) -> bool:
        return self.audio_sample_rate is not None


# ---------------------------------------------------------------------------------------------------------------------
# Reading


def probe(path: str | os.PathLike) -> VideoInfo:
    """What a video holds, from its packets (nothing is decoded)."""
    timestamps = frame_timestamps(path)
    with _open(path) as container:
        stream = _video_stream(container, path)
        audio = container.streams.audio[0] if container.streams.audio else None
        steps = np.diff(timestamps)
        if len(steps) and steps.max() > MAX_FRAME_GAP_S:  # the frames to plan come from the stream, not one stamp
            at = int(np.argmax(steps))
            raise MediaError(path, f"{steps[at]:.0f} s pass between frame {at} ({timestamps[at]:.2f} s) and the next: "
                                   "its timestamps are broken, or it is not one recording")
        step = float(np.median(steps)) if len(steps) else _nominal_step(stream)
        variable = bool(len(steps) > 1 and (steps.max() - steps.min()) > VFR_TOLERANCE * step)
        fps = (len(timestamps) - 1) / (timestamps[-1] - timestamps[0]) if variable else 1.0 / step
        return VideoInfo(
            path=str(path), width=stream.codec_context.width, height=stream.codec_context.height,
            fps=float(fps), num_frames=len(timestamps), duration=float(timestamps[-1] - timestamps[0] + step),
            variable_frame_rate=variable,
            audio_sample_rate=audio.codec_context.sample_rate if audio else None,
            audio_channels=audio.codec_context.channels if audio else None,
        )


def frame_timestamps(path: str | os.PathLike) -> np.ndarray:
    """Presentation time in seconds of every video frame, in display order, from the packets alone."""
    with _open(path) as container:
        stream = _video_stream(container, path)
        pts = []
        try:
            for packet in container.demux(stream):
                if packet.pts is not None and packet.size:
                    pts.append(packet.pts)
        except av.error.FFmpegError as error:
            raise MediaError(path, f"corrupt or truncated data while reading packets ({error})") from None
        if not pts:
            raise MediaError(path, "the video stream has zero frames")
        if stream.frames and len(pts) < stream.frames:
            raise MediaError(path, f"truncated: the header lists {stream.frames} frames, the file holds "
                                   f"{len(pts)}")
        return np.sort(np.asarray(pts, dtype=np.float64)) * float(stream.time_base)


def read_frames(path: str | os.PathLike, start: int = 0, end: int | None = None,
                size: tuple[int, int] | None = None, fps: float | None = None) -> np.ndarray:
    """Frames [start, end) as a (N, H, W, 3) uint8 array; see `iter_frames`."""
    timestamps, wanted = _plan(path, start, end, fps)
    if len(wanted) == 0:
        raise MediaError(path, f"no frames in the range [{start}, {end})")
    frames = None
    for k, image in enumerate(_decode(path, timestamps, wanted, size)):
        if frames is None:  # filled in place: no second copy of a long video in memory
            frames = np.empty((len(wanted), *image.shape), dtype=np.uint8)
        frames[k] = image
    return frames


def iter_frames(path: str | os.PathLike, start: int = 0, end: int | None = None,
                size: tuple[int, int] | None = None, fps: float | None = None) -> Iterator[np.ndarray]:
    """Decode frames [start, end) one at a time as RGB uint8.

    `fps`: resample to this constant rate (indices then count output frames); None keeps every source frame.
    `size`: (width, height) to resize to.
    """
    timestamps, wanted = _plan(path, start, end, fps)
    yield from _decode(path, timestamps, wanted, size)


def _plan(path, start: int, end: int | None, fps: float | None) -> tuple[np.ndarray, np.ndarray]:
    """Every source frame's time, and the source frame shown at each requested output frame."""
    timestamps = frame_timestamps(path)
    wanted = _source_indices(timestamps, fps)
    end = len(wanted) if end is None else min(end, len(wanted))
    if start < 0 or start > end:
        raise ValueError(f"{path}: frame range [{start}, {end}) is outside 0..{len(wanted)}")
    return timestamps, wanted[start:end]


def _decode(path, timestamps: np.ndarray, wanted: np.ndarray, size: tuple[int, int] | None) -> Iterator[np.ndarray]:
    if len(wanted) == 0:
        return
    with _open(path) as container:
        stream = _video_stream(container, path)
        stream.thread_type = "AUTO"
        time_base = float(stream.time_base)
        if wanted[0] > 0:
            container.seek(int(round(timestamps[wanted[0]] / time_base)), stream=stream, backward=True)
        position = 0  # into `wanted`
        decoded = 0
        try:
            for frame in container.decode(stream):
                if frame.pts is None:
                    continue
                index = int(np.searchsorted(timestamps, frame.pts * time_base - 1e-6))
                decoded += 1
                if index < wanted[position]:
                    continue
                image = _to_rgb(frame, size)
                while position < len(wanted) and wanted[position] <= index:
                    yield image
                    position += 1
                if position == len(wanted):
                    return
        except av.error.FFmpegError as error:
            raise MediaError(path, f"corrupt or truncated data after {decoded} decoded frames ({error})") from None
    raise MediaError(path, f"truncated: the packets announce {len(timestamps)} frames but decoding stopped "
                           f"before frame {wanted[position]}")


def frames_at_rate(frames: Iterable[np.ndarray], num_frames: int, fps: float, rate: float) -> Iterator[np.ndarray]:
    """Frames of a video at `fps` re-counted at `rate` (the nearest source frame in time), read once and in order."""
    if abs(fps - rate) < 1e-6:
        yield from frames
        return
    picks = nearest_frames(num_frames, fps, rate)
    position = 0
    for index, frame in enumerate(frames):
        while position < len(picks) and picks[position] == index:
            yield frame
            position += 1


def read_audio(path: str | os.PathLike, sample_rate: int = 16000) -> np.ndarray:
    """The first audio track as mono float32 at `sample_rate`, starting at the container's time 0."""
    if sample_rate <= 0:
        raise ValueError(f"sample_rate must be positive, got {sample_rate}")
    with _open(path) as container:
        if not container.streams.audio:
            raise MediaError(path, "no audio stream (this input needs one)")
        stream = container.streams.audio[0]
        # read while the container is open: the stream's fields are freed with it
        listed = stream.duration * float(stream.time_base) if stream.duration else None
        resampler = av.AudioResampler(format="flt", layout="mono", rate=sample_rate)
        # filled in place: a 3-hour recording is 0.7 GB of float32, never held twice while it is read
        samples, lead = _Samples(int(min(listed or 600.0, 4 * 3600.0) * sample_rate) + sample_rate), None
        try:
            for frame in container.decode(stream):
                if lead is None and frame.time is not None:
                    lead = max(0.0, float(frame.time) - float(container.start_time or 0) / av.time_base)
                for out in resampler.resample(frame):
                    samples.add(out.to_ndarray().reshape(-1))
            for out in resampler.resample(None):
                samples.add(out.to_ndarray().reshape(-1))
        except av.error.FFmpegError as error:
            raise MediaError(path, f"corrupt or truncated audio data ({error})") from None
    samples = samples.array()
    if not len(samples):
        raise MediaError(path, "the audio stream has no samples")
    if listed:  # drop the encoder's padding after the last real sample
        expected = int(round(listed * sample_rate))
        if len(samples) < expected - sample_rate // 10:
            raise MediaError(path, f"truncated: the header lists {expected / sample_rate:.2f} s of audio, the file "
                                   f"holds {len(samples) / sample_rate:.2f} s")
        samples = samples[:expected]
    pad = int(round((lead or 0.0) * sample_rate))
    return np.concatenate([np.zeros(pad, np.float32), samples]) if pad else samples


class _Samples:
    """A float32 buffer that grows by doubling; `array()` is the filled part (copied only when much is unused)."""

    def __init__(self, capacity: int):
        self.data, self.size = np.empty(max(capacity, 1), np.float32), 0

    def add(self, piece: np.ndarray) -> None:
        if self.size + len(piece) > len(self.data):
            grown = np.empty(max(2 * len(self.data), self.size + len(piece)), np.float32)
            grown[:self.size] = self.data[:self.size]
            self.data = grown
        self.data[self.size:self.size + len(piece)] = piece
        self.size += len(piece)

    def array(self) -> np.ndarray:
        filled = self.data[:self.size]
        return filled.copy() if len(self.data) > 1.2 * self.size + 16000 else filled


def _open(path: str | os.PathLike):
    if not Path(path).is_file():
        raise MediaError(path, "is a folder, not a media file" if Path(path).is_dir() else "no such file")
    try:
        return av.open(str(path), mode="r")
    except av.error.FFmpegError as error:
        raise MediaError(path, f"not a media file, or truncated or corrupt beyond reading ({error})") from None


def _video_stream(container, path) -> av.video.stream.VideoStream:
    if not container.streams.video:
        raise MediaError(path, "no video stream")
    return container.streams.video[0]


def _nominal_step(stream) -> float:
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    return 1.0 / float(rate) if rate else 1.0 / 25.0


def _source_indices(timestamps: np.ndarray, fps: float | None) -> np.ndarray:
    """For each output frame, the source frame shown: every frame, or the nearest one at a constant rate."""
    if fps is None:
        return np.arange(len(timestamps))
    if fps <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    step = np.median(np.diff(timestamps)) if len(timestamps) > 1 else 1.0 / fps
    span = timestamps[-1] - timestamps[0] + step
    times = timestamps[0] + np.arange(int(np.floor(span * fps + 1e-6))) / fps
    right = np.clip(np.searchsorted(timestamps, times), 0, len(timestamps) - 1)
    left = np.clip(right - 1, 0, len(timestamps) - 1)
    nearer_left = np.abs(times - timestamps[left]) <= np.abs(timestamps[right] - times)
    return np.where(nearer_left, left, right)


def _to_rgb(frame: av.VideoFrame, size: tuple[int, int] | None) -> np.ndarray:
    if size is None:
        return frame.to_ndarray(format="rgb24")
    width, height = size
    return frame.reformat(width=width, height=height, format="rgb24", interpolation="AREA").to_ndarray()


# ---------------------------------------------------------------------------------------------------------------------
# Writing


X264_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow")


def check_x264_preset(preset: str, name: str = "preset") -> str:
    """`preset` if it is one of X264_PRESETS, else a ValueError naming `name`."""
    if preset not in X264_PRESETS:
        raise ValueError(f"{name} must be one of {', '.join(X264_PRESETS)}, got {preset!r}")
    return preset


def write_video(path: str | os.PathLike, frames: Iterable[np.ndarray], fps: float,
                audio: np.ndarray | None = None, sample_rate: int = 16000, crf: int = 18,
                preset: str = "medium") -> Path:
    """Write RGB uint8 frames as an H.264 mp4, with AAC audio when given ((T,) mono or (C, T)).

    `crf` sets the quality, `preset` (one of X264_PRESETS) how hard x264 works for a smaller file at that quality.
    The file appears under its name only when complete. Odd frame sizes are padded by one edge pixel (H.264 in
    yuv420p needs even sizes).
    """
    path = Path(path)
    if fps <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    check_x264_preset(preset)
    audio = _check_audio(audio)
    with atomic_path(path) as tmp:
        if _encode(str(tmp), frames, fps, audio, sample_rate, crf, preset) == 0:
            raise ValueError(f"{path}: no frames to write")
    return path


def write_wav(path: str | os.PathLike, samples: np.ndarray, sample_rate: int) -> Path:
    """16-bit PCM WAV of (T,) mono or (C, T) float samples in -1..1, written atomically."""
    samples = _check_audio(samples)
    pcm = (np.clip(samples, -1.0, 1.0) * 32767).round().astype("<i2")
    with atomic_path(path) as tmp, wave.open(str(tmp), "wb") as out:
        out.setnchannels(pcm.shape[0])
        out.setsampwidth(2)
        out.setframerate(int(sample_rate))
        out.writeframes(pcm.T.tobytes())
    return path


def _check_audio(audio: np.ndarray | None) -> np.ndarray | None:
    if audio is None:
        return None
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim == 1:
        audio = audio[None]
    if audio.ndim != 2 or audio.shape[0] not in (1, 2) or audio.shape[1] == 0:
        raise ValueError(f"audio must be (samples,) or (channels<=2, samples) and non-empty, got {audio.shape}")
    return np.ascontiguousarray(audio)


def _check_frame(frame: np.ndarray, index: int) -> np.ndarray:
    frame = np.asarray(frame)
    if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
        raise ValueError(f"frame {index} must be an (H, W, 3) uint8 RGB array, got {frame.shape} {frame.dtype}")
    pad_h, pad_w = frame.shape[0] % 2, frame.shape[1] % 2
    return np.pad(frame, ((0, pad_h), (0, pad_w), (0, 0)), mode="edge") if pad_h or pad_w else frame


def _encode(tmp: str, frames: Iterable[np.ndarray], fps: float, audio: np.ndarray | None,
            sample_rate: int, crf: int, preset: str) -> int:
    rate = Fraction(fps).limit_denominator(1001)
    count = 0
    with av.open(tmp, mode="w", format="mp4", options={"movflags": "+faststart"}) as container:
        video = None
        sound = None
        if audio is not None:
            sound = container.add_stream("aac", rate=sample_rate, layout="mono" if audio.shape[0] == 1 else "stereo")
        audio_sent = 0
        for count, frame in enumerate(frames, 1):
            frame = _check_frame(frame, count - 1)
            if video is None:
                video = container.add_stream("libx264", rate=rate, options={"crf": str(crf), "preset": preset})
                video.width, video.height, video.pix_fmt = frame.shape[1], frame.shape[0], "yuv420p"
                size = frame.shape
            elif frame.shape != size:
                raise ValueError(f"frame {count - 1} has size {frame.shape[:2]}, frame 0 had {size[:2]}")
            out = av.VideoFrame.from_ndarray(frame, format="rgb24")
            out.pts = count - 1
            out.time_base = 1 / rate
            container.mux(video.encode(out))
            if sound is not None:  # interleave: send the audio up to this frame's end
                upto = min(audio.shape[1], int(round(count / float(rate) * sample_rate)))
                audio_sent = _mux_audio(container, sound, audio, audio_sent, upto, sample_rate)
        if video is not None:
            container.mux(video.encode(None))
        if sound is not None:
            upto = min(audio.shape[1], int(round(count / float(rate) * sample_rate)))
            _mux_audio(container, sound, audio, audio_sent, upto, sample_rate)
            container.mux(sound.encode(None))
    return count


def _mux_audio(container, stream, audio: np.ndarray, start: int, end: int, sample_rate: int) -> int:
    if end <= start:
        return start
    chunk = av.AudioFrame.from_ndarray(np.ascontiguousarray(audio[:, start:end]), format="fltp",
                                       layout="mono" if audio.shape[0] == 1 else "stereo")
    chunk.sample_rate = sample_rate
    chunk.pts = start
    chunk.time_base = Fraction(1, sample_rate)
    container.mux(stream.encode(chunk))
    return end


def prefetched(frames: Iterable[np.ndarray], depth: int = 8) -> Iterator[np.ndarray]:
    """`frames`, made by a background thread up to `depth` ahead: decoding overlaps the caller's work (PyAV, OpenCV
    and ONNX Runtime release the GIL). Errors come out where the frame would have; stopping early stops the thread
    and closes `frames`."""
    import contextlib
    import queue
    import threading

    ahead: queue.Queue = queue.Queue(depth)
    stop = threading.Event()
    end = object()

    def put(item) -> bool:
        while not stop.is_set():
            try:
                ahead.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            with contextlib.closing(iter(frames)) as source:
                for frame in source:
                    if not put(frame):
                        return
            put(end)
        except BaseException as error:  # noqa: BLE001 -- handed to the consumer, raised there
            put(_Failed(error))

    thread = threading.Thread(target=produce, name="prefetch-frames", daemon=True)
    thread.start()
    try:
        while (item := ahead.get()) is not end:
            if isinstance(item, _Failed):
                raise item.error
            yield item
    finally:
        stop.set()
        thread.join()


@dataclass(frozen=True)
class _Failed:
    error: BaseException
