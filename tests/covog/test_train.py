"""CovOG training on two tiny synthetic clips and a tiny random model: the dataset's items, what each stage trains,
condition dropout, checkpoints and --resume, and bad input."""

import json
import re
import shutil

import numpy as np
import pytest
import torch
from accelerate import Accelerator
from safetensors.torch import load_file
from tiny_covog import perturb

import covog.train as train
from covog.models import reference_attention
from covog.models.audio_driver import AudioTransformerBlock
from covog.models.denoiser import denoise
from covog.models.encoders import audio_features
from covog.models.model import CovOGModel
from covog.pipeline.conditioning import PoseRenders
from covog.training import trainer
from covog.training.dataset import AUDIO_FEATURES_FILE, ConversationClips, EpochOrder, collate, frame_pair
from mit_annotator.core import media
from mit_annotator.core.records import SpeakingActivity, VideoTracks
from mit_annotator.synthetic import ConversationSpec, synthesize_conversation

SIZE = (128, 64)  # training size (width, height)
FAST = ["--width", "128", "--height", "64", "--workers", "0", "--log-every", "1", "--lr", "1e-4"]


@pytest.fixture(scope="module")
def clips(speech, tmp_path_factory):
    """A root folder with a 2-person and a 3-person clip, 2.5 s each (62 frames at 25 fps)."""
    root = tmp_path_factory.mktemp("clips")
    for people, seed in ((2, 1), (3, 2)):
        spec = ConversationSpec(num_people=people, seconds=2.5, width=256, height=128, seed=seed)
        synthesize_conversation(spec, speech).save(root / f"clip{people}")
    return root


@pytest.fixture(scope="module")
def model_folder(tmp_path_factory):
    return perturb(CovOGModel.random("tiny")).save(tmp_path_factory.mktemp("model") / "covog")


@pytest.fixture(scope="module")
def model(model_folder):
    return CovOGModel.load(model_folder)


def run(capsys, *args):
    code = train.main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def changed_parameters(before: CovOGModel, after: CovOGModel) -> dict[str, set[str]]:
    changed = {}
    for component, module in before.modules.items():
        new = dict(getattr(after, component).named_parameters())
        changed[component] = {name for name, p in module.named_parameters() if not torch.equal(p, new[name])}
    return changed


def names(module, keep=lambda name: True) -> set[str]:
    return {name for name, _ in module.named_parameters() if keep(name)}


def losses(stdout: str) -> list[float]:
    return [float(x) for x in re.findall(r"^step \d+/\d+ loss (\S+)$", stdout, flags=re.M)]


# ---------------------------------------------------------------------------------------------------------------------
# The dataset


def test_stage1_items_pair_frames_at_least_30_apart(clips):
    torch.manual_seed(0)
    dataset = ConversationClips(clips, SIZE, stage=1)
    assert [c.folder.name for c in dataset.clips] == ["clip2", "clip3"]
    for index, people in ((0, 2), (1, 3)):
        for _ in range(8):
            item = dataset[index]
            assert item["reference"].shape == item["target"].shape == (3, 64, 128)
            assert item["reference"].dtype == torch.float32 and 0 <= item["target"].min() <= item["target"].max() <= 1
            assert item["reference_poses"].shape == item["target_poses"].shape == (people, 3, 64, 128)
            assert item["target_poses"].dtype == torch.uint8
            assert 30 <= abs(item["reference_frame"] - item["target_frame"])
    # the tensors are the frames they say they are
    folder = dataset.clips[1].folder
    video = media.read_frames(folder / "video.mp4", size=SIZE, fps=25.0)
    expected = torch.from_numpy(video[item["target_frame"]]).permute(2, 0, 1).float() / 255
    assert torch.equal(item["target"], expected)
    renders = PoseRenders(VideoTracks.load(folder / "tracks.json"), SIZE)
    assert torch.equal(item["reference_poses"], renders[item["reference_frame"]])


def test_stage1_targets_are_anywhere_at_least_the_gap_away():
    """CovOG's dataset: the target anywhere in the clip at least `sample_margin` frames from the reference, before or
    after it (30 in its configs, 50 for its stage-1 fine-tune); no upper limit."""
    generator = torch.Generator().manual_seed(0)
    for gap in (30, 50):
        pairs = [frame_pair(120, gap, generator) for _ in range(2000)]
        gaps = [abs(a - b) for a, b in pairs]
        assert min(gaps) == gap and max(gaps) > 100
        assert {a < b for a, b in pairs} == {True, False}
        assert {a for a, _ in pairs} == {f for f in range(120) if f - gap >= 0 or f + gap < 120}


def test_a_short_clip_pairs_its_ends():
    torch.manual_seed(0)
    assert {frame_pair(10) for _ in range(20)} == {(0, 9), (9, 0)}
    assert {tuple(sorted(frame_pair(2))) for _ in range(5)} == {(0, 1)}


def test_the_epoch_order_is_a_function_of_seed_and_epoch():
    """The trainer's data order: each epoch every clip once (padded to whole steps), dealt across processes, each draw
    with its own item seed; the same seed and epoch always give the same batches, `skip` gives their tail."""
    order = EpochOrder(clips=5, batch=2, seed=3, process=0, processes=2)
    other = EpochOrder(clips=5, batch=2, seed=3, process=1, processes=2)
    assert len(order) == 2
    epoch = order.batches(4)
    assert epoch == EpochOrder(5, 2, 3, 0, 2).batches(4) and order.batches(4, skip=1) == epoch[1:]
    assert epoch != order.batches(5) and epoch != EpochOrder(5, 2, 4, 0, 2).batches(4)
    dealt = [key for step in range(2) for key in epoch[step] + other.batches(4)[step]]
    assert len(dealt) == 8 and {index for index, _ in dealt[:5]} == set(range(5))  # then padded from the start
    assert [index for index, _ in dealt[5:]] == [index for index, _ in dealt[:3]]
    assert len({seed for _, seed in dealt}) == 8


def test_an_item_is_a_function_of_its_key(clips):
    dataset = ConversationClips(clips, SIZE, stage=1)
    torch.manual_seed(0)
    first = dataset[(1, 12345)]
    torch.manual_seed(99)
    torch.rand(5)
    again = dataset[(1, 12345)]
    assert first["reference_frame"] == again["reference_frame"] and first["target_frame"] == again["target_frame"]
    assert torch.equal(first["target"], again["target"])
    assert {(dataset[(1, seed)]["reference_frame"]) for seed in range(6)} != {first["reference_frame"]}


def test_stage2_items(clips, model):
    torch.manual_seed(0)
    dataset = ConversationClips(clips, SIZE, stage=2, audio_encoder=model.audio_encoder)
    folder = dataset.clips[1].folder
    tracks, speaking = VideoTracks.load(folder / "tracks.json"), SpeakingActivity.load(folder / "speaking.json")
    cached = load_file(folder / AUDIO_FEATURES_FILE)["audio_features"]
    layers, dim = model.audio_encoder.config.num_hidden_layers, model.audio_encoder.config.hidden_size
    assert cached.shape == (62, layers, dim)
    strides = set()
    for _ in range(10):
        item = dataset[1]
        assert item["frames"].shape == (15, 3, 64, 128) and item["frames"].dtype == torch.float32
        assert item["poses"].shape == (15, 3, 3, 64, 128) and item["poses"].dtype == torch.uint8
        assert {f: tuple(m.shape) for f, m in item["face_masks"].items()} == {
            2: (15, 3, 4, 8), 4: (15, 3, 2, 4), 8: (15, 3, 1, 2)}
        assert all(m[:, p].sum() > 0 for m in item["face_masks"].values() for p in range(3))
        assert item["reference"].shape == (3, 64, 128) and item["reference_poses"].shape == (3, 3, 64, 128)
        indices = item["frame_indices"]
        steps = set(indices.diff().tolist())
        assert len(steps) == 1 and indices[-1] < 62
        strides |= steps
        # every per-frame condition belongs to the frames taken, at the stride
        assert torch.equal(item["audio_features"], cached[indices])
        scores = np.stack([speaking.person(t.track_id).scores for t in tracks.tracks], axis=1)[indices.numpy()]
        assert torch.equal(item["speaking_scores"], torch.from_numpy(scores))
        assert torch.equal(item["poses"][-1], PoseRenders(tracks, SIZE)[int(indices[-1])])
    assert strides == {1, 2}  # the paper's stride choices


def test_audio_features_are_computed_once_per_clip(clips, model, tmp_path):
    clip = shutil.copytree(clips / "clip2", tmp_path / "clip2", ignore=shutil.ignore_patterns(AUDIO_FEATURES_FILE))
    with pytest.raises(ValueError, match=f"clip2: no {AUDIO_FEATURES_FILE}"):
        ConversationClips(clip, SIZE, stage=2)
    ConversationClips(clip, SIZE, stage=2, audio_encoder=model.audio_encoder)
    cache = clip / AUDIO_FEATURES_FILE
    written = cache.stat().st_mtime_ns
    ConversationClips(clip, SIZE, stage=2, audio_encoder=model.audio_encoder)
    ConversationClips(clip, SIZE, stage=2)
    assert cache.stat().st_mtime_ns == written
    assert [p.name for p in clip.iterdir() if "partial" in p.name] == []
    expected = audio_features(model.audio_encoder, media.read_audio(clip / "video.mp4"), 62, 25.0)
    assert torch.allclose(load_file(cache)["audio_features"], expected)


def test_dataset_errors_name_the_folder(clips, tmp_path):
    with pytest.raises(ValueError, match="multiples of 64"):
        ConversationClips(clips, (100, 64))
    incomplete = shutil.copytree(clips / "clip2", tmp_path / "incomplete")
    (incomplete / "speaking.json").unlink()
    with pytest.raises(ValueError, match="incomplete: incomplete clip folder, missing speaking.json"):
        ConversationClips(tmp_path)
    empty = tmp_path / "empty" / "empty"
    empty.mkdir(parents=True)
    with pytest.raises(ValueError, match="empty: no clips found"):
        ConversationClips(empty)
    nobody = shutil.copytree(clips / "clip2", tmp_path / "nobody", ignore=shutil.ignore_patterns(AUDIO_FEATURES_FILE))
    tracks = VideoTracks.load(nobody / "tracks.json")
    tracks.tracks = []
    tracks.save(nobody / "tracks.json")
    with pytest.raises(ValueError, match="nobody: tracks.json has no people"):
        ConversationClips(nobody)
    with pytest.raises(ValueError, match="clip2: 62 frames; stage 2 needs at least 100"):
        ConversationClips(clips / "clip2", SIZE, stage=2, clip_length=100)


def test_a_batch_cannot_mix_people_counts(clips):
    dataset = ConversationClips(clips, SIZE, stage=1)
    with pytest.raises(ValueError, match="batch size 1"):
        collate([dataset[0], dataset[1]])
    assert collate([dataset[0], dataset[0]])["target_poses"].shape == (2, 2, 3, 64, 128)


# ---------------------------------------------------------------------------------------------------------------------
# What each stage trains


def test_stage1_trains_the_spatial_unet_referencenet_and_pose_encoders(clips, model_folder, model, tmp_path, capsys):
    out = tmp_path / "out"
    code, stdout, err = run(capsys, "--stage", 1, "--data", clips, "--model", model_folder, "--out", out,
                            "--steps", 2, *FAST)
    assert code == 0, err
    assert stdout.strip().splitlines()[-1] == f"saved {out / 'checkpoint-2'}"
    assert len(losses(stdout)) == 2 and all(np.isfinite(losses(stdout)))
    assert sorted(p.name for p in out.iterdir()) == ["checkpoint-2", "state-2"]
    trained = CovOGModel.load(out / "checkpoint-2")
    changed = changed_parameters(model, trained)
    frozen_tail = ("up_blocks.3.", "conv_norm_out.", "conv_out.")  # never read, or frozen by the published code
    expected = {"denoising_unet": names(model.denoising_unet, lambda n: "motion_modules" not in n),
                "reference_unet": names(model.reference_unet, lambda n: not n.startswith(frozen_tail))}
    for component, trainable in expected.items():
        assert changed[component] <= trainable, component
        # the CLIP context is one token, so cross-attention's softmax is constant and the query path's zero-valued
        # norm2 biases get an exactly-zero gradient in exact arithmetic: they may stay as they were
        assert {n for n in trainable - changed[component] if not n.endswith("norm2.bias")} == set(), component
    assert changed["pose_guider"] == names(model.pose_guider)
    assert changed["pose_adaptor"] == names(model.pose_adaptor)
    for component in ("vae", "image_encoder", "audio_encoder", "audio_driver"):
        assert changed[component] == set(), component


def test_stage2_trains_only_motion_modules_and_the_audio_driver(clips, model_folder, model, tmp_path, capsys):
    out = tmp_path / "out"
    code, stdout, err = run(capsys, "--stage", 2, "--data", clips, "--model", model_folder, "--out", out,
                            "--steps", 2, "--clip-frames", 4, *FAST)
    assert code == 0, err
    assert all(np.isfinite(losses(stdout))) and len(losses(stdout)) == 2
    changed = changed_parameters(model, CovOGModel.load(out / "checkpoint-2"))
    assert changed["denoising_unet"] == names(model.denoising_unet, lambda n: "motion_modules" in n)
    # the audio driver is switched on: every one of its weights learns, the face zero-convs included
    assert changed["audio_driver"] == names(model.audio_driver)
    assert {n for n in changed["audio_driver"] if "zero_conv_face" in n} == names(
        model.audio_driver, lambda n: "zero_conv_face" in n) != set()
    for component in ("vae", "image_encoder", "audio_encoder", "reference_unet", "pose_guider", "pose_adaptor"):
        assert changed[component] == set(), component


def test_stage2_learns_a_fresh_audio_driver_and_marks_it_trained(clips, tmp_path, capsys):
    """A fresh driver is exactly the identity (proj_out at zero) and is skipped while untrained. Stage 2
    switches it on and marks its checkpoints trained; the zero only delays the gradient: it reaches proj_out at the
    first step, and every weight of the driver once proj_out has moved."""
    folder = CovOGModel.random("tiny").save(tmp_path / "fresh")
    out = tmp_path / "out"
    code, _, err = run(capsys, "--stage", 2, "--data", clips / "clip3", "--model", folder, "--out", out,
                       "--steps", 2, "--clip-frames", 4, *FAST)
    assert code == 0, err
    assert not CovOGModel.load(folder).audio_driver.trained
    for source, reached in ((folder, {"proj_out"}), (out / "checkpoint-2", None)):
        model = CovOGModel.load(source)
        trainer.set_trainable(model, 2)
        assert model.audio_driver.trained
        torch.manual_seed(1)
        trainer.TrainingNet(model, 2, trainer.Recipe(condition_dropout=0.0))(one_batch(clips, 2, model)).backward()
        with_gradient = {n for n, p in model.audio_driver.named_parameters() if p.grad is not None and p.grad.any()}
        if reached is None:
            assert with_gradient == names(model.audio_driver)
        else:
            assert {n.split(".")[-2] for n in with_gradient} == reached
    assert CovOGModel.load(out / "checkpoint-2").audio_driver.trained


def test_one_step_makes_a_fresh_driver_read_whose_score_is_whose(clips):
    """Only proj_out starts at zero: after a single step the audio path already reaches the prediction, so it
    depends on which person has which speaking score. With the face convs at zero as well (the published init), it
    would not: each zero layer's gradient is scaled by the other's weights, and the face convs get none at step 0."""
    def predictions(model, net, batch):
        """The UNet's prediction with the first person speaking, and with the second, the rest listening."""
        first, second = (torch.full_like(batch["speaking_scores"], -2.0) for _ in range(2))
        first[..., 0] = second[..., 1] = 2.0
        seen = []
        hook = model.denoising_unet.conv_out.register_forward_hook(lambda module, args, out: seen.append(out))
        with torch.no_grad():
            for scores in (first, second):
                torch.manual_seed(5)
                net({**batch, "speaking_scores": scores})
        hook.remove()
        return seen

    differences = {}
    for published_init in (False, True):
        model = CovOGModel.random("tiny")
        if published_init:
            for module in model.audio_driver.modules():
                if isinstance(module, AudioTransformerBlock):
                    torch.nn.init.zeros_(module.zero_conv_face.weight)
                    torch.nn.init.zeros_(module.zero_conv_face.bias)
        parameters = trainer.set_trainable(model, 2)
        net = trainer.TrainingNet(model, 2, trainer.Recipe(condition_dropout=0.0))
        batch = one_batch(clips, 2, model)
        assert torch.equal(*predictions(model, net, batch))  # a fresh driver is the identity
        torch.manual_seed(0)
        net(batch).backward()
        torch.optim.Adam(parameters, lr=1e-2).step()  # every weight with a gradient moves by about 1e-2
        first, second = predictions(model, net, batch)
        differences[published_init] = float((first - second).abs().max())
    assert differences[True] == 0.0
    assert differences[False] > 1e-5


def test_the_driver_learning_rate_is_its_own_group(model):
    parameters = trainer.set_trainable(model, 2)
    groups = trainer.parameter_groups(parameters, model, 1e-3)
    optimizer = trainer.make_optimizer(groups, 1e-4, 2, Accelerator(cpu=True))
    driver = {id(p) for p in model.audio_driver.parameters()}
    assert [g["lr"] for g in optimizer.param_groups] == [1e-4, 1e-3]
    assert {id(p) for p in optimizer.param_groups[1]["params"]} == driver
    assert {id(p) for p in optimizer.param_groups[0]["params"]} == {id(p) for p in parameters} - driver
    assert [g["lr"] for g in trainer.make_optimizer(trainer.parameter_groups(parameters, model, None), 1e-4, 2,
                                                    Accelerator(cpu=True)).param_groups] == [1e-4]


@pytest.mark.parametrize("stage, extra", [(1, []), (2, ["--no-audio-driver"]), (2, ["--driver-lr", "0"])])
def test_a_driver_learning_rate_needs_a_driver_that_trains(clips, model_folder, tmp_path, capsys, stage, extra):
    code, _, err = run(capsys, "--stage", stage, "--data", clips, "--model", model_folder, "--out", tmp_path / "o",
                       "--steps", 1, *FAST, *(extra if "--driver-lr" in extra else ["--driver-lr", "1e-3", *extra]))
    assert code == 2 and "the audio driver's learning rate must be positive, and only stage 2 with the audio " \
                         "driver trains it" in err
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").iterdir())


def test_min_snr_weights_are_the_published_ones(model):
    """CovOG's and Moore's scripts: snr = (sqrt(a) / sqrt(1 - a))^2, plus 1 for the v target, min(., gamma) / ."""
    timesteps = torch.tensor([0, 1, 100, 400, 700, 900, 950, 990, 999])
    alphas = model.scheduler.alphas_cumprod[timesteps]
    snr = (alphas.sqrt() / (1 - alphas).sqrt()) ** 2 + 1
    expected = torch.stack([snr, 5.0 * torch.ones_like(snr)], dim=1).min(dim=1)[0] / snr
    weights = trainer.min_snr_weights(model.scheduler, timesteps, 5.0)
    torch.testing.assert_close(weights, expected)
    assert weights[-1] == 1.0  # zero-terminal SNR: the pure-noise step keeps its full weight
    assert weights[0] < 0.005 and weights[-3:].min() > 0.99


def one_batch(clips, stage, model, count=1):
    torch.manual_seed(0)
    dataset = ConversationClips(clips / "clip3", SIZE, stage=stage, clip_length=4, audio_encoder=model.audio_encoder)
    return collate([dataset[0] for _ in range(count)])


def step_loss(model, stage, batch, dropout=0.1, seed=0):
    torch.manual_seed(seed)
    with torch.no_grad():
        return trainer.TrainingNet(model, stage, trainer.Recipe(condition_dropout=dropout))(batch)


def noising_spy(model, monkeypatch):
    """Records what the step noises (clean latents, noise, timesteps) and makes the UNet predict zeros, so the loss is
    the weighted mean square of the target alone."""
    noised = []
    real_add_noise = model.scheduler.add_noise
    monkeypatch.setattr(model.scheduler, "add_noise", lambda x, noise, t: noised.append((x, noise, t)) or
                        real_add_noise(x, noise, t))
    monkeypatch.setattr(trainer, "denoise", lambda unet, driver, noisy, *rest: torch.zeros_like(noisy))
    return noised


@pytest.mark.parametrize("stage", [1, 2])
def test_the_loss_is_the_min_snr_weighted_v_prediction_error(clips, model, monkeypatch, stage):
    """v = sqrt(a_t) noise - sqrt(1 - a_t) x0 (the target the sampler's v-prediction scheduler reads), each clip's mean
    square weighted by min(snr + 1, gamma) / (snr + 1), by hand."""
    noised = noising_spy(model, monkeypatch)
    loss = step_loss(model, stage, one_batch(clips, stage, model, count=2), dropout=0.0)
    (x0, noise, t), = noised
    a = model.scheduler.alphas_cumprod[t].float()[:, None, None, None, None]
    v = a.sqrt() * noise - (1 - a).sqrt() * x0
    snr = a.flatten() / (1 - a.flatten())
    weights = torch.minimum(snr + 1, torch.tensor(trainer.SNR_GAMMA)) / (snr + 1)
    torch.testing.assert_close(loss, (v.pow(2).mean(dim=(1, 2, 3, 4)) * weights).mean(), rtol=1e-5, atol=1e-6)


def test_the_noise_offset_is_drawn_per_clip_and_channel(clips, model, monkeypatch):
    """The paper's offset noise: one constant per (clip, channel) added to the Gaussian noise, so clips in one batch
    get different brightness shifts."""
    noised = noising_spy(model, monkeypatch)
    batch = one_batch(clips, 2, model, count=2)
    torch.manual_seed(0)
    with torch.no_grad():
        trainer.TrainingNet(model, 2, trainer.Recipe(noise_offset=1.0, condition_dropout=0.0))(batch)
    noise = noised[0][1]
    means = noise.mean(dim=(2, 3, 4))  # (clips, channels): the offset plus the mean of the Gaussian part
    within = (noise - means[:, :, None, None, None]).std()  # the Gaussian part, about 1
    standard_error = within / noise[0, 0].numel() ** 0.5  # of a Gaussian part's mean
    assert (means[0] - means[1]).abs().max() > 8 * standard_error  # each clip its own offset
    assert means.std() > 0.3  # offsets of scale 1


@pytest.mark.parametrize("stage", [1, 2])
def test_condition_dropout_keeps_the_pose(clips, model, monkeypatch, stage):
    """Dropout drops what the unconditional pass drops at sampling (CLIP, reference attention), never the pose: the
    sampler's unconditional rows keep it."""
    poses = []
    monkeypatch.setattr(trainer, "denoise", lambda unet, driver, noisy, t, context, pose, *rest:
                        poses.append(pose.clone()) or torch.zeros_like(noisy))
    batch = one_batch(clips, stage, model)
    step_loss(model, stage, batch, 1.0)
    step_loss(model, stage, batch, 0.0)
    dropped, kept = poses
    assert kept.abs().sum() > 0
    torch.testing.assert_close(dropped, kept)


@pytest.mark.parametrize("stage", [1, 2])
def test_condition_dropout_zeros_clip_and_skips_the_reference(clips, model, monkeypatch, stage):
    seen = []

    def spy(unet, audio_driver, latents, timestep, context, *rest):
        bank = next(p.bank for p in unet.attn_processors.values() if isinstance(p, reference_attention._Reader))
        seen.append((context.clone(), bank.reading_rows.clone(), len(bank.tokens), audio_driver))
        return denoise(unet, audio_driver, latents, timestep, context, *rest)

    monkeypatch.setattr(trainer, "denoise", spy)
    batch = one_batch(clips, stage, model)
    frames = 1 if stage == 1 else 4
    other = dict(batch, reference=batch["reference"].flip(-1))
    dropped, dropped_other = step_loss(model, stage, batch, 1.0), step_loss(model, stage, other, 1.0)
    for context, rows, tokens, _ in seen:
        assert not context.any() and rows.tolist() == [False] * frames and tokens == 0
    assert torch.equal(dropped, dropped_other)  # nothing of the reference reaches the loss
    seen.clear()
    kept, kept_other = step_loss(model, stage, batch, 0.0), step_loss(model, stage, other, 0.0)
    for context, rows, tokens, audio_driver in seen:
        assert context.abs().sum() > 0 and rows.tolist() == [True] * frames and tokens > 0
        assert (audio_driver is not None) == (stage == 2)
    assert not torch.equal(kept, kept_other)


def test_dropout_is_per_sample_in_a_batch(clips, model, monkeypatch):
    seen = []

    def spy(unet, audio_driver, latents, timestep, context, *rest):
        bank = next(p.bank for p in unet.attn_processors.values() if isinstance(p, reference_attention._Reader))
        seen.append((context.clone(), bank.reading_rows.clone()))
        return denoise(unet, audio_driver, latents, timestep, context, *rest)

    monkeypatch.setattr(trainer, "denoise", spy)
    batch = one_batch(clips, 2, model, count=2)
    mixed = False
    for seed in range(12):
        step_loss(model, 2, batch, 0.5, seed)
        context, rows = seen[-1]
        kept = [bool(context[b].any()) for b in range(2)]
        assert rows.tolist() == [k for k in kept for _ in range(4)]  # rows are (sample, frame), sample-major
        if kept[0] != kept[1]:
            mixed = True
            break
    assert mixed


def test_gradient_checkpointing_gives_the_same_gradients(clips, model_folder):
    """Stage 1 with --gradient-checkpointing: the ReferenceNet's pass stops early (see write_reference) and its
    checkpointed blocks run again during backward; the gradients are those of a plain pass."""
    gradients = []
    for checkpointing in (False, True):
        model = CovOGModel.load(model_folder)
        trainer.set_trainable(model, 1)
        if checkpointing:
            model.reference_unet.enable_gradient_checkpointing()
            model.denoising_unet.enable_gradient_checkpointing()
        batch = one_batch(clips, 1, model)
        torch.manual_seed(3)
        trainer.TrainingNet(model, 1, trainer.Recipe(condition_dropout=0.0))(batch).backward()
        gradients.append({n: p.grad for n, p in model.reference_unet.named_parameters() if p.grad is not None})
    assert gradients[0].keys() == gradients[1].keys() and len(gradients[0]) > 100
    for name, gradient in gradients[0].items():
        torch.testing.assert_close(gradients[1][name], gradient, rtol=1e-4, atol=1e-7, msg=name)


def test_stage1_skips_the_motion_modules_stage2_uses_them(clips, model_folder):
    for stage in (1, 2):
        model = CovOGModel.load(model_folder)
        batch = one_batch(clips, stage, model)
        before = step_loss(model, stage, batch)
        with torch.no_grad():
            for name, p in model.denoising_unet.named_parameters():
                if "motion_modules" in name:
                    p.add_(torch.randn_like(p) * 0.1)
        after = step_loss(model, stage, batch)
        assert torch.equal(before, after) == (stage == 1)


# ---------------------------------------------------------------------------------------------------------------------
# Checkpoints, resuming and bad input


def test_resume_continues_the_step_count(clips, model_folder, tmp_path, capsys, monkeypatch):
    out = tmp_path / "out"
    common = ["--stage", 1, "--data", clips / "clip2", "--model", model_folder, "--out", out, *FAST]
    code, _, err = run(capsys, *common, "--steps", 2, "--save-every", 1)
    assert code == 0, err
    assert sorted(p.name for p in out.iterdir()) == ["checkpoint-1", "checkpoint-2", "state-2"]

    started = {}
    original = trainer.train

    def spy(run_, progress=None):
        started["step"] = run_.start_step
        started["pose_guider"] = {k: v.clone() for k, v in run_.model.pose_guider.state_dict().items()}
        return original(run_, progress)

    monkeypatch.setattr(trainer, "train", spy)
    code, stdout, err = run(capsys, *common, "--steps", 3, "--resume")
    assert code == 0, err
    assert f"resuming from {out / 'state-2'} at step 2" in stdout
    assert "the data changed" not in stdout  # the same clip: the same order as an uninterrupted run
    assert re.findall(r"^step (\d+)/3", stdout, flags=re.M) == ["3"]
    assert started["step"] == 2
    saved = CovOGModel.load(out / "checkpoint-2").pose_guider.state_dict()
    assert all(torch.equal(started["pose_guider"][k], saved[k]) for k in saved)  # the state's weights, not --model
    assert sorted(p.name for p in out.iterdir()) == ["checkpoint-1", "checkpoint-2", "checkpoint-3", "state-3"]
    saved = json.loads((out / "state-3" / "training.json").read_text())
    assert saved == {"stage": 1, "step": 3, "steps_per_epoch": 1}

    code, _, err = run(capsys, *common, "--steps", 4)
    assert code == 2 and "pass --resume" in err
    code, _, err = run(capsys, "--stage", 2, *common[2:], "--steps", 4, "--resume")
    assert code == 2 and (f"{out / 'state-3'} is stage-1 training; this run is stage 2: start it in another --out "
                          "from a checkpoint-N folder") in err


def training_state(folder):
    """What accelerate saved: the trained weights, the optimizer's state and this process's random states."""
    weights = load_file(folder / "model.safetensors")
    optimizer = torch.load(folder / "optimizer.bin", weights_only=True)
    rng = torch.load(folder / "random_states_0.pkl", weights_only=False)  # our own run's file
    return weights, optimizer, rng


def assert_same(a, b, where=""):
    """Equal, bit for bit, through nested dicts, lists and tuples of tensors, arrays and plain values."""
    if isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for key in a:
            assert_same(a[key], b[key], f"{where}/{key}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f"{where}/{i}")
    elif isinstance(a, torch.Tensor):
        assert a.dtype == b.dtype and torch.equal(a, b), where
    elif isinstance(a, np.ndarray):
        assert np.array_equal(a, b), where
    else:
        assert a == b, where


@pytest.mark.parametrize("stage", [1, 2])
def test_resume_is_exact(clips, model_folder, tmp_path, capsys, stage):
    """4 steps straight, or 2 steps, --resume, 2 more: bit-identical weights, optimizer state, random states and
    losses. Three clips (one twice) per epoch: the resume falls mid-epoch and step 4 starts the next epoch."""
    data = [clips / "clip2", clips / "clip3", clips / "clip2"]
    common = ["--stage", stage, "--data", *data, "--model", model_folder, "--clip-frames", 4, *FAST,
              "--condition-dropout", 0.5]
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    code, straight_log, err = run(capsys, *common, "--out", straight, "--steps", 4)
    assert code == 0, err
    assert run(capsys, *common, "--out", resumed, "--steps", 2)[0] == 0
    code, resumed_log, err = run(capsys, *common, "--out", resumed, "--steps", 4, "--resume")
    assert code == 0, err
    assert losses(resumed_log) == losses(straight_log)[2:]
    assert_same(training_state(resumed / "state-4"), training_state(straight / "state-4"))
    a, b = CovOGModel.load(straight / "checkpoint-4"), CovOGModel.load(resumed / "checkpoint-4")
    for name, module in a.modules.items():
        assert_same(module.state_dict(), getattr(b, name).state_dict(), name)


def test_ctrl_c_stops_after_the_step_saves_it_and_resume_is_exact(clips, model_folder, tmp_path, capsys,
                                                                    monkeypatch):
    """Ctrl-C while step 3 of 4 trains (saves every 4 steps): the step finishes, its state is saved, the command says
    how to go on and exits 130; --resume then ends bit-identical to 4 uninterrupted steps. The signal handler is put
    back afterwards."""
    import signal

    data = [clips / "clip2", clips / "clip3", clips / "clip2"]
    common = ["--stage", 1, "--data", *data, "--model", model_folder, "--clip-frames", 4, *FAST,
              "--save-every", 4]
    straight, stopped = tmp_path / "straight", tmp_path / "stopped"
    assert run(capsys, *common, "--out", straight, "--steps", 4)[0] == 0
    loader = trainer.epoch_loader

    def interrupted_at_the_third_batch(run_, epoch, skip):
        for k, batch in enumerate(loader(run_, epoch, skip), skip):
            if k == 2:
                signal.raise_signal(signal.SIGINT)  # as a user's Ctrl-C, while the step has not run yet
            yield batch

    handler = signal.getsignal(signal.SIGINT)
    monkeypatch.setattr(trainer, "epoch_loader", interrupted_at_the_third_batch)
    code, _, err = run(capsys, *common, "--out", stopped, "--steps", 4)
    assert code == 130 and "stopped at step 3 of 4: its state is saved" in err and "--resume" in err
    assert signal.getsignal(signal.SIGINT) is handler
    assert sorted(p.name for p in stopped.iterdir() if p.name.startswith(("state-", "checkpoint-"))) == [
        "checkpoint-3", "state-3"]
    monkeypatch.setattr(trainer, "epoch_loader", loader)
    assert run(capsys, *common, "--out", stopped, "--steps", 4, "--resume")[0] == 0
    assert_same(training_state(stopped / "state-4"), training_state(straight / "state-4"))


def test_a_resume_that_cannot_restore_the_random_states_says_so(clips, model_folder, tmp_path, capsys):
    """A corrupt random_states_0.pkl once made --resume silently inexact (accelerate only logs it): now it stops,
    naming the file, unless told to go on; then it warns."""
    common = ["--stage", 1, "--data", clips / "clip2", "--model", model_folder, "--clip-frames", 4, *FAST,
              "--out", tmp_path / "run"]
    assert run(capsys, *common, "--steps", 1)[0] == 0
    states = tmp_path / "run" / "state-1" / "random_states_0.pkl"
    states.write_bytes(states.read_bytes()[:40])
    code, _, err = run(capsys, *common, "--steps", 2, "--resume")
    assert code == 2 and err.strip().splitlines()[-1] == (
        f"error: {states}: the random states could not be restored (missing or corrupt), so the run would not "
        "continue as an uninterrupted one: pass --allow-inexact-resume to go on")
    assert not (tmp_path / "run" / "state-2").exists()
    code, out, err = run(capsys, *common, "--steps", 2, "--resume", "--allow-inexact-resume")
    assert code == 0, err
    assert f"warning: {states} could not be restored" in out and (tmp_path / "run" / "state-2").is_dir()


def test_loading_workers_read_what_the_main_process_reads(clips, model_folder, tmp_path, capsys):
    """An item is a function of its key alone: the same training with 2 loading workers, bit for bit."""
    common = ["--stage", 1, "--data", clips / "clip2", clips / "clip3", "--model", model_folder, "--steps", 2, *FAST]
    outs = []
    for workers in ("0", "2"):
        outs.append(tmp_path / f"workers{workers}")
        args = [*common, "--out", outs[-1]]
        args[args.index("--workers") + 1] = workers
        code, _, err = run(capsys, *args)
        assert code == 0, err
    assert_same(training_state(outs[0] / "state-2"), training_state(outs[1] / "state-2"))


@pytest.fixture(scope="module")
def short_clip(speech, tmp_path_factory):
    folder = tmp_path_factory.mktemp("short") / "short"
    synthesize_conversation(ConversationSpec(num_people=2, seconds=1.0, width=256, height=128, seed=5),
                            speech).save(folder)
    return folder


@pytest.mark.parametrize("change, message", [
    (lambda empty, short: ["--model", empty], "not a CovOG model folder"),
    (lambda empty, short: ["--data", empty], "no clips found"),
    (lambda empty, short: ["--width", "100"], "multiples of 64"),
    (lambda empty, short: ["--width", "0"], "--width 0 --height 64: both must be positive multiples of 64"),
    (lambda empty, short: ["--height", "0"], "--width 128 --height 0: both must be positive multiples of 64"),
    (lambda empty, short: ["--steps", "0"], "--steps must be at least 1"),
    (lambda empty, short: ["--batch", "2"], r"the clips show \[2, 3\] people.*--batch 1"),
    (lambda empty, short: ["--stage", "2", "--clip-frames", "40"], "at most 32 frames"),
    (lambda empty, short: ["--stage", "2", "--clip-frames", "32", "--data", short], "short: 25 frames; stage 2"),
])
def test_bad_input_is_one_clear_line(clips, model_folder, short_clip, tmp_path, capsys, change, message):
    empty = tmp_path / "empty"
    empty.mkdir()
    args = ["--stage", "1", "--data", clips / "clip2", clips / "clip3", "--model", model_folder,
            "--out", tmp_path / "out", *FAST, *change(empty, short_clip)]
    code, _, err = run(capsys, *args)
    assert code == 2
    assert err.strip().splitlines()[-1].startswith("error: ") and "Traceback" not in err
    assert re.search(message, err), err
    assert not (tmp_path / "out").exists()


def test_the_command_line_settings_reach_the_training(clips, model_folder, tmp_path):
    """What prepare builds from the command line: the recipe, the trained parts, gradient checkpointing only where
    the stage trains, and the audio driver left out of the ablation."""
    args = train.parse_args(["--stage", "2", "--data", str(clips / "clip2"), "--model", str(model_folder),
                             "--out", str(tmp_path / "out"), "--clip-frames", "4", "--noise-offset", "0.07",
                             "--snr-gamma", "3.5", "--condition-dropout", "0.2", "--gradient-checkpointing",
                             "--no-audio-driver", *map(str, FAST)])
    prepared = trainer.prepare(train.settings_from(args))
    net = prepared.accelerator.unwrap_model(prepared.net)
    assert net.recipe == trainer.Recipe(noise_offset=0.07, snr_gamma=3.5, condition_dropout=0.2)
    assert set(net.trained) == {"denoising_unet"} and not net.audio_driver
    assert prepared.model.denoising_unet.is_gradient_checkpointing
    assert not prepared.model.reference_unet.is_gradient_checkpointing  # stage 1's, frozen here


def test_resuming_on_other_data_says_the_order_changed(clips, model_folder, tmp_path, capsys):
    out = tmp_path / "out"
    common = ["--stage", 1, "--model", model_folder, "--out", out, *FAST]
    code, _, err = run(capsys, *common, "--data", clips / "clip2", "--steps", 1)
    assert code == 0, err
    code, stdout, err = run(capsys, *common, "--data", clips / "clip2", clips / "clip3", "--steps", 2, "--resume")
    assert code == 0, err
    assert ("the data changed since state-1 (1 steps per epoch, now 2): the clips are not read in the order of an "
            "uninterrupted run") in stdout
