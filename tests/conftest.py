import os
import shutil
import socket
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

PACK_ROOT = Path(__file__).resolve().parents[1]
SHARED = PACK_ROOT.parent / "shared"
SHARED_DATA = SHARED / "data"
LIBRISPEECH = SHARED_DATA / "speech" / "librispeech_test-other"


@pytest.fixture(autouse=True, scope="session")
def no_network():
    """Tests run offline: any attempt to open a network connection fails the test that made it."""
    original = socket.socket.connect

    def refuse(self, address):
        if self.family in (socket.AF_INET, socket.AF_INET6):
            raise RuntimeError(f"a test tried to reach the network: {address}")
        return original(self, address)

    socket.socket.connect = refuse
    yield
    socket.socket.connect = original


@pytest.fixture(scope="session")
def speech():
    """The shared LibriSpeech sample (10 real speakers)."""
    from mit_annotator.synthetic import LibriSpeechSource

    if not LIBRISPEECH.is_dir():
        pytest.skip(f"shared speech data not found at {LIBRISPEECH}")
    return LibriSpeechSource(LIBRISPEECH)


@pytest.fixture(scope="session")
def espeak():
    from mit_annotator.synthetic import EspeakSource

    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed")
    return EspeakSource()


@pytest.fixture(scope="session")
def small_conversation(speech):
    """Three people, an off-screen voice and overlaps, small frames: shared by several test modules."""
    from mit_annotator.synthetic import ConversationSpec, synthesize_conversation

    spec = ConversationSpec(num_people=3, seconds=9.0, width=256, height=144, seed=3, offscreen_voice=True,
                            overlap_probability=0.3)
    return synthesize_conversation(spec, speech)


@pytest.fixture(scope="session")
def saved_conversation(small_conversation, tmp_path_factory):
    folder = tmp_path_factory.mktemp("conversation")
    paths = small_conversation.save(folder)
    return small_conversation, paths


MODELS = SHARED_DATA / "models"


@pytest.fixture(scope="session")
def yolox_nano():
    path = MODELS / "yolox_nano.onnx"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    return path


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory):
    """Tiny ONNX exports with the real signatures: detector (416 and 320 input), pose (dynamic and fixed batch)."""
    from tiny_onnx import export_detector, export_pose

    folder = tmp_path_factory.mktemp("tiny_models")
    return {
        "detector": export_detector(folder / "tiny_yolox.onnx"),
        "detector_320": export_detector(folder / "tiny_yolox_320.onnx", size=320),
        "pose": export_pose(folder / "tiny_pose.onnx"),
        "pose_fixed": export_pose(folder / "tiny_pose_fixed.onnx", dynamic_batch=False),
    }
