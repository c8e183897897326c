"""Inside ComfyUI a node's inputs come from whoever can reach the server. A file or model a node's input names must
lie in ComfyUI's input/output or models folders: no reading /etc/passwd as a list of videos (and echoing its lines),
no model loaded from outside models/. ComfyUI's folder_paths is stood in for with the same functions and semantics."""

import os
import shutil
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch
from annotate_inputs import conversation, save_video
from conftest import shared_path

from covog.models.model import CovOGModel


@pytest.fixture
def comfy(tmp_path, monkeypatch):
    """A ComfyUI folder (input/, output/, models/dwpose, models/covog) and a folder_paths module over it."""
    root = tmp_path / "ComfyUI"
    for folder in ("input", "output", "models/dwpose", "models/covog"):
        (root / folder).mkdir(parents=True)
    module = types.ModuleType("folder_paths")
    module.models_dir = str(root / "models")
    module.folder_names_and_paths = {name: ([str(root / "models" / name)], set()) for name in ("dwpose", "covog")}

    def get_folder_paths(name):
        return module.folder_names_and_paths[name][0]

    def add_model_folder_path(name, path):
        module.folder_names_and_paths.setdefault(name, ([], set()))[0].append(path)

    def get_filename_list(name):
        return sorted(str(p.relative_to(folder)) for folder in map(Path, get_folder_paths(name))
                      for p in folder.rglob("*") if p.is_file())

    def get_full_path(name, filename):
        filename = os.path.relpath(os.path.join("/", filename), "/")  # as ComfyUI: no way up
        for folder in get_folder_paths(name):
            if os.path.isfile(os.path.join(folder, filename)):
                return os.path.join(folder, filename)
        return None

    for function in (get_folder_paths, add_model_folder_path, get_filename_list, get_full_path):
        setattr(module, function.__name__, function)
    module.get_input_directory = lambda: str(root / "input")
    module.get_output_directory = lambda: str(root / "output")
    monkeypatch.setitem(sys.modules, "folder_paths", module)
    monkeypatch.delenv("MIT_MODELS_DIR", raising=False)
    return root


def export_dataset(videos, detector="yolox_nano", pose_model="none"):
    from nodes.export_nodes import ExportDataset

    return ExportDataset.execute(videos, "mit-covog/dataset", detector, pose_model, "lips", 1.0)


def test_export_dataset_reads_videos_only_from_comfyuis_folders(comfy, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("root:x:0:0:root:/root:/bin/bash\n")
    for given in (str(secret), "../../secret.txt", "~/.bashrc", str(comfy / "models")):
        with pytest.raises(ValueError) as caught:
            export_dataset(given)
        message = str(caught.value)
        assert message.startswith(f"videos {given!r} is outside ComfyUI's input and output folders")
        assert "root:x" not in message
    listed = comfy / "input" / "videos.txt"
    listed.write_text(f"{secret}\n")
    with pytest.raises(ValueError, match=f"the listed video of 'videos.txt' '{secret}' is outside ComfyUI's input"):
        export_dataset("videos.txt")
    assert not (comfy / "output" / "mit-covog").exists()


@pytest.mark.parametrize("detector, pose_model, refused", [
    ("/etc/passwd", "none", "detector '/etc/passwd'"),
    ("../../../secret.onnx", "none", "detector '../../../secret.onnx'"),
    ("yolox_nano", "/tmp/pose.onnx", "pose_model '/tmp/pose.onnx'"),
])
def test_export_dataset_takes_models_by_name_only(comfy, detector, pose_model, refused):
    (comfy / "input" / "talk.mp4").write_bytes(b"")
    with pytest.raises(ValueError) as caught:
        export_dataset("talk.mp4", detector, pose_model)
    assert str(caught.value).startswith(f"{refused} is neither a known model (")
    assert "nor a file in ComfyUI/models/dwpose: put the file there and pick it by name" in str(caught.value)


def test_export_dataset_annotates_a_video_in_the_input_folder(comfy, speech):
    for name in ("yolox_nano.onnx", "face_detection_yunet.onnx"):
        os.symlink(shared_path("models", name), comfy / "models" / "dwpose" / name)
    talk = conversation(speech, 2, 2.4, 41, size=(256, 144))
    save_video(comfy / "input" / "talk.mp4", talk.frames(), talk.mix)
    result = export_dataset("talk.mp4")
    out = comfy / "output" / "mit-covog" / "dataset"
    clips = sorted(p.name for p in out.iterdir() if p.is_dir() and not p.name.startswith("."))
    assert clips and all(name.startswith("input_talk_") for name in clips)
    assert result.result[0].startswith(f"1 videos annotated, 0 failed, 0 already done; {len(clips)} clips -> {out}")


def test_track_people_loads_models_only_from_the_models_folder(comfy, tiny_models):
    from nodes.vision_nodes import DetectPeople

    images = torch.zeros(2, 64, 96, 3)
    with pytest.raises(ValueError, match=f"detector '{tiny_models['detector']}' is neither a known model"):
        DetectPeople.execute(images, 25.0, str(tiny_models["detector"]), 0.5, "cpu", False)
    os.symlink(tiny_models["detector"], comfy / "models" / "dwpose" / "tiny_yolox.onnx")
    detections, = DetectPeople.execute(images, 25.0, "tiny_yolox.onnx", 0.5, "cpu", False)
    assert (detections.width, detections.height, len(detections.frames)) == (96, 64, 2)


def test_load_covog_loads_only_folders_under_models_covog(comfy, tmp_path):
    from nodes.covog_nodes import LoadCovOG

    model = CovOGModel.random("tiny", seed=2)
    elsewhere = model.save(tmp_path / "elsewhere")
    model.save(comfy / "models" / "covog" / "tiny")
    for name in (str(elsewhere), "../../../elsewhere", "..", ""):
        with pytest.raises(FileNotFoundError, match=f"model folder {name!r} not found under models/covog"):
            LoadCovOG.execute(name, "fp32")
    loaded, = LoadCovOG.execute("tiny", "fp32")
    assert torch.equal(loaded.vae.state_dict()["decoder.conv_out.bias"], model.vae.state_dict()["decoder.conv_out.bias"])


def test_synthetic_conversation_reads_speech_only_from_comfyuis_folders(comfy):
    from nodes.conversation_nodes import SyntheticConversation

    speech = str(shared_path("speech", "librispeech_test-other"))
    with pytest.raises(ValueError, match=f"speech_folder '{speech}' is outside ComfyUI's input and output folders"):
        SyntheticConversation.execute(2, 1.0, 0, 64, 64, 25.0, 0.0, False, speech)
    os.symlink(speech, comfy / "input" / "linked")  # a link out of input/ is followed to where it points: refused
    with pytest.raises(ValueError, match="speech_folder 'linked' is outside ComfyUI's input and output folders"):
        SyntheticConversation.execute(2, 1.0, 0, 64, 64, 25.0, 0.0, False, "linked")
    for voice in ("1688", "3080"):
        shutil.copytree(Path(speech) / voice, comfy / "input" / "speech" / voice)
    frames, *_ = SyntheticConversation.execute(2, 1.0, 0, 64, 64, 25.0, 0.0, False, "speech")
    assert frames.shape == (25, 64, 64, 3) and np.isfinite(frames.numpy()).all()
