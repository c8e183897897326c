"""The CovOG nodes as ComfyUI calls them (outside ComfyUI: CPU, no progress bar), on a tiny random model: what they
hand the sampler person by person, and what they give back."""

import copy
import sys

import numpy as np
import pytest
import torch
from conftest import PACK_ROOT
from tiny_covog import perturb

from covog.models.encoders import audio_features
from covog.models.model import CovOGModel
from mit_annotator.core.records import SpeakingActivity
from mit_annotator.synthetic import ConversationSpec, synthesize_conversation

# the pack's `nodes` package, run in this process (comfy_host runs the other nodes in a subprocess)
sys.path.insert(0, str(PACK_ROOT))
from nodes import covog_nodes  # noqa: E402
from nodes.comfy_bridge import audio_to_comfy, frames_to_image  # noqa: E402
from nodes.covog_nodes import GenerateConversation, LoadCovOG  # noqa: E402

SETTINGS = dict(steps=1, cfg=2.0, seed=3, window=16, overlap=4, width=128, height=64)


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    folder = perturb(CovOGModel.random("tiny")).save(tmp_path_factory.mktemp("models") / "tiny_covog")
    return LoadCovOG.execute(str(folder), "auto")[0]


@pytest.fixture(scope="module")
def conversation(speech):
    """1.2 s, two people; person 1 speaks for most of it, person 0 listens."""
    c = synthesize_conversation(ConversationSpec(num_people=2, seconds=1.2, width=256, height=128, seed=4), speech)
    assert np.abs(c.person_audio[1]).max() > 0.1 and not c.person_audio[0].any()
    return c


def inputs(c, **changes):
    reference = frames_to_image(next(iter(c.frames()))[None])
    return {**dict(reference=reference, tracks=c.tracks, audio=audio_to_comfy(c.mix, 16000), speaking=c.speaking),
            **changes}


def own_audio(c, order=(0, 1)):
    return {f"person_{k + 1}_audio": audio_to_comfy(c.person_audio[p], 16000) for k, p in enumerate(order)}


def stereo_48k(samples, extra_seconds=0.5):
    """The conversation's audio as ComfyUI usually carries it: 48 kHz stereo (the channels differ), and longer than
    the poses."""
    from scipy.signal import resample_poly

    left = resample_poly(np.pad(samples, (0, int(extra_seconds * 16000))), 3, 1).astype(np.float32)
    return audio_to_comfy(np.stack([left, 0.5 * left]), 48000)


@pytest.fixture(scope="module")
def made(model, conversation):
    """One real run with the mixed audio (48 kHz stereo), shared by the tests that compare against it."""
    return GenerateConversation.execute(model, **inputs(conversation, audio=stereo_48k(conversation.mix)), **SETTINGS)


def test_generate_a_conversation_video(model, conversation, made):
    frames, audio, fps = made
    assert frames.shape == (conversation.tracks.num_frames, 64, 128, 3) and frames.dtype == torch.float32
    assert 0 <= frames.min() and frames.max() <= 1 and frames.std() > 0.01
    assert fps == 25.0
    # the AUDIO out is the AUDIO in (48 kHz stereo, not the 16 kHz mono the model reads), cut to the video's length:
    # 30 frames at 25 fps, 1.2 s, 57600 samples
    given = stereo_48k(conversation.mix)
    assert audio["sample_rate"] == 48000 and audio["waveform"].shape == (1, 2, 57600)
    torch.testing.assert_close(audio["waveform"], given["waveform"][..., :57600], rtol=0, atol=0)
    assert model.device.type == "cpu"  # back on the offload device after the run


def test_the_frames_follow_the_poses(model, conversation, made):
    """Person 1's skeleton drawn 12 px higher from frame 1 on (box and face unchanged; the reference frame 0, which
    the pose adaptor reads, unchanged): the frames change. The tiny model's pose guider is weak, so the change is
    small; the sampler is deterministic, so any change comes from the poses."""
    moved = copy.deepcopy(conversation.tracks)
    moved.tracks[1].keypoints[1:, :, 1] -= 12
    frames, _, _ = GenerateConversation.execute(
        model, **inputs(conversation, tracks=moved, audio=stereo_48k(conversation.mix)), **SETTINGS)
    assert (frames - made[0]).abs().max() > 1e-6


def test_per_person_audio_needs_everyones(model, conversation, made):
    """Each face its own voice: person 0 reads silence, not person 1's speech as with the mixed track, so the frames
    differ from the mixed-audio run."""
    frames, audio, _ = GenerateConversation.execute(
        model, **inputs(conversation, audio=stereo_48k(conversation.mix)), **SETTINGS, **own_audio(conversation))
    assert len(frames) == conversation.tracks.num_frames
    assert (frames - made[0]).abs().max() > 1e-4
    torch.testing.assert_close(audio["waveform"], made[1]["waveform"], rtol=0, atol=0)  # the mix still goes out
    with pytest.raises(ValueError, match="give every person's own audio"):
        GenerateConversation.execute(model, **inputs(conversation), **SETTINGS,
                                    person_1_audio=own_audio(conversation)["person_1_audio"])


class Recorder:
    """Stands in for the sampler: keeps the conditions and returns a recognisable video, (frames, 3, H, W)."""

    def __call__(self, model, conditions, settings, progress=None):
        self.conditions, self.settings = conditions, settings
        frames, _, _, height, width = conditions.poses.shape
        self.video = torch.rand(frames, 3, height, width, generator=torch.Generator().manual_seed(0))
        return self.video


def test_each_person_gets_their_own_audio_score_face_and_pose(model, conversation, monkeypatch):
    """What the node hands the sampler, person by person, when the speaking scores list the people in another order
    than the tracks and each person has their own audio: person p (the tracks' order) gets person p's audio features,
    speaking scores, face mask and skeleton."""
    c = conversation
    recorder = Recorder()
    monkeypatch.setattr(covog_nodes, "generate", recorder)
    reversed_speaking = SpeakingActivity(c.speaking.fps, c.speaking.num_frames, c.speaking.people[::-1])
    frames, _, fps = GenerateConversation.execute(model, **inputs(c, speaking=reversed_speaking), **SETTINGS,
                                                 **own_audio(c))
    got = recorder.conditions
    torch.testing.assert_close(frames, recorder.video.permute(0, 2, 3, 1))  # the sampler's video, as an IMAGE
    assert (recorder.settings.steps, recorder.settings.guidance, recorder.settings.seed) == (1, 2.0, 3)
    num_frames = c.tracks.num_frames
    for p, track in enumerate(c.tracks.tracks):
        own = audio_features(model.audio_encoder, c.person_audio[p], num_frames, c.tracks.fps)
        torch.testing.assert_close(got.audio_features[p], own)
        np.testing.assert_array_equal(got.speaking_scores[:, p].numpy(), c.speaking.person(track.track_id).scores)
        for frame in (0, num_frames // 2, num_frames - 1):
            x1, y1, x2, y2 = track.face_boxes[track.row_of(frame)] / 2  # 256x128 -> 128x64
            mask = got.face_masks[2][frame, p]  # 1/2 of the 16x8 latent: 16x16-pixel cells
            rows, cols = np.nonzero(mask.numpy())
            assert rows.min() == int(y1 // 16) and rows.max() == int(np.ceil(y2 / 16)) - 1
            assert cols.min() == int(x1 // 16) and cols.max() == int(np.ceil(x2 / 16)) - 1
            drawn = got.poses[frame][p].sum(dim=0).nonzero()  # (row, col) of the skeleton's pixels
            bx1, by1, bx2, by2 = track.boxes[track.row_of(frame)] / 2
            assert len(drawn) > 20 and bx1 - 1 <= drawn[:, 1].min() and drawn[:, 1].max() <= bx2 + 1
            assert by1 - 1 <= drawn[:, 0].min() and drawn[:, 0].max() <= by2 + 1
    assert got.speaking_scores[:, 1].max() > 0 and got.speaking_scores[:, 0].max() < 0  # person 1 speaks
    reference = (frames_to_image(next(iter(c.frames()))[None])[0, ::2, ::2]).permute(2, 0, 1)
    assert (got.reference - reference).abs().mean() < 0.02  # the first image, resized to 128x64


def test_bad_node_input(model, conversation):
    args = inputs(conversation)
    with pytest.raises(ValueError, match="reference must be an RGB IMAGE"):
        GenerateConversation.execute(model, **{**args, "reference": torch.zeros(64, 128, 3)}, **SETTINGS)
    with pytest.raises(ValueError, match="overlap < window"):
        GenerateConversation.execute(model, **args, **{**SETTINGS, "overlap": 16})
    with pytest.raises(FileNotFoundError, match="model folder 'absent' not found under models/covog"):
        LoadCovOG.execute("absent", "auto")
