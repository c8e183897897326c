"""CovOG's networks on tiny random configs: the audio driver, reference attention and the denoising pass."""

import json

import pytest
import torch
import torch.nn.functional as F
from conftest import SHARED_DATA
from tiny_covog import perturb

from covog.models import reference_attention
from covog.models.audio_driver import (
    DOWN_FACTORS,
    FACE_MASK_FACTORS,
    UP_FACTORS,
    AudioConditioning,
    InteractiveAudioDriver,
)
from covog.models.denoiser import denoise
from covog.models.model import CovOGModel, ModelFolderError

LAYOUTS = SHARED_DATA / "checkpoint-layouts"
FRAMES, PEOPLE, LATENT = 3, 2, (8, 16)  # latent size: 64x128 pixels


@pytest.fixture(scope="module")
def model():
    return perturb(CovOGModel.random("tiny"))


def conditioning(model, rows=FRAMES, people=PEOPLE, seed=0, per_person=False):
    g = torch.Generator().manual_seed(seed)
    c = model.audio_driver.config
    shape = (rows, people, c.context_tokens, c.audio_dim) if per_person else (rows, c.context_tokens, c.audio_dim)
    masks = {}
    for factor in FACE_MASK_FACTORS:
        h, w = LATENT[0] // factor, LATENT[1] // factor
        mask = torch.zeros(rows, people, h, w)
        for p in range(people):  # person p's face: a column band of their own
            mask[:, p, :, p * w // people:(p + 1) * w // people - (1 if w // people > 1 else 0)] = 1
        masks[factor] = mask
    return AudioConditioning(tokens=torch.randn(shape, generator=g), scores=torch.randn(rows, people, generator=g) * 3,
                             face_masks=masks)


def block_inputs(model, index, down=True, seed=1):
    channels = (model.audio_driver.config.down_channels if down else model.audio_driver.config.up_channels)[index]
    factor = (DOWN_FACTORS if down else UP_FACTORS)[index]
    return torch.randn(FRAMES, channels, LATENT[0] // factor, LATENT[1] // factor,
                       generator=torch.Generator().manual_seed(seed))


def run_block(model, index, down, features, audio):
    with torch.no_grad():
        if down:
            return model.audio_driver.after_down_block(index, features, audio)
        return model.audio_driver.after_up_block(index, features, audio)


def test_the_audio_driver_has_covogs_checkpoint_layout():
    path = LAYOUTS / "covog_stage2_audio_modules_only.json"
    if not path.is_file():
        pytest.skip("checkpoint layouts missing")
    with torch.device("meta"):
        driver = InteractiveAudioDriver()
    assert {k: list(v.shape) for k, v in driver.state_dict().items()} == json.loads(path.read_text())


def test_audio_projection_shapes(model):
    c = model.audio_driver.config
    with torch.no_grad():
        tokens = model.audio_driver.project(torch.randn(5, c.feature_layers, c.feature_dim))
        per_person = model.audio_driver.project(torch.randn(2, 5, c.feature_layers, c.feature_dim))
    assert tokens.shape == (5, c.context_tokens, c.audio_dim)
    assert per_person.shape == (2, 5, c.context_tokens, c.audio_dim)
    with pytest.raises(ValueError, match="audio features must end in"):
        model.audio_driver.project(torch.randn(5, 12, 768))


BLOCKS = [(i, True) for i in range(3)] + [(i, False) for i in range(2)]


@pytest.mark.parametrize("index, down", BLOCKS)
def test_one_persons_score_changes_each_block_only_inside_their_face(model, index, down):
    features, audio = block_inputs(model, index, down), conditioning(model)
    factor = (DOWN_FACTORS if down else UP_FACTORS)[index]
    changed = conditioning(model)
    changed.scores[:, 0] = changed.scores[:, 0] + 2.0
    difference = run_block(model, index, down, features, changed) - run_block(model, index, down, features, audio)
    inside = audio.face_masks[factor][:, 0].bool()[:, None].expand_as(difference)
    assert difference[~inside].abs().max() == 0  # exactly nothing outside person 0's face
    assert difference[inside].abs().mean() > 1e-4


@pytest.mark.parametrize("index, down", BLOCKS)
def test_one_persons_own_audio_changes_each_block_only_inside_their_face(model, index, down):
    features, audio = block_inputs(model, index, down), conditioning(model, per_person=True)
    factor = (DOWN_FACTORS if down else UP_FACTORS)[index]
    changed = conditioning(model, per_person=True)
    changed.tokens[:, 1] = torch.randn_like(changed.tokens[:, 1])
    difference = run_block(model, index, down, features, changed) - run_block(model, index, down, features, audio)
    inside = audio.face_masks[factor][:, 1].bool()[:, None].expand_as(difference)
    assert difference[~inside].abs().max() == 0
    assert difference[inside].abs().mean() > 1e-4


def test_the_mixed_track_behaves_as_the_paper(model):
    """One shared track, or that track given to every person: the same result."""
    features, shared = block_inputs(model, 0), conditioning(model)
    copied = AudioConditioning(shared.tokens[:, None].expand(-1, PEOPLE, -1, -1), shared.scores, shared.face_masks)
    torch.testing.assert_close(run_block(model, 0, True, features, shared), run_block(model, 0, True, features, copied))


@pytest.mark.parametrize("index, down", BLOCKS)
def test_a_fresh_audio_block_is_exactly_the_identity(index, down):
    """Before stage 2 trains it, an audio block changes nothing at all (the published init changed a block's
    features by 55-58%: its norm1 replaces the residual, and its feed-forward and proj_out add to it)."""
    fresh = CovOGModel.random("tiny")
    fresh.audio_driver.mark_trained()  # run it, as stage 2 does from its first step
    features = block_inputs(fresh, index, down)
    assert torch.equal(run_block(fresh, index, down, features, conditioning(fresh)), features)


def test_an_untrained_audio_driver_is_skipped():
    """A driver with random weights that were never trained (converted with --allow-random audio_driver) changes
    nothing, whatever its weights; the same weights marked trained do."""
    model = perturb(CovOGModel.random("tiny"), seed=3)
    untrained = InteractiveAudioDriver(**{**model.audio_driver.config, "trained": False})
    untrained.load_state_dict(model.audio_driver.state_dict())
    x, context = latents(), torch.randn(1, 1, model.denoising_unet.config.cross_attention_dim)
    with torch.no_grad():
        silent = denoise(model.denoising_unet, None, x, 300, context)
        skipped = denoise(model.denoising_unet, untrained, x, 300, context, audio=conditioning(model))
        driven = denoise(model.denoising_unet, model.audio_driver, x, 300, context, audio=conditioning(model))
    assert torch.equal(skipped, silent)
    assert (driven - silent).abs().mean() > 1e-4


def test_the_trained_flag_is_saved_with_the_model(tmp_path):
    fresh = CovOGModel.random("tiny")
    assert not CovOGModel.load(fresh.save(tmp_path / "fresh")).audio_driver.trained
    assert json.loads((tmp_path / "fresh" / "audio_driver" / "config.json").read_text())["trained"] is False
    fresh.audio_driver.mark_trained()
    assert CovOGModel.load(fresh.save(tmp_path / "trained")).audio_driver.trained


def test_face_masks_of_the_wrong_size_are_refused(model):
    audio = conditioning(model)
    audio.face_masks[2] = audio.face_masks[2][..., :-1]
    with pytest.raises(ValueError, match="face masks at 1/2 of the latent size"):
        run_block(model, 0, True, block_inputs(model, 0), audio)


def latents(batch=1, seed=2):
    return torch.randn(batch, 4, FRAMES, *LATENT, generator=torch.Generator().manual_seed(seed))


def test_the_denoising_pass_is_diffusers_unet_motion_model_plus_conditions(model):
    unet = model.denoising_unet
    x, context = latents(2), torch.randn(2, 1, unet.config.cross_attention_dim)
    with torch.no_grad():
        ours = denoise(unet, None, x, 500, context)
        theirs = unet(x, 500, context.repeat_interleave(FRAMES, dim=0)).sample
        posed = denoise(unet, None, x, 500, context, pose_features=torch.randn(2 * FRAMES, 32, *LATENT))
    assert ours.shape == x.shape
    torch.testing.assert_close(ours, theirs)
    assert (posed - ours).abs().mean() > 1e-4


def test_one_persons_audio_changes_the_final_output(model):
    """The published code never switched its audio module on; here, one person's speaking score changes the
    UNet's output, and the fresh (zero-initialised) driver would not."""
    x, context = latents(), torch.randn(1, 1, model.denoising_unet.config.cross_attention_dim)
    audio, changed = conditioning(model), conditioning(model)
    changed.scores[:, 1] = -changed.scores[:, 1]
    with torch.no_grad():
        base = denoise(model.denoising_unet, model.audio_driver, x, 300, context, audio=audio)
        moved = denoise(model.denoising_unet, model.audio_driver, x, 300, context, audio=changed)
        silent = denoise(model.denoising_unet, None, x, 300, context)
    assert (moved - base).abs().mean() > 1e-4
    assert (base - silent).abs().mean() > 1e-4


def test_audio_rows_must_match_the_frames(model):
    x, context = latents(), torch.randn(1, 1, model.denoising_unet.config.cross_attention_dim)
    with pytest.raises(ValueError, match="audio scores have 4 rows; the UNet runs 3"):
        audio = conditioning(model)
        audio.scores = torch.zeros(4, PEOPLE)
        denoise(model.denoising_unet, model.audio_driver, x, 300, context, audio=audio)


def reference_pass(model, seed=3):
    bank = reference_attention.attach(model.reference_unet, model.denoising_unet)
    g = torch.Generator().manual_seed(seed)
    context = torch.randn(1, 1, model.reference_unet.config.cross_attention_dim, generator=g)
    with torch.no_grad():
        model.reference_unet(torch.randn(1, 4, *LATENT, generator=g), 0, encoder_hidden_states=context)
    return bank, context


def test_reference_attention_reads_every_spatial_self_attention(model):
    bank, context = reference_pass(model)
    names = reference_attention.spatial_self_attention_names(model.denoising_unet)
    assert names and set(bank.tokens) == set(names)
    assert not any("motion_modules" in n for n in names)
    x = latents()
    with torch.no_grad():
        with_reference = denoise(model.denoising_unet, None, x, 400, context)
        bank.reading_rows = torch.zeros(FRAMES, dtype=torch.bool)
        without = denoise(model.denoising_unet, None, x, 400, context)
    bank.clear()
    assert (with_reference - without).abs().mean() > 1e-4


def test_rows_can_skip_the_reference(model):
    """A batch of [unconditional, conditional] rows: the first ignore the reference, as if it was not there."""
    bank, context = reference_pass(model)
    x = latents(2)
    contexts = torch.cat([torch.zeros_like(context), context])
    with torch.no_grad():
        bank.reading_rows = torch.arange(2 * FRAMES) >= FRAMES
        both = denoise(model.denoising_unet, None, x, 400, contexts)
        bank.reading_rows = None
        conditional = denoise(model.denoising_unet, None, x[1:], 400, context)
        bank.reading_rows = torch.zeros(FRAMES, dtype=torch.bool)
        unconditional = denoise(model.denoising_unet, None, x[:1], 400, torch.zeros_like(context))
    bank.clear()
    torch.testing.assert_close(both[1:], conditional, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(both[:1], unconditional, rtol=1e-4, atol=1e-5)


def test_the_referencenet_stops_once_the_last_read_self_attention_has_its_tokens(model):
    """The denoising UNet reads the ReferenceNet only at its self-attentions: what follows the last of them (the rest
    of its last transformer block, conv_norm_out, conv_out) is not run; the tokens are those of a whole pass."""
    bank = reference_attention.attach(model.reference_unet, model.denoising_unet)
    unet = model.reference_unet
    tail = unet.up_blocks[-1].attentions[-1].transformer_blocks[-1]
    ran = []
    hooks = [module.register_forward_hook(lambda *args, name=name: ran.append(name))
             for name, module in (("attn2", tail.attn2), ("ff", tail.ff), ("conv_out", unet.conv_out))]
    g = torch.Generator().manual_seed(5)
    latent, pose = torch.randn(1, 4, *LATENT, generator=g), torch.randn(1, 32, *LATENT, generator=g)
    context = torch.randn(1, 1, unet.config.cross_attention_dim, generator=g)
    with torch.no_grad():
        reference_attention.write_reference(unet, latent, context, pose)
        stopped = dict(bank.tokens)
        assert ran == [] and set(stopped) == set(reference_attention.spatial_self_attention_names(unet))
        bank.clear()
        adding = unet.conv_in.register_forward_hook(lambda module, args, out: out + pose)
        unet(latent, 0, encoder_hidden_states=context)
        adding.remove()
    for hook in hooks:
        hook.remove()
    assert sorted(ran) == ["attn2", "conv_out", "ff"]
    assert all(torch.equal(stopped[name], bank.tokens[name]) for name in stopped)
    bank.clear()


def original_motion_module(module, x, frames):
    """AnimateDiff's TemporalTransformer3DModel (as Moore's and CovOG's motion modules), written out with the weights
    of a diffusers motion module: (batch * frames, c, h, w) group-normalised frame by frame, attention over frames."""
    rows, c, h, w = x.shape
    batch = rows // frames
    norm = module.norm
    hidden = F.group_norm(x, norm.num_groups, norm.weight, norm.bias, norm.eps)  # "b c f h w -> (b f) c h w" first
    hidden = hidden.reshape(batch, frames, c, h, w).permute(0, 3, 4, 1, 2).reshape(batch * h * w, frames, c)
    hidden = module.proj_in(hidden)
    for block in module.transformer_blocks:
        hidden = block(hidden)
    hidden = module.proj_out(hidden)
    return hidden.reshape(batch, h, w, frames, c).permute(0, 3, 4, 1, 2).reshape(rows, c, h, w) + x


def test_motion_modules_normalise_each_frame_as_the_original(model, tmp_path):
    """diffusers' AnimateDiffTransformer3D normalises over all frames jointly; the original, whose weights these are,
    frame by frame. Frames of different brightness must not share statistics, in built and in loaded models."""
    g = torch.Generator().manual_seed(6)
    scale = torch.tensor([0.5, 1.0, 3.0, 8.0]).repeat(2)[:, None, None, None]
    loaded = CovOGModel.load(model.save(tmp_path / "covog"))
    for unet in (model.denoising_unet, loaded.denoising_unet):
        module = unet.down_blocks[1].motion_modules[0]
        x = torch.randn(8, module.in_channels, 4, 8, generator=g) * scale + scale
        with torch.no_grad():
            ours, original = module(x, num_frames=4), original_motion_module(module, x, 4)
        torch.testing.assert_close(ours, original, rtol=1e-5, atol=1e-5)
        assert (ours - x).abs().mean() > 1e-3  # the motion module is not the identity here


def test_model_folder_round_trip(model, tmp_path):
    folder = model.save(tmp_path / "covog")
    assert list(tmp_path.iterdir()) == [folder]  # no partial or replaced folder left beside it
    loaded = CovOGModel.load(folder)
    for name, module in model.modules.items():
        theirs = getattr(loaded, name).state_dict()
        assert all(torch.equal(tensor, theirs[key]) for key, tensor in module.state_dict().items()), name
    assert loaded.scheduler.config.prediction_type == "v_prediction"
    assert loaded.scheduler.config.rescale_betas_zero_snr and loaded.scheduler.config.timestep_spacing == "trailing"
    assert not list(folder.rglob("*.bin")) and not list(folder.rglob("*.pth"))  # safetensors only


def test_model_folder_errors(model, tmp_path):
    with pytest.raises(ModelFolderError, match="not a CovOG model folder"):
        CovOGModel.load(tmp_path)
    folder = model.save(tmp_path / "covog")
    import shutil

    shutil.rmtree(folder / "audio_driver")
    with pytest.raises(ModelFolderError, match="lacks the component folder.*audio_driver"):
        CovOGModel.load(folder)


def test_saving_never_destroys_what_it_did_not_write(model, tmp_path, monkeypatch):
    """`--out ComfyUI/models/covog` must not wipe the models there: a folder holding anything but a CovOG model is
    refused and left as it was; a model is replaced only when asked, and stays whole if the new one fails."""
    foreign = tmp_path / "models"
    (foreign / "other").mkdir(parents=True)
    (foreign / "other" / "weights.safetensors").write_bytes(b"precious")
    (foreign / "notes.txt").write_text("keep")
    for overwrite in (False, True):
        with pytest.raises(ModelFolderError, match=f"{foreign} exists and is not a CovOG model folder"):
            model.save(foreign, overwrite=overwrite)
    assert sorted(str(p.relative_to(foreign)) for p in foreign.rglob("*")) == [
        "notes.txt", "other", "other/weights.safetensors"]
    assert (foreign / "other" / "weights.safetensors").read_bytes() == b"precious"
    (tmp_path / "file").write_text("x")
    with pytest.raises(ModelFolderError, match="is a file"):
        model.save(tmp_path / "file", overwrite=True)

    (tmp_path / "empty").mkdir()
    assert CovOGModel.load(model.save(tmp_path / "empty")).audio_driver.trained == model.audio_driver.trained
    folder = model.save(tmp_path / "covog")
    with pytest.raises(ModelFolderError, match="already holds a CovOG model.*--overwrite"):
        model.save(folder)
    other = CovOGModel.random("tiny", seed=5)
    other.save(folder, overwrite=True)
    assert torch.equal(CovOGModel.load(folder).vae.state_dict()["decoder.conv_out.bias"],
                       other.vae.state_dict()["decoder.conv_out.bias"])

    def fail(*args, **kwargs):
        raise OSError(28, "No space left on device")

    with monkeypatch.context() as patch:
        patch.setattr(model.scheduler, "save_pretrained", fail)
        with pytest.raises(OSError, match="No space"):
            model.save(folder, overwrite=True)
    assert torch.equal(CovOGModel.load(folder).vae.state_dict()["decoder.conv_out.bias"],
                       other.vae.state_dict()["decoder.conv_out.bias"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["covog", "empty", "file", "models"]


def test_the_published_size_has_the_published_layouts():
    """configs.PUBLISHED builds exactly the released/diffusers key layouts (built on the meta device: no memory)."""
    if not LAYOUTS.is_dir():
        pytest.skip("checkpoint layouts missing")
    with torch.device("meta"):
        published = CovOGModel.random("sd15")

    def layout(name, prefix=""):
        return {prefix + key: shape for key, shape in json.loads((LAYOUTS / name).read_text()).items()}

    expected = {
        "denoising_unet": layout("diffusers_unet_motion_sd15.json"),
        "reference_unet": layout("diffusers_unet2d_sd15.json"),
        "pose_guider": layout("moore_pose_guider.json", "guider."),
        "pose_adaptor": layout("covog_stage1_pose_adaptor.json", "guider."),
        "audio_driver": layout("covog_stage2_audio_modules_only.json"),
    }
    for name, shapes in expected.items():
        module = getattr(published, name)
        assert {k: list(v.shape) for k, v in module.state_dict().items()} == shapes, name
    assert published.image_encoder.config.projection_dim == published.reference_unet.config.cross_attention_dim
    assert published.audio_encoder.config.num_hidden_layers == published.audio_driver.config.feature_layers


def published_audio_module(module, features, tokens, scores, masks):
    """CovOG's published audio module (hallo's Transformer3DModel around AudioTemporalBasicTransformerBlock), written
    out literally with the weights of our `AudioTransformer`: one person at a time, each person's zero_conv_face
    output (its bias included) added separately. features: (rows, c, h, w); tokens: (rows, n, audio_dim);
    scores: (rows, people); masks: (rows, people, h, w)."""
    rows, c, h, w = features.shape
    block = module.transformer_blocks[0]
    attn = block.attn2_1
    x = F.group_norm(features, module.norm.num_groups, module.norm.weight, module.norm.bias, eps=1e-6)
    x = F.conv2d(x, module.proj_in.weight, module.proj_in.bias)
    x = x.permute(0, 2, 3, 1).reshape(rows, h * w, c)
    x = F.layer_norm(x, (c,), block.norm1.weight, block.norm1.bias)  # hidden_states = norm_hidden_states
    normed = F.layer_norm(x, (c,), block.norm2.weight, block.norm2.bias)
    for person in range(scores.shape[1]):
        score = (scores[:, person] / 3).reshape(rows, 1, 1)
        gate = torch.sigmoid(F.linear(score, block.activate_score_proj.weight, block.activate_score_proj.bias))
        audio = tokens * gate
        query, key, value = F.linear(normed, attn.to_q.weight), F.linear(audio, attn.to_k.weight), F.linear(
            audio, attn.to_v.weight)
        weights = torch.softmax(query @ key.transpose(1, 2) / c ** 0.5, dim=-1)  # 1 head of width c
        face = F.linear(weights @ value, attn.to_out[0].weight, attn.to_out[0].bias)
        face = face * masks[:, person].reshape(rows, h * w, 1)
        face = face.reshape(rows, h, w, c).permute(0, 3, 1, 2)
        face = F.conv2d(face, block.zero_conv_face.weight, block.zero_conv_face.bias)
        x = face.permute(0, 2, 3, 1).reshape(rows, h * w, c) + x
    ff_in = F.layer_norm(x, (c,), block.norm3.weight, block.norm3.bias)
    hidden, gate = F.linear(ff_in, block.ff.net[0].proj.weight, block.ff.net[0].proj.bias).chunk(2, dim=-1)
    x = F.linear(hidden * F.gelu(gate), block.ff.net[2].weight, block.ff.net[2].bias) + x
    x = x.reshape(rows, h, w, c).permute(0, 3, 1, 2)
    return F.conv2d(x, module.proj_out.weight, module.proj_out.bias) + features


@pytest.mark.parametrize("index, down", BLOCKS)
def test_each_audio_block_computes_the_published_arithmetic_biases_included(index, down):
    """Every weight and bias random and non-zero (norms included), 3 people: our batched block equals the
    published per-person loop; in particular each person's face conv adds its bias once."""
    model = CovOGModel.random("tiny")
    model.audio_driver.mark_trained()
    torch.manual_seed(index + 10 * down)
    for p in model.audio_driver.parameters():
        torch.nn.init.normal_(p, mean=0.1, std=0.2)
    audio = conditioning(model, people=3, seed=4)
    features = block_inputs(model, index, down)
    block = (model.audio_driver.audio_down_module if down else model.audio_driver.audio_up_module)[index]
    factor = (DOWN_FACTORS if down else UP_FACTORS)[index]
    with torch.no_grad():
        expected = published_audio_module(block.audio_modules[0], features, audio.tokens, audio.scores,
                                          audio.face_masks[factor])
        ours = run_block(model, index, down, features, audio)
    torch.testing.assert_close(ours, expected, rtol=1e-4, atol=1e-4)


def test_reference_attention_is_self_attention_over_the_frames_and_the_references_tokens():
    """AnimateAnyone's spatial attention, by hand: queries from the frame's tokens; keys and values from the frame's
    tokens followed by the reference's (the frame still attends to itself); rows told to skip read their own only."""
    from diffusers.models.attention_processor import Attention

    torch.manual_seed(0)
    attn = Attention(query_dim=8, heads=2, dim_head=4).eval()
    bank = reference_attention.ReferenceBank()
    reader = reference_attention._Reader(bank, "attn1")
    hidden, reference = torch.randn(2, 5, 8), torch.randn(1, 3, 8)
    bank.tokens["attn1"] = reference

    def by_hand(tokens, keys_from):
        q, k, v = attn.to_q(tokens), attn.to_k(keys_from), attn.to_v(keys_from)
        split = lambda x: x.unflatten(-1, (2, 4)).transpose(0, 1)  # (heads, tokens, dim_head)  # noqa: E731
        weights = torch.softmax(split(q) @ split(k).transpose(-1, -2) / 2.0, dim=-1)
        return attn.to_out[0]((weights @ split(v)).transpose(0, 1).flatten(-2))

    with torch.no_grad():
        both = reader(attn, hidden)
        bank.reading_rows = torch.tensor([False, True])
        mixed = reader(attn, hidden)
        for row in range(2):
            read = by_hand(hidden[row], torch.cat([hidden[row], reference[0]]))
            torch.testing.assert_close(both[row], read, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(mixed[0], by_hand(hidden[0], hidden[0]), rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(mixed[1], both[1], rtol=1e-5, atol=1e-6)
