from fractions import Fraction

import av
import numpy as np
import pytest

from mit_annotator.core import media
from mit_annotator.core.media import MediaError


def gradient_frames(count, width=96, height=64):
    """Frames that are easy to tell apart after compression: the frame index is the brightness."""
    frames = np.zeros((count, height, width, 3), dtype=np.uint8)
    for k in range(count):
        frames[k] = 40 + 4 * k
        frames[k, :, : width // 2, 1] = 200
    return frames


def tone(seconds, rate=16000, freq=440.0):
    t = np.arange(int(seconds * rate)) / rate
    return (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    path = tmp_path_factory.mktemp("media") / "clip.mp4"
    media.write_video(path, gradient_frames(40), fps=25, audio=tone(1.6), sample_rate=16000)
    return path


def test_probe_reports_what_was_written(clip):
    info = media.probe(clip)
    assert (info.width, info.height, info.num_frames) == (96, 64, 40)
    assert info.fps == pytest.approx(25.0) and info.duration == pytest.approx(1.6)
    assert not info.variable_frame_rate
    assert info.has_audio and info.audio_sample_rate == 16000 and info.audio_channels == 1
    np.testing.assert_allclose(media.frame_timestamps(clip), np.arange(40) / 25.0, atol=1e-6)


def test_frames_come_back_in_order(clip):
    frames = media.read_frames(clip)
    assert frames.shape == (40, 64, 96, 3) and frames.dtype == np.uint8
    brightness = frames[:, :, 60:, 0].mean(axis=(1, 2))
    np.testing.assert_allclose(brightness, 40 + 4 * np.arange(40), atol=3)


def test_a_range_and_a_size(clip):
    frames = media.read_frames(clip, start=30, end=35, size=(48, 32))
    assert frames.shape == (5, 32, 48, 3)
    np.testing.assert_allclose(frames[:, :, 30:, 0].mean(axis=(1, 2)), 40 + 4 * np.arange(30, 35), atol=3)
    with pytest.raises(ValueError, match="outside"):
        media.read_frames(clip, start=50)


def test_resampling_to_a_lower_rate_picks_the_nearest_frames(clip):
    frames = media.read_frames(clip, fps=12.5)
    assert len(frames) == 20
    np.testing.assert_allclose(frames[:, :, 60:, 0].mean(axis=(1, 2)), 40 + 8 * np.arange(20), atol=3)


def test_variable_frame_rate_is_read_through_timestamps(tmp_path):
    path = tmp_path / "vfr.mp4"
    times_ms = [0, 40, 80, 160, 200, 320, 360, 400]  # gaps where frames were dropped
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 64, "yuv420p"
        stream.codec_context.time_base = Fraction(1, 1000)
        for k, ms in enumerate(times_ms):
            frame = av.VideoFrame.from_ndarray(np.full((64, 64, 3), 20 + 25 * k, np.uint8), format="rgb24")
            frame.pts, frame.time_base = ms, Fraction(1, 1000)
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    np.testing.assert_allclose(media.frame_timestamps(path), np.array(times_ms) / 1000, atol=1e-3)
    info = media.probe(path)
    assert info.variable_frame_rate and info.num_frames == 8
    frames = media.read_frames(path, fps=25)  # a constant 25 fps: held frames repeat
    assert len(frames) == 11
    source = [0, 1, 2, 2, 3, 4, 4, 5, 5, 6, 7]  # nearest source frame to k * 40 ms (ties go to the earlier)
    np.testing.assert_allclose(frames[:, 32, 32, 0], [20 + 25 * s for s in source], atol=4)


def test_audio_is_mono_float_at_the_requested_rate(clip):
    samples = media.read_audio(clip, 16000)
    assert samples.dtype == np.float32 and samples.ndim == 1
    assert abs(len(samples) - 25600) <= 16  # 1.6 s, the encoder's padding dropped
    middle = samples[4000:20000]
    assert np.sqrt(np.mean(middle ** 2)) == pytest.approx(0.3 / np.sqrt(2), rel=0.05)
    assert len(media.read_audio(clip, 8000)) == pytest.approx(12800, abs=16)


@pytest.mark.parametrize("rate, channels", [(8000, 1), (48000, 2)])
def test_audio_of_other_rates_and_stereo(tmp_path, rate, channels):
    path = tmp_path / "in.wav"
    signal = tone(1.0, rate, 300.0)
    media.write_wav(path, np.stack([signal] * channels) if channels == 2 else signal, rate)
    samples = media.read_audio(path, 16000)
    assert len(samples) == pytest.approx(16000, abs=32)
    assert np.sqrt(np.mean(samples[2000:14000] ** 2)) > 0.15


def test_writing_fails_cleanly_and_leaves_no_file(tmp_path):
    def frames():
        yield np.zeros((32, 32, 3), np.uint8)
        raise RuntimeError("renderer crashed")

    with pytest.raises(RuntimeError, match="renderer crashed"):
        media.write_video(tmp_path / "out.mp4", frames(), fps=25)
    with pytest.raises(ValueError, match=r"frame 1 has size \(16, 16\)"):
        media.write_video(tmp_path / "out.mp4", [np.zeros((32, 32, 3), np.uint8), np.zeros((16, 16, 3), np.uint8)], 25)
    with pytest.raises(ValueError, match="uint8 RGB"):
        media.write_video(tmp_path / "out.mp4", [np.zeros((32, 32), np.float32)], 25)
    with pytest.raises(ValueError, match="no frames"):
        media.write_video(tmp_path / "out.mp4", [], 25)
    assert list(tmp_path.iterdir()) == []


def test_odd_sizes_are_padded(tmp_path):
    path = media.write_video(tmp_path / "odd.mp4", [np.full((33, 31, 3), 128, np.uint8)] * 3, fps=10)
    assert media.read_frames(path).shape == (3, 34, 32, 3)


# ---- bad input: every failure names the file and what is wrong -------------------------------------------------


def test_not_a_media_file(tmp_path):
    path = tmp_path / "notes.mp4"
    path.write_text("these are not video frames\n" * 20)
    for read in (media.probe, media.read_frames, media.read_audio):
        with pytest.raises(MediaError, match="not a media file") as caught:
            read(path)
        assert str(path) in str(caught.value)


def test_missing_file(tmp_path):
    with pytest.raises(MediaError, match="no such file"):
        media.read_frames(tmp_path / "absent.mp4")


def test_no_video_stream(tmp_path):
    path = media.write_wav(tmp_path / "speech.wav", tone(0.5), 16000)
    with pytest.raises(MediaError, match="no video stream"):
        media.read_frames(path)


def test_no_audio_stream_when_audio_is_required(tmp_path):
    path = media.write_video(tmp_path / "silent.mp4", gradient_frames(5), fps=25)
    assert not media.probe(path).has_audio
    with pytest.raises(MediaError, match="no audio stream"):
        media.read_audio(path)


def test_zero_frames(tmp_path):
    path = tmp_path / "empty.mkv"  # Matroska keeps a video track that got no frames (mp4 drops it)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 64, "yuv420p"
        audio = container.add_stream("aac", rate=16000)
        frame = av.AudioFrame.from_ndarray(tone(0.5)[None], format="fltp", layout="mono")
        frame.sample_rate = 16000
        container.mux(audio.encode(frame))
        container.mux(audio.encode(None))
    with pytest.raises(MediaError, match="zero frames"):
        media.read_frames(path)


def test_truncated_file(clip, tmp_path):
    data = clip.read_bytes()
    path = tmp_path / "cut.mp4"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(MediaError, match="truncated"):
        media.read_frames(path)
    with pytest.raises(MediaError, match="truncated"):
        media.read_audio(path)


def test_corrupt_data(saved_conversation, tmp_path):
    _, paths = saved_conversation
    data = bytearray(paths["video"].read_bytes())
    start = len(data) // 3
    data[start:start + len(data) // 4] = np.random.default_rng(0).integers(0, 256, len(data) // 4,
                                                                             dtype=np.uint8).tobytes()
    path = tmp_path / "corrupt.mp4"
    path.write_bytes(bytes(data))
    with pytest.raises(MediaError, match="corrupt"):
        media.read_frames(path)


def test_the_x264_preset_is_the_one_asked_for(tmp_path):
    rng = np.random.default_rng(0)
    base = rng.integers(0, 255, (96, 128, 3), np.uint8)
    frames = [np.roll(base, 3 * k, axis=1) for k in range(12)]
    written = {}
    for preset in ("ultrafast", "medium"):
        path = media.write_video(tmp_path / f"{preset}.mp4", frames, 25.0, preset=preset)
        written[preset] = path.read_bytes()
    # x264 writes its settings into the stream: ultrafast turns CABAC and the deblocking off, medium keeps them
    assert b"cabac=0" in written["ultrafast"] and b"cabac=1" in written["medium"]
    with pytest.raises(ValueError, match="preset must be one of ultrafast, .*, got 'quick'"):
        media.write_video(tmp_path / "bad.mp4", frames, 25.0, preset="quick")
    assert not (tmp_path / "bad.mp4").exists()
