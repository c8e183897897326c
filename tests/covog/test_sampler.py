"""The multi-speaker sampler on a tiny random CovOG: guidance, windows, seeds, progress and bad input."""

import numpy as np
import pytest
import torch
from tiny_covog import perturb

import covog.pipeline.sampler as sampler
from covog.models.encoders import audio_features, clip_image_embedding
from covog.models.model import CovOGModel
from covog.pipeline.sampler import Conditions, SamplerSettings, generate, window_starts
from mit_annotator.core.progress import Cancelled

HEIGHT, WIDTH, PEOPLE = 64, 128, 2
QUICK = dict(steps=2, window=6, overlap=2)


@pytest.fixture(scope="module")
def model():
    return perturb(CovOGModel.random("tiny"))


def make_conditions(model, frames=6, people=PEOPLE, seed=0, per_person=False):
    g = torch.Generator().manual_seed(seed)
    c = model.audio_driver.config
    features = torch.randn(*((people,) if per_person else ()), frames, c.feature_layers, c.feature_dim, generator=g)
    masks = {}
    for factor in (2, 4, 8):
        h, w = HEIGHT // 8 // factor, WIDTH // 8 // factor
        masks[factor] = torch.zeros(frames, people, h, w)
        for p in range(people):
            masks[factor][:, p, :, p * w // people:(p + 1) * w // people] = 1
    return Conditions(
        reference=torch.rand(3, HEIGHT, WIDTH, generator=g),
        reference_poses=torch.rand(people, 3, HEIGHT, WIDTH, generator=g),
        poses=(torch.rand(frames, people, 3, HEIGHT, WIDTH, generator=g) * 255).to(torch.uint8),
        audio_features=features, speaking_scores=torch.randn(frames, people, generator=g) * 3, face_masks=masks)


@pytest.mark.parametrize("frames, window, overlap, expected", [
    (1, 25, 10, [0]), (25, 25, 10, [0]), (26, 25, 10, [0, 1]), (40, 25, 10, [0, 15]), (41, 25, 10, [0, 15, 16]),
    (100, 25, 10, [0, 15, 30, 45, 60, 75]), (12, 6, 0, [0, 6]),
])
def test_window_starts(frames, window, overlap, expected):
    starts = window_starts(frames, window, overlap)
    assert starts == expected
    covered = set()
    for a, b in zip(starts, starts[1:]):
        assert b - a <= window - overlap  # every window overlaps the previous one by at least `overlap`
    for s in starts:
        covered.update(range(s, min(s + window, frames)))
    assert covered == set(range(frames))


@pytest.mark.parametrize("frames", [1, 6, 9, 14])
def test_windows_stitch_to_the_requested_length(model, frames):
    calls = []
    video = generate(model, make_conditions(model, frames), SamplerSettings(**QUICK),
                     progress=lambda done, total: calls.append((done, total)))
    assert video.shape == (frames, 3, HEIGHT, WIDTH) and video.dtype == torch.float32
    assert 0 <= video.min() and video.max() <= 1
    windows = len(window_starts(frames, 6, 2))
    assert calls == [(k, windows * 2) for k in range(0, windows * 2 + 1)]  # before the first step, then each


def test_the_next_window_starts_from_the_previous_windows_frames(model, monkeypatch):
    """The overlap's latents are the re-encoded frames of the previous window: imposed at every step (noised to it)
    and at the end; the overlapping frames are then blended."""
    encoded, decoded, inputs = [], [], []
    real_encode, real_decode, real_denoise = sampler.encode_frames, sampler.decode_latents, sampler.denoise
    monkeypatch.setattr(sampler, "encode_frames", lambda m, f: encoded.append(real_encode(m, f)) or encoded[-1])
    monkeypatch.setattr(sampler, "decode_latents", lambda m, x, c: decoded.append(x.clone()) or real_decode(m, x, c))
    monkeypatch.setattr(sampler, "denoise", lambda u, a, x, t, *rest: inputs.append((t, x.clone())) or
                        real_denoise(u, a, x, t, *rest))
    generate(model, make_conditions(model, 9), SamplerSettings(steps=3, window=6, overlap=2, guidance=1.0))
    assert len(decoded) == 2 and len(encoded) == 2  # the reference, then the previous window's frames 3..5
    known = encoded[1]
    assert known.shape[2] == 3  # the last window starts at frame 3: it overlaps the first one by 3 frames
    torch.testing.assert_close(decoded[1][:, :, :3], known)
    second_window = inputs[3:]
    alphas = model.scheduler.alphas_cumprod
    noises = []  # imposed frames = sqrt(a_t) known + sqrt(1 - a_t) noise, with one noise for the whole window
    for t, x in second_window:
        a = alphas[int(t)]
        noises.append((x[:, :, :3] - a.sqrt() * known) / (1 - a).sqrt())
    assert len(noises) == 3 and abs(noises[0].std() - 1) < 0.1
    for noise in noises[1:]:
        torch.testing.assert_close(noise, noises[0], rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize("frames, imposed", [(12, []), (14, [4])])
def test_windows_without_overlap(model, monkeypatch, frames, imposed):
    """overlap=0: windows that do not overlap start from noise alone (no empty re-encode); a last window that has to
    overlap to end on the last frame still takes the previous frames. The first window is as if made alone."""
    encoded = []
    real_encode = sampler.encode_frames
    monkeypatch.setattr(sampler, "encode_frames", lambda m, f: encoded.append(f.shape[0]) or real_encode(m, f))
    settings = SamplerSettings(steps=2, window=6, overlap=0)
    conditions = make_conditions(model, frames)
    video = generate(model, conditions, settings)
    assert video.shape == (frames, 3, HEIGHT, WIDTH) and torch.isfinite(video).all()
    assert encoded[1:] == imposed  # encoded[0] is the reference
    first = Conditions(conditions.reference, conditions.reference_poses, conditions.poses[:6],
                       conditions.audio_features[:6], conditions.speaking_scores[:6],
                       {f: m[:6] for f, m in conditions.face_masks.items()})
    torch.testing.assert_close(video[:6], generate(model, first, settings), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("scale", [2.5, 1.5])  # any guidance above 1 runs both passes
def test_guidance_is_uncond_plus_scale_times_the_difference(model, monkeypatch, scale):
    """The prediction handed to the scheduler is uncond + g * (cond - uncond) of the two rows denoise returned."""
    outputs, predictions = [], []
    real_denoise, real_step = sampler.denoise, model.scheduler.step
    monkeypatch.setattr(sampler, "denoise", lambda *args: outputs.append(real_denoise(*args).float()) or outputs[-1])
    monkeypatch.setattr(model.scheduler, "step", lambda p, *rest, **kw: predictions.append(p) or real_step(p, *rest,
                                                                                                           **kw))
    generate(model, make_conditions(model, 4), SamplerSettings(**QUICK, guidance=scale))
    assert len(outputs) == len(predictions) == 2
    for out, prediction in zip(outputs, predictions):
        uncond, cond = out[:1], out[1:]
        assert (cond - uncond).abs().mean() > 1e-3  # the two passes differ: the formula is really tested
        torch.testing.assert_close(prediction, uncond + scale * (cond - uncond), rtol=0, atol=0)


def test_blend_fades_from_the_old_window_to_the_new():
    old, new = torch.zeros(5, 1, 1, 1), torch.ones(4, 1, 1, 1)
    blended = sampler.blend(old, new, 2)
    assert blended.shape[0] == 6
    np.testing.assert_allclose(blended.flatten().numpy(), [0, 0, 0.25, 0.5, 0.75, 1], atol=1e-6)
    old, new = torch.full((3, 1, 1, 1), 2.0), torch.full((3, 1, 1, 1), -1.0)  # both sides weighed, neither zero
    np.testing.assert_allclose(sampler.blend(old, new, 1).flatten().numpy(), [2, 1, 0, -1], atol=1e-6)
    one = sampler.blend(torch.full((2, 1, 1, 1), 4.0), torch.zeros(2, 1, 1, 1), 1)  # one frame overlaps: the middle
    np.testing.assert_allclose(one.flatten().numpy(), [4, 2, 0], atol=1e-6)
    after = sampler.blend(torch.zeros(2, 1, 1, 1), torch.ones(2, 1, 1, 1), 2)  # no overlap: appended
    np.testing.assert_allclose(after.flatten().numpy(), [0, 0, 1, 1])


def test_decoding_unscales_the_latents_and_maps_minus_one_one_to_zero_one():
    """A stand-in VAE whose decoder returns its input's first 3 channels: the latents come in divided by the scaling
    factor, frame by frame in chunks, and -1..1 leaves as 0..1, clipped."""
    from types import SimpleNamespace

    class Echo:
        config, dtype, calls = SimpleNamespace(scaling_factor=0.5), torch.float32, []

        def decode(self, latents):
            self.calls.append(latents.shape[0])
            return SimpleNamespace(sample=latents[:, :3])

    latents = torch.tensor([-0.75, -0.25, 0.0, 0.25, 0.5, 1.0]).reshape(1, 1, 6, 1, 1).repeat(1, 4, 1, 1, 1)
    vae = Echo()
    frames = sampler.decode_latents(SimpleNamespace(vae=vae), latents, chunk=4)
    assert vae.calls == [4, 2] and frames.shape == (6, 3, 1, 1)
    np.testing.assert_allclose(frames[:, 0, 0, 0].numpy(), [0, 0.25, 0.5, 0.75, 1, 1], atol=1e-6)


def test_the_same_seed_gives_the_same_frames(model):
    conditions = make_conditions(model, 6)
    a = generate(model, conditions, SamplerSettings(**QUICK, seed=7))
    b = generate(model, conditions, SamplerSettings(**QUICK, seed=7))
    c = generate(model, conditions, SamplerSettings(**QUICK, seed=8))
    assert torch.equal(a, b)
    assert (a - c).abs().mean() > 1e-4


def test_the_unconditional_pass_drops_clip_and_reference_attention_only(model, monkeypatch):
    checked = []
    real_denoise = sampler.denoise

    def checking_denoise(unet, driver, x, t, contexts, pose, audio):
        out = real_denoise(unet, driver, x, t, contexts, pose, audio)
        if not checked:
            frames = x.shape[2]
            bank = next(iter(p for p in unet.attn_processors.values() if hasattr(p, "bank"))).bank
            half = sampler.AudioConditioning(audio.tokens[frames:], audio.scores[frames:],
                                             {f: m[frames:] for f, m in audio.face_masks.items()})
            assert not contexts[0].any() and contexts[1].any()  # no CLIP embedding in the unconditional row
            torch.testing.assert_close(pose[:frames], pose[frames:])  # pose, audio, masks, scores stay
            torch.testing.assert_close(audio.tokens[:frames], audio.tokens[frames:])
            bank.reading_rows = torch.zeros(frames, dtype=torch.bool)  # alone, without the reference
            alone = real_denoise(unet, driver, x[:1], t, contexts[:1], pose[:frames], half)
            torch.testing.assert_close(out[:1], alone, rtol=1e-4, atol=1e-5)
            bank.reading_rows = None
            conditional = real_denoise(unet, driver, x[1:], t, contexts[1:], pose[frames:], half)
            torch.testing.assert_close(out[1:], conditional, rtol=1e-4, atol=1e-5)
            checked.append(True)
            bank.reading_rows = torch.arange(2 * frames) >= frames
        return out

    monkeypatch.setattr(sampler, "denoise", checking_denoise)
    generate(model, make_conditions(model, 4), SamplerSettings(**QUICK, guidance=3.5))
    assert checked


def test_guidance_one_runs_the_conditional_pass_alone(model, monkeypatch):
    batches = []
    real_denoise = sampler.denoise
    monkeypatch.setattr(sampler, "denoise", lambda u, a, x, *rest: batches.append(x.shape[0]) or
                        real_denoise(u, a, x, *rest))
    generate(model, make_conditions(model, 4), SamplerSettings(**QUICK, guidance=1.0))
    assert set(batches) == {1}


def test_guidance_one_still_reads_the_reference(model):
    """Without the unconditional pass every row reads the ReferenceNet's features: other ReferenceNet weights give
    other frames (the ReferenceNet reaches the output only through them)."""
    import copy

    conditions, settings = make_conditions(model, 4), SamplerSettings(**QUICK, guidance=1.0)
    other = copy.deepcopy(model)
    with torch.no_grad():
        for parameter in other.reference_unet.parameters():
            parameter.add_(torch.randn(parameter.shape, generator=torch.Generator().manual_seed(1)) * 0.2)
    difference = (generate(model, conditions, settings) - generate(other, conditions, settings)).abs().max()
    assert difference > 1e-3


def test_per_person_audio_tracks(model):
    shared = make_conditions(model, 4)
    copied = make_conditions(model, 4)
    copied.audio_features = shared.audio_features[None].repeat(PEOPLE, 1, 1, 1)
    a = generate(model, shared, SamplerSettings(**QUICK))
    b = generate(model, copied, SamplerSettings(**QUICK))
    torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)  # one track given to everyone = the mixed track
    copied.audio_features[1] = torch.randn_like(copied.audio_features[1])
    c = generate(model, copied, SamplerSettings(**QUICK))
    assert (a - c).abs().mean() > 1e-5


def test_cancellation_stops_between_steps(model):
    """The hook hears (0, total) before the first step and (k, total) after step k, across windows; raising from it
    stops the work there."""
    seen = []

    def progress(done, total):
        seen.append((done, total))
        if done == 4:
            raise Cancelled(f"after {done} of {total} steps")

    with pytest.raises(Cancelled, match="after 4 of 6 steps"):
        generate(model, make_conditions(model, 9), SamplerSettings(steps=3, window=6, overlap=2), progress=progress)
    assert seen == [(0, 6), (1, 6), (2, 6), (3, 6), (4, 6)]  # 2 windows x 3 steps: the second window's first step


@pytest.mark.parametrize("change, message", [
    (lambda c: setattr(c, "poses", c.poses[:, :0]), "no person"),
    (lambda c: setattr(c, "poses", c.poses[:4]), "the audio covers 6 frames but the pose sequence has 4"),
    (lambda c: setattr(c, "reference", c.reference[:, :32]), r"reference image is \(3, 32, 128\)"),
    (lambda c: setattr(c, "poses", c.poses[..., :96]), "must be a multiple of 64"),
    (lambda c: setattr(c, "speaking_scores", c.speaking_scores[:, :1]), "speaking scores must be"),
    (lambda c: c.face_masks.pop(4), "face masks at 1/4 must be"),
    (lambda c: setattr(c, "audio_features", c.audio_features[None].repeat(3, 1, 1, 1)),
     "3 per-person audio tracks for 2 people"),
])
def test_bad_input_is_named(model, change, message):
    conditions = make_conditions(model, 6)
    change(conditions)
    with pytest.raises(ValueError, match=message):
        generate(model, conditions, SamplerSettings(**QUICK))


@pytest.mark.parametrize("settings, message", [
    (dict(steps=0), "steps must be at least 1"), (dict(guidance=0.5), "guidance"),
    (dict(window=6, overlap=6), "overlap < window"),
])
def test_bad_settings_are_named(model, settings, message):
    with pytest.raises(ValueError, match=message):
        generate(model, make_conditions(model, 6), SamplerSettings(**settings))


@pytest.mark.parametrize("change, message", [
    (lambda c: setattr(c, "poses", c.poses[0]), "poses must be (frames, people, 3, H, W), got (2, 3, 64, 128)"),
    (lambda c: setattr(c, "poses", c.poses[:, :, :2]), "poses must be (frames, people, 3, H, W), got (6, 2, 2, 64, 128)"),
    (lambda c: setattr(c, "poses", c.poses[:0]), "the pose sequence is empty"),
    (lambda c: setattr(c, "reference_poses", c.reference_poses[:1]),
     "reference poses must be (2, 3, 64, 128), got (1, 3, 64, 128)"),
    (lambda c: setattr(c, "audio_features", c.audio_features[:5]),
     "the audio covers 5 frames but the pose sequence has 6: they must cover the same frames"),
    (lambda c: c.face_masks.pop(8), "face masks at 1/8 must be (6, 2, 1, 2), got None"),
    (lambda c: c.face_masks.update({2: c.face_masks[2][:, :, :2]}), "face masks at 1/2 must be (6, 2, 4, 8), got (6, 2, 2, 8)"),
])
def test_each_bad_condition_is_named_in_full(model, change, message):
    conditions = make_conditions(model, 6)
    conditions.check()
    change(conditions)
    with pytest.raises(ValueError) as caught:
        conditions.check()
    assert str(caught.value) == message


def test_settings_at_their_limits():
    for fine in (dict(window=1, overlap=0), dict(window=2, overlap=1), dict(steps=1, guidance=1.0)):
        SamplerSettings(**fine).check()
    for bad in (dict(window=0, overlap=0), dict(window=4, overlap=-1), dict(window=4, overlap=4)):
        with pytest.raises(ValueError) as caught:
            SamplerSettings(**bad).check()
        assert str(caught.value) == (f"need window >= 1 and 0 <= overlap < window, got window {bad['window']}, "
                                     f"overlap {bad['overlap']}")


def test_audio_features_are_frame_aligned(model):
    rate = 16000
    silence, tone = np.zeros(rate, np.float32), np.sin(np.arange(rate) / rate * 2 * np.pi * 220).astype(np.float32)
    features = audio_features(model.audio_encoder, np.concatenate([silence, tone]), num_frames=50, fps=25)
    c = model.audio_encoder.config
    assert features.shape == (50, c.num_hidden_layers, c.hidden_size)
    # the first second is silence, the second a tone: the features change where the audio does
    first, second = features[:20], features[30:]
    assert (first.std(dim=0).mean() < (first.mean(0) - second.mean(0)).abs().mean())
    short = audio_features(model.audio_encoder, tone[:8000], num_frames=25, fps=25)  # padded with silence
    assert short.shape == (25, c.num_hidden_layers, c.hidden_size)
    with pytest.raises(ValueError, match="mono"):
        audio_features(model.audio_encoder, np.zeros((2, 100), np.float32), 5, 25)


def test_clip_embedding_of_any_frame_size(model):
    with torch.no_grad():
        embedding = clip_image_embedding(model.image_encoder, torch.rand(2, 3, 64, 128))
    assert embedding.shape == (2, 1, model.image_encoder.config.projection_dim)


def test_a_model_loaded_in_bfloat16_generates(model, tmp_path):
    half = CovOGModel.load(model.save(tmp_path / "covog"), dtype=torch.bfloat16)
    assert half.dtype == torch.bfloat16 and half.audio_encoder.dtype == torch.float32  # wav2vec2 stays float32
    video = generate(half, make_conditions(half, 6), SamplerSettings(**QUICK))
    assert video.dtype == torch.float32 and torch.isfinite(video).all()
    full = generate(model, make_conditions(model, 6), SamplerSettings(**QUICK))
    assert (video - full).abs().mean() < 0.1  # the same model, at lower precision


def test_long_audio_is_encoded_in_chunks_that_line_up_with_one_pass(model):
    rate = 16000
    g = np.random.default_rng(0)
    samples = (np.sin(np.arange(4 * rate) / rate * 2 * np.pi * 180) * (g.random(4 * rate) > 0.5)).astype(np.float32)
    whole = audio_features(model.audio_encoder, samples, num_frames=100, fps=25)
    # chunks of 1 s whose context reaches over the whole recording: each keeps exactly its own share of one pass
    seeing_all = audio_features(model.audio_encoder, samples, num_frames=100, fps=25, chunk_seconds=1.0,
                                context_seconds=10.0)
    torch.testing.assert_close(seeing_all, whole, rtol=1e-4, atol=1e-4)
    chunked = audio_features(model.audio_encoder, samples, num_frames=100, fps=25, chunk_seconds=1.0,
                             context_seconds=0.5)
    assert chunked.shape == whole.shape and torch.isfinite(chunked).all()


def test_a_window_longer_than_the_motion_modules_reach_is_refused(model):
    with pytest.raises(ValueError, match="window 33: the motion modules encode at most 32 frames"):
        generate(model, make_conditions(model, 40), SamplerSettings(steps=1, window=33, overlap=2))


def test_cancelling_releases_the_reference_tokens(model):
    def cancel(done, total):
        raise Cancelled

    with pytest.raises(Cancelled):
        generate(model, make_conditions(model, 4), SamplerSettings(**QUICK), progress=cancel)
    bank = next(p for p in model.denoising_unet.attn_processors.values() if hasattr(p, "bank")).bank
    assert bank.tokens == {} and bank.reading_rows is None


def test_each_window_is_conditioned_on_its_own_frames(model, monkeypatch):
    """Window k reads the poses, audio, speaking scores and face masks of frames start_k .. start_k + window, in both
    of classifier-free guidance's rows."""
    seen = []
    real_denoise = sampler.denoise
    monkeypatch.setattr(sampler, "denoise", lambda u, a, x, t, c, pose, audio: seen.append((pose, audio)) or
                        real_denoise(u, a, x, t, c, pose, audio))
    conditions = make_conditions(model, 9)
    generate(model, conditions, SamplerSettings(steps=1, window=6, overlap=2, guidance=2.0))
    assert len(seen) == 2  # one step in each of the windows starting at frames 0 and 3
    tokens = sampler.audio_tokens(model, conditions.audio_features)
    for (pose, audio), start in zip(seen, window_starts(9, 6, 2)):
        frames = slice(start, start + 6)
        for row in (slice(0, 6), slice(6, 12)):
            torch.testing.assert_close(audio.scores[row], conditions.speaking_scores[frames])
            torch.testing.assert_close(audio.tokens[row], tokens[frames])
            for factor, mask in conditions.face_masks.items():
                torch.testing.assert_close(audio.face_masks[factor][row], mask[frames])
            torch.testing.assert_close(pose[row], model.pose_guider(conditions.poses[frames]))


def test_the_public_stages_compose_to_generate(model):
    """What the stage nodes run: sample_windows leaving the last window as latents (decode_last=False), its frames
    so far those of the windows before it, then decode_windows over every window: generate's frames, to rounding."""
    from covog.models import reference_attention

    conditions, settings = make_conditions(model, 9), SamplerSettings(**QUICK)
    expected = generate(model, conditions, settings)
    bank = reference_attention.attach(model.reference_unet, model.denoising_unet)
    try:
        with torch.no_grad():
            context, latent = sampler.encode_reference(model, conditions.reference)
            sampler.write_reference(model, bank, context, latent, conditions.reference_poses)
            sampled = sampler.sample_windows(model, conditions, settings, context, bank, decode_last=False)
    finally:
        bank.clear()
    assert [start for start, _ in sampled.windows] == window_starts(9, 6, 2) == [0, 3]
    assert [tuple(latents.shape[2:3]) for _, latents in sampled.windows] == [(6,), (6,)]
    assert sampled.video.shape[0] == 6  # the first window decoded; the last one left as latents
    seen = []
    frames = sampler.decode_windows(model, sampled.windows, settings.decode_chunk,
                                    progress=lambda done, total: seen.append((done, total)))
    torch.testing.assert_close(frames, expected, rtol=0, atol=1e-5)
    torch.testing.assert_close(sampled.video[:3], expected[:3], rtol=0, atol=1e-5)  # frames the last window lacks
    assert seen == [(1, 2), (2, 2)]
