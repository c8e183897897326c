import os
import shutil
import socket
from pathlib import Path

import pytest

from comfy_api_stand_in import install as install_comfy_api

os.environ.setdefault("HF_HUB_OFFLINE", "1")

PACK_ROOT = Path(__file__).resolve().parents[1]
SHARED = PACK_ROOT.parent / "shared"
# The real files the tests use live beside the checkout, in ../shared/data; MIT_SHARED_DATA points elsewhere (or,
# set to a folder that does not exist, hides them: how the rule below is checked).
SHARED_DATA = Path(os.environ.get("MIT_SHARED_DATA") or SHARED / "data")
LIBRISPEECH = SHARED_DATA / "speech" / "librispeech_test-other"

# Under CI (CI=true, as CI services set it) a test that needs a real file fails instead of skipping: a run without
# the data must not go green. Outside CI such tests skip and name the file they need.
IN_CI = os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")
REQUIRED_IN_CI = [  # what the suite reads from SHARED_DATA; CI refuses to start when any is missing
    LIBRISPEECH,
    SHARED_DATA / "diarization" / "pyannote_sample" / "sample.wav",
    SHARED_DATA / "diarization" / "pyannote_sample" / "sample.rttm",
    SHARED_DATA / "diarization" / "pyaudioanalysis" / "diarizationExample.wav",
    SHARED_DATA / "diarization" / "pyaudioanalysis" / "diarizationExample2.wav",
    SHARED_DATA / "models" / "yolox_nano.onnx",
    SHARED_DATA / "models" / "face_detection_yunet.onnx",
    SHARED_DATA / "images" / "rtmlib_demo.jpg",
    SHARED_DATA / "checkpoint-layouts",
    SHARED_DATA / "models" / "lr_asd" / "pretrain_AVA.model",
    SHARED_DATA / "models" / "lr_asd" / "finetuning_TalkSet.model",
    SHARED_DATA / "video" / "interact_11.mp4",
    SHARED_DATA / "video" / "interact_11.turns.json",
    SHARED_DATA / "video" / "talking_head_1.mp4",
    SHARED_DATA / "models" / "pyannote_segmentation" / "pytorch_model.bin",
]


def missing_data_message(what: str) -> str:
    return (f"CI=true but shared test data is missing: {what}. The tests need ../shared/data beside the checkout "
            f"({SHARED_DATA}; MIT_SHARED_DATA names another folder); without it they would skip, and CI would pass "
            "without running anything that needs real files.")


def pytest_configure(config):
    install_comfy_api()  # the nodes are written on ComfyUI's V3 API; before any test module imports them
    if IN_CI:
        if not SHARED_DATA.is_dir():
            raise pytest.UsageError(missing_data_message(f"{SHARED_DATA} does not exist"))
        missing = [str(p) for p in REQUIRED_IN_CI if not p.exists()]
        if missing:
            raise pytest.UsageError(missing_data_message(", ".join(missing)))


def shared_path(*parts: str) -> Path:
    """A file or folder under SHARED_DATA; when it is missing the calling test skips naming it (fails under CI)."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        if IN_CI:
            pytest.fail(missing_data_message(str(path)), pytrace=False)
        pytest.skip(f"needs {path} (shared test data: ../shared/data beside the checkout)")
    return path


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """Under CI, a test that skipped because a file under SHARED_DATA is missing (its reason names the path) fails."""
    report = yield
    if IN_CI and report.skipped and isinstance(report.longrepr, tuple) and str(SHARED_DATA) in report.longrepr[2]:
        report.outcome = "failed"
        report.longrepr = missing_data_message(report.longrepr[2].removeprefix("Skipped: "))
    return report


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

    return LibriSpeechSource(shared_path("speech", "librispeech_test-other"))


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
    return shared_path("models", "yolox_nano.onnx")


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory):
    """Tiny ONNX exports with the real signatures: detector (416 and 320 input), pose (dynamic and fixed batch)."""
    from tiny_onnx import export_detector, export_pose

    folder = tmp_path_factory.mktemp("tiny_models")
    return {
        "detector": export_detector(folder / "tiny_yolox.onnx"),
        "detector_320": export_detector(folder / "tiny_yolox_320.onnx", size=320),
        "detector_fixed_size": export_detector(folder / "tiny_yolox_fixed.onnx", any_size=False),
        "pose": export_pose(folder / "tiny_pose.onnx"),
        "pose_fixed": export_pose(folder / "tiny_pose_fixed.onnx", dynamic_batch=False),
    }
