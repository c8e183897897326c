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
