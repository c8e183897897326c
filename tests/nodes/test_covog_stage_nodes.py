"""The CovOG stage nodes (Encode Reference, Encode Audio, Render Poses, CovOG Sampler, Decode) on a tiny random
model: chained, they make exactly the frames the one-click node makes; ComfyUI's own audio encoder output gives the
features the model's wav2vec2 gives; the inputs a user can get wrong give a clear message."""

import sys

import numpy as np
import pytest
import torch
from conftest import PACK_ROOT
from test_covog_nodes import SETTINGS, conversation, inputs, model, own_audio  # noqa: F401  (fixtures)

from covog.models.encoders import audio_features

sys.path.insert(0, str(PACK_ROOT))
from nodes.comfy_bridge import audio_to_comfy  # noqa: E402
from nodes.covog_nodes import GenerateConversation  # noqa: E402
from nodes.covog_stage_nodes import CovOGDecode, CovOGSampler, EncodeAudio, EncodeReference, RenderPoses  # noqa: E402

SIZE = dict(width=SETTINGS["width"], height=SETTINGS["height"])
SAMPLING = {k: SETTINGS[k] for k in ("steps", "cfg", "seed", "window", "overlap")}


def stages(model, c, **audio):
    args = inputs(c)
    reference, = EncodeReference.execute(model, args["reference"], **SIZE)
    features, = EncodeAudio.execute(model, c.tracks, **(audio or {"audio": args["audio"]}))
    poses, preview = RenderPoses.execute(c.tracks, reference, 64)
    latent, = CovOGSampler.execute(model, reference, poses, features, c.speaking, **SAMPLING)
    frames, = CovOGDecode.execute(model, latent, 8)
    return dict(reference=reference, features=features, poses=poses, preview=preview, latent=latent, frames=frames)


@pytest.fixture(scope="module")
def chained(model, conversation):
    return stages(model, conversation)


def test_the_stages_make_the_one_click_nodes_frames(model, conversation, chained):
    """30 frames in windows of 16 overlapping by 4: three windows (from frames 0, 12 and 14), each re-encoding the
    last one's frames and blended into them, as covog.pipeline.sampler.generate does."""
    c = conversation
    frames, _, _ = GenerateConversation.execute(model, **inputs(c), **SETTINGS)
    assert chained["frames"].shape == frames.shape == (30, 64, 128, 3)
    torch.testing.assert_close(chained["frames"], frames, rtol=0, atol=1e-5)
    latent = chained["latent"]
    assert [start for start, _ in latent["covog_windows"]] == [0, 12, 14]
    assert latent["samples"].shape == (30, 4, 8, 16)  # one latent per frame, VAE scale (ComfyUI's LATENT)
    windows = [w[0].permute(1, 0, 2, 3) / model.vae.config.scaling_factor for _, w in latent["covog_windows"]]
    torch.testing.assert_close(latent["samples"][:16], windows[0])
    torch.testing.assert_close(latent["samples"][16:28], windows[1][4:])  # the new frames of each window
    torch.testing.assert_close(latent["samples"][28:], windows[2][14:])
    # a plain frames latent (no windows) decodes frame by frame
    plain, = CovOGDecode.execute(model, {"samples": latent["samples"][:16]}, 8)
    first, = CovOGDecode.execute(model, {"samples": latent["samples"][:16], "covog_windows": [
        latent["covog_windows"][0]]}, 8)
    torch.testing.assert_close(plain, first, rtol=0, atol=1e-5)


def test_render_poses_preview_puts_each_person_in_their_panel(conversation, chained):
    c, preview = conversation, chained["preview"]
    assert preview.shape == (30, 32, 128, 3)  # two panels of 64x32
    for p, track in enumerate(c.tracks.tracks):
        x1, _, x2, _ = track.boxes[0] / 4  # 256 px wide tracks -> a 64 px panel
        drawn = preview[0, :, 64 * p:64 * (p + 1)].sum(dim=-1).sum(dim=0).nonzero()[:, 0]
        assert x1 - 2 <= drawn.min() and drawn.max() <= x2 + 2


def comfy_encoder_output(model, samples):
    """What ComfyUI's Audio Encoder Encode gives for wav2vec2: every layer's hidden states, batch first."""
    with torch.no_grad():
        hidden = model.audio_encoder(torch.from_numpy(samples)[None], output_hidden_states=True).hidden_states
    return {"encoded_audio": hidden[-1], "encoded_audio_all_layers": hidden, "audio_samples": len(samples)}


def test_encode_audio_reads_comfyuis_audio_encoder_output(model, conversation):
    c = conversation
    seconds = c.tracks.num_frames / c.tracks.fps
    samples = c.mix[:int(round(seconds * 16000))]
    normalised = ((samples - samples.mean()) / np.sqrt(samples.var() + 1e-7)).astype(np.float32)
    features, = EncodeAudio.execute(model, c.tracks, audio_encoder_output=comfy_encoder_output(model, normalised))
    torch.testing.assert_close(features["features"], audio_features(model.audio_encoder, samples, 30, 25.0))
    # longer audio is cut to the video, as from AUDIO
    longer = np.concatenate([normalised, normalised])
    encoded = comfy_encoder_output(model, longer)
    cut, = EncodeAudio.execute(model, c.tracks, audio_encoder_output=encoded)
    assert cut["features"].shape == features["features"].shape
    steps = torch.stack([h[0] for h in encoded["encoded_audio_all_layers"][1:]])  # (layers, steps, width)
    keep = round(len(normalised) * steps.shape[1] / len(longer))  # the steps of the video's 1.2 s
    assert abs(2 * keep - steps.shape[1]) <= 1  # half of the doubled recording
    torch.testing.assert_close(cut["features"][0], steps[:, 0])
    torch.testing.assert_close(cut["features"][29], steps[:, keep - 1])  # the last frame: 1.2 s, not 2.4 s
    # per-person audio: one feature track per person, in the tracks' order
    own, = EncodeAudio.execute(model, c.tracks, **own_audio(c))
    assert own["features"].shape == (2, *features["features"].shape)
    torch.testing.assert_close(own["features"][1], audio_features(model.audio_encoder, c.person_audio[1], 30, 25.0))


def test_bad_input_gives_a_clear_message(model, conversation):
    c = conversation
    short = audio_to_comfy(c.mix[:8000], 16000)
    with pytest.raises(ValueError, match=r"the audio lasts 0\.50 s but the video 1\.20 s"):
        EncodeAudio.execute(model, c.tracks, audio=short)
    whisper = {"encoded_audio_all_layers": [torch.zeros(1, 60, 1280)] * 33, "audio_samples": 19200}
    with pytest.raises(ValueError, match="holds 32 layers of width 1280; this CovOG model reads wav2vec2's"):
        EncodeAudio.execute(model, c.tracks, audio_encoder_output=whisper)
    with pytest.raises(ValueError, match="per-person audio given for people \\[2\\]; the tracks hold 2 people"):
        EncodeAudio.execute(model, c.tracks, person_2_audio=short)
    from mit_annotator.core.records import VideoTracks

    nobody = VideoTracks(256, 128, 25.0, 30, [], [(0, 30)])
    with pytest.raises(ValueError, match="no people in the tracks"):
        EncodeAudio.execute(model, nobody, audio=short)
    reference, = EncodeReference.execute(model, inputs(c)["reference"], **SIZE)
    with pytest.raises(ValueError, match="no people in the tracks"):
        RenderPoses.execute(nobody, reference, 64)
