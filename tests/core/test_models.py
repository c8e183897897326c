import sys
import time
import types

import pytest
from conftest import shared_path

from mit_annotator.core import models
from mit_annotator.core.models import ModelNotFoundError, resolve_model


def test_an_explicit_path_wins(tmp_path):
    path = tmp_path / "mine.onnx"
    path.write_bytes(b"x")
    assert resolve_model(path) == path
    with pytest.raises(ModelNotFoundError, match="missing.onnx does not exist"):
        resolve_model(tmp_path / "missing.onnx")


def test_a_known_name_is_found_in_the_models_directory(tmp_path, monkeypatch):
    (tmp_path / "dw-ll_ucoco_384.onnx").write_bytes(b"x")
    assert resolve_model("dwpose", models_dir=tmp_path) == tmp_path / "dw-ll_ucoco_384.onnx"
    monkeypatch.setenv("MIT_MODELS_DIR", str(tmp_path))
    assert resolve_model("dwpose") == tmp_path / "dw-ll_ucoco_384.onnx"


def test_comfyui_model_folders_come_first(tmp_path, monkeypatch):
    comfy, own = tmp_path / "comfy", tmp_path / "own"
    comfy.mkdir()
    own.mkdir()
    for folder in (comfy, own):
        (folder / "yolox_l.onnx").write_bytes(b"x")
    fake = types.ModuleType("folder_paths")
    fake.get_folder_paths = lambda name: [str(comfy)] if name == "dwpose" else []
    monkeypatch.setitem(sys.modules, "folder_paths", fake)
    assert resolve_model("yolox_l", models_dir=own) == comfy / "yolox_l.onnx"
    with pytest.raises(ModelNotFoundError) as caught:  # each folder named once
        resolve_model("dwpose", models_dir=comfy)
    assert str(caught.value).count(str(comfy)) == 2 and "download_missing" in str(caught.value)


def test_a_missing_model_fails_fast_offline_with_name_and_source(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    start = time.perf_counter()
    with pytest.raises(ModelNotFoundError) as caught:
        resolve_model("dwpose", models_dir=tmp_path, download=True)
    assert time.perf_counter() - start < 1.0
    message = str(caught.value)
    assert "dw-ll_ucoco_384.onnx" in message and "huggingface.co/yzd-v/DWPose" in message and str(tmp_path) in message
    with pytest.raises(ModelNotFoundError, match="download it from .* into"):
        resolve_model("yolox_l", models_dir=tmp_path)


def test_unknown_names_list_the_known_ones(tmp_path):
    with pytest.raises(ModelNotFoundError, match="neither an existing file nor a known model .*dwpose"):
        resolve_model("openpose_body", models_dir=tmp_path)
    (tmp_path / "my_yolox.onnx").write_bytes(b"x")
    assert resolve_model("my_yolox.onnx", models_dir=tmp_path) == tmp_path / "my_yolox.onnx"


@pytest.mark.parametrize("name", ["yolox_nano", "yunet"])
def test_shared_models_match_their_registered_checksums(name):
    known = models.KNOWN_MODELS[name]
    path = shared_path("models", known.filename)  # skips naming the file when it is absent (fails under CI)
    assert models.sha256_of(path) == known.sha256
