"""pyannote's speaker segmentation network: our code against the published implementation's numbers, the released
checkpoint read without running its pickles, and every way a checkpoint can be wrong."""

import hashlib
import os
import pickle
import shutil
import zipfile

import numpy as np
import pytest
import torch
from conftest import shared_path

from mit_annotator.audio.speaker_segmentation import (
    SegmentationModelError,
    SegmentationSpec,
    SincFilterbank,
    convert_checkpoint,
    load_converted,
    load_segmentation,
    spec_from_checkpoint,
)
from mit_annotator.core import media
from mit_annotator.core.lightning_checkpoint import CheckpointError, Foreign, plain, read_checkpoint
from mit_annotator.core.models import KNOWN_MODELS, ModelNotFoundError, resolve_model

RELEASED = ("models", "pyannote_segmentation", "pytorch_model.bin")

# pyannote.audio's published PyanNet + SincNet (pyannote-audio @ b749285c) with asteroid-filterbanks' ParamSincFB,
# run outside this repository on the released weights, over the pyannote sample's seconds 6-11: the scores of the 3
# local speakers at these frames (BENCHMARKS.md, "The segmentation network against the published implementation").
PUBLISHED_SCORES = {
    0: [0.22974, 0.10824, 0.00060], 40: [0.16923, 0.23396, 0.00265], 80: [0.11378, 0.03303, 0.00048],
    120: [0.96179, 0.15295, 0.00288], 160: [0.91456, 0.43709, 0.00027], 200: [0.09511, 0.98486, 0.00015],
    240: [0.97777, 0.54690, 0.00229], 292: [0.96966, 0.75788, 0.00707],
}


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    target = tmp_path_factory.mktemp("converted") / "pyannote_segmentation.safetensors"
    return convert_checkpoint(shared_path(*RELEASED), target)


def test_the_released_checkpoint_reads_as_plain_data_without_its_classes():
    content = read_checkpoint(shared_path(*RELEASED))
    meta = content["pyannote.audio"]
    assert isinstance(meta["specifications"], Foreign) and meta["specifications"].name == \
        "pyannote.audio.core.task.Specifications"  # named, never built
    specifications = plain(meta["specifications"])
    assert specifications["classes"] == ["speaker#1", "speaker#2", "speaker#3"] and specifications["duration"] == 5.0
    assert plain(meta["introspection"])["inc_num_samples"] == 270
    weights = content["state_dict"]
    assert weights["lstm.weight_ih_l0"].shape == (512, 60) and weights["lstm.weight_ih_l0"].dtype == np.float32
    assert weights["sincnet.conv1d.0.filterbank.low_hz_"].shape == (40, 1)


def test_the_spec_and_frame_geometry_agree_with_the_checkpoints_own_introspection():
    content = read_checkpoint(shared_path(*RELEASED))
    spec = spec_from_checkpoint(content, "released", None)
    introspection = plain(content["pyannote.audio"]["introspection"])
    assert (spec.sinc_stride, spec.lstm_layers, spec.lstm_hidden, spec.num_speakers) == (10, 4, 128, 3)
    assert spec.frame_step == introspection["inc_num_samples"] == 270
    assert spec.receptive_field + spec.frame_step == introspection["min_num_samples"]  # 2 frames need 1261
    assert spec.num_frames(introspection["min_num_samples"]) == introspection["min_num_frames"] == 2
    assert spec.num_frames(80000) == 293 and spec.num_frames(spec.receptive_field) == 1


def test_our_network_gives_the_published_implementations_scores(converted):
    network = load_converted(converted)
    audio = media.read_audio(shared_path("diarization", "pyannote_sample", "sample.wav"), 16000)
    with torch.inference_mode():
        scores = network(torch.from_numpy(audio[6 * 16000:11 * 16000].copy())[None, None])[0].numpy()
    for frame, expected in PUBLISHED_SCORES.items():
        np.testing.assert_allclose(scores[frame], expected, atol=2e-5, err_msg=f"frame {frame}")


def test_onnx_runtime_on_the_cpu_matches_torch(converted):
    from mit_annotator.audio.speaker_segmentation import SpeakerSegmentation

    runner = SpeakerSegmentation(load_converted(converted), device="cpu")
    assert runner.session is not None
    audio = media.read_audio(shared_path("diarization", "pyannote_sample", "sample.wav"), 16000)
    chunks = np.stack([audio[s:s + 80000] for s in (0, 64000, 160000, 320000)])
    with torch.inference_mode():
        expected = runner.network(torch.from_numpy(chunks)[:, None]).numpy()
    np.testing.assert_allclose(runner.scores(chunks), expected, atol=1e-4)
    with pytest.raises(ValueError, match="chunks must be"):
        runner.scores(chunks[:, :1000])


def test_the_sinc_filters_are_windowed_band_passes_and_their_quadrature_pairs():
    """Oracle: the ideal band-pass impulse response [sin(2 pi f2 t) - sin(2 pi f1 t)] / (pi t) and its Hilbert
    pair [cos(2 pi f1 t) - cos(2 pi f2 t)] / (pi t), Hamming-windowed, divided by 2 (f2 - f1)."""
    bank = SincFilterbank(bands=4, taps=251)
    with torch.no_grad():
        bank.low_hz_.copy_(torch.tensor([[30.0], [250.0], [1000.0], [3000.0]]))
        bank.band_hz_.copy_(torch.tensor([[100.0], [300.0], [-900.0], [7000.0]]))  # |band|; the last is clamped
    filters = bank.filters().detach().numpy()[:, 0].astype(np.float64)
    t = np.arange(-125, 126) / 16000.0
    window = np.hamming(251)
    low = 50.0 + np.array([30.0, 250.0, 1000.0, 3000.0])
    high = np.minimum(low + 50.0 + np.array([100.0, 300.0, 900.0, 7000.0]), 8000.0)
    for k, (f1, f2) in enumerate(zip(low, high)):
        with np.errstate(invalid="ignore", divide="ignore"):
            cosine = (np.sin(2 * np.pi * f2 * t) - np.sin(2 * np.pi * f1 * t)) / (np.pi * t)
            sine = (np.cos(2 * np.pi * f1 * t) - np.cos(2 * np.pi * f2 * t)) / (np.pi * t)
        cosine[125], sine[125] = 2 * (f2 - f1), 0.0
        np.testing.assert_allclose(filters[k], cosine * window / (2 * (f2 - f1)), atol=2e-5, err_msg=f"cos {k}")
        np.testing.assert_allclose(filters[4 + k], sine * window / (2 * (f2 - f1)), atol=2e-5, err_msg=f"sin {k}")
    assert np.allclose(filters[4:], -filters[4:, ::-1]) and np.allclose(filters[:4], filters[:4, ::-1])


def _torch_style_zip(path, payload: bytes) -> None:
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("archive/data.pkl", payload)
        archive.writestr("archive/version", "3\n")


def test_a_checkpoint_that_pickles_code_is_read_without_running_it(tmp_path):
    marker = tmp_path / "ran"

    class Exploit:
        def __reduce__(self):
            return os.system, (f"touch {marker}",)

    _torch_style_zip(tmp_path / "evil.bin", pickle.dumps({"state_dict": {}, "payload": Exploit()}, protocol=2))
    content = read_checkpoint(tmp_path / "evil.bin")
    assert not marker.exists()
    assert isinstance(content["payload"], Foreign) and content["payload"].name in ("posix.system", "os.system")
    with pytest.raises(SegmentationModelError, match="evil.bin: a model of class unknown"):
        convert_checkpoint(tmp_path / "evil.bin", tmp_path / "out.safetensors")
    assert not (tmp_path / "out.safetensors").exists() and not marker.exists()


@pytest.mark.parametrize("damage", ["truncated", "not a zip", "folder", "missing"])
def test_damaged_checkpoints_fail_naming_the_file(tmp_path, damage):
    path = tmp_path / "pytorch_model.bin"
    if damage == "truncated":
        path.write_bytes(shared_path(*RELEASED).read_bytes()[:200000])
    elif damage == "not a zip":
        path.write_bytes(b"\x80\x02}q\x00.")
    elif damage == "folder":
        path.mkdir()
    with pytest.raises(CheckpointError, match=str(path)):
        read_checkpoint(path)


def test_a_tampered_release_is_refused_by_its_sha256(tmp_path, monkeypatch):
    monkeypatch.setenv("MIT_MODELS_DIR", str(tmp_path / "cache"))  # no earlier conversion to fall back on
    folder = tmp_path / "pyannote_segmentation"
    folder.mkdir()
    data = bytearray(shared_path(*RELEASED).read_bytes())
    data[-100] ^= 0xFF
    (folder / "pytorch_model.bin").write_bytes(bytes(data))
    with pytest.raises(SegmentationModelError, match="sha256.*damaged or different"):
        load_segmentation(models_dir=tmp_path)
    assert not list(tmp_path.rglob("*.safetensors"))


def test_other_architectures_are_refused():
    content = read_checkpoint(shared_path(*RELEASED))
    content["pyannote.audio"]["architecture"] = {"class": "SSeRiouSS"}
    with pytest.raises(SegmentationModelError, match="SSeRiouSS"):
        spec_from_checkpoint(content, "x", None)
    content = read_checkpoint(shared_path(*RELEASED))
    content["pyannote.audio"]["specifications"].state["powerset_max_classes"] = 2
    with pytest.raises(SegmentationModelError, match="powerset"):
        spec_from_checkpoint(content, "x", None)


def test_the_release_is_converted_once_and_found_in_its_subfolder_afterwards(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("MIT_MODELS_DIR", str(tmp_path / "cache"))
    models = tmp_path / "models"
    (models / "pyannote_segmentation").mkdir(parents=True)
    shutil.copy(shared_path(*RELEASED), models / "pyannote_segmentation" / "pytorch_model.bin")
    caplog.set_level("INFO", "mit_annotator")
    first = load_segmentation(models_dir=models, device="cpu")
    converted = models / "pyannote_segmentation" / "pyannote_segmentation.safetensors"
    assert converted.is_file() and "converting" in caplog.text
    assert first.spec.source_sha256 == KNOWN_MODELS["pyannote_segmentation"].sha256
    caplog.clear()
    (models / "pyannote_segmentation" / "pytorch_model.bin").unlink()  # the pickle is never needed again
    second = load_segmentation(models_dir=models, device="cpu")
    assert "converting" not in caplog.text
    chunk = np.random.default_rng(0).standard_normal((1, 80000)).astype(np.float32) * 0.1
    np.testing.assert_allclose(first.scores(chunk), second.scores(chunk), atol=1e-6)


def test_a_read_only_models_folder_converts_into_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MIT_MODELS_DIR", str(tmp_path / "cache"))
    load_segmentation(models_dir=shared_path("models"), device="cpu")  # ../shared/data is read-only
    assert (tmp_path / "cache" / "converted" / "pyannote_segmentation.safetensors").is_file()
    assert not (shared_path(*RELEASED).parent / "pyannote_segmentation.safetensors").exists()


def test_a_missing_model_names_the_file_and_where_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setenv("MIT_MODELS_DIR", str(tmp_path))
    with pytest.raises(ModelNotFoundError, match=r"pytorch_model\.bin.*whisperx"):
        load_segmentation(models_dir=tmp_path)


def test_models_are_found_in_the_subfolder_they_ship_in():
    models = shared_path("models")
    assert resolve_model("lr_asd", models) == models / "lr_asd" / "pretrain_AVA.model"
    assert resolve_model("pyannote_segmentation", models) == models / "pyannote_segmentation" / "pytorch_model.bin"


def test_a_converted_file_with_a_bad_spec_is_refused(converted, tmp_path):
    copy = tmp_path / "model.safetensors"
    shutil.copy(converted, copy)
    copy.with_suffix(".json").write_text('{"format": "something else"}')
    with pytest.raises(SegmentationModelError, match="not a converted segmentation model"):
        load_converted(copy)
    copy.with_suffix(".json").write_text("{not json")
    with pytest.raises(SegmentationModelError, match="unreadable"):
        load_converted(copy)


def test_the_registry_pins_the_released_files_sha256():
    assert SegmentationSpec().chunk_samples == 80000
    assert KNOWN_MODELS["pyannote_segmentation"].sha256 == hashlib.sha256(
        shared_path(*RELEASED).read_bytes()).hexdigest()
