"""The CovOG nodes as ComfyUI calls them (outside ComfyUI: CPU, no progress bar), on a tiny random model."""

import sys

import pytest
import torch
from conftest import PACK_ROOT
from test_covog_model import perturb

from covog.model import CovOGModel
from mit_annotator.synthetic import ConversationSpec, synthesize_conversation

# the pack's `nodes` package, run in this process (comfy_host runs the other nodes in a subprocess)
sys.path.insert(0, str(PACK_ROOT))
from nodes.comfy_bridge import audio_to_comfy, frames_to_image  # noqa: E402
from nodes.covog_nodes import GenerateConversation, LoadCovOG  # noqa: E402

SETTINGS = dict(steps=1, cfg=2.0, seed=3, window=16, overlap=4, width=128, height=64)


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    folder = perturb(CovOGModel.random("tiny")).save(tmp_path_factory.mktemp("models") / "tiny_covog")
    return LoadCovOG().load(str(folder), "auto")[0]


@pytest.fixture(scope="module")
def conversation(speech):
    return synthesize_conversation(ConversationSpec(num_people=2, seconds=1.2, width=256, height=128, seed=4), speech)


def inputs(c):
    reference = frames_to_image(next(iter(c.frames()))[None])
    return dict(reference=reference, tracks=c.tracks, audio=audio_to_comfy(c.mix, 16000), speaking=c.speaking)


def test_generate_a_conversation_video(model, conversation):
    frames, audio, fps = GenerateConversation().make(model, **inputs(conversation), **SETTINGS)
    assert frames.shape == (conversation.tracks.num_frames, 64, 128, 3) and frames.dtype == torch.float32
    assert 0 <= frames.min() and frames.max() <= 1
    assert fps == 25.0 and audio["sample_rate"] == 16000
    assert abs(audio["waveform"].shape[-1] - 16000 * len(frames) / fps) <= 1
    assert model.device.type == "cpu"  # back on the offload device after the run


def test_per_person_audio_needs_everyones(model, conversation):
    own = {f"person_{k + 1}_audio": audio_to_comfy(a, 16000) for k, a in enumerate(conversation.person_audio)}
    frames, _, _ = GenerateConversation().make(model, **inputs(conversation), **SETTINGS, **own)
    assert len(frames) == conversation.tracks.num_frames
    with pytest.raises(ValueError, match="give every person's own audio"):
        GenerateConversation().make(model, **inputs(conversation), **SETTINGS, person_1_audio=own["person_1_audio"])


def test_bad_node_input(model, conversation):
    args = inputs(conversation)
    with pytest.raises(ValueError, match="reference must be an RGB IMAGE"):
        GenerateConversation().make(model, **{**args, "reference": torch.zeros(64, 128, 3)}, **SETTINGS)
    with pytest.raises(ValueError, match="overlap < window"):
        GenerateConversation().make(model, **args, **{**SETTINGS, "overlap": 16})
    with pytest.raises(FileNotFoundError, match="model folder 'absent' not found under models/covog"):
        LoadCovOG().load("absent", "auto")
