"""The two training options the learning proof (benchmarks/learning_proof.py) uses: stage 2 without the audio driver
(its ablation) and torch's fused AdamW; tiny model, tiny synthetic clips, as tests/covog/test_train.py."""

import numpy as np
import pytest
import torch
from test_train import FAST, changed_parameters, clips, losses, model, model_folder, names, run  # noqa: F401

from covog.models.denoiser import denoise
from covog.models.model import CovOGModel
from covog.training import trainer


def test_stage2_without_the_audio_driver_trains_the_motion_modules_alone(clips, tmp_path, capsys):  # noqa: F811
    """From a model whose driver is untrained (a fresh one) the ablation leaves it untrained and untouched, and the
    UNet never runs it; the motion modules learn."""
    folder = CovOGModel.random("tiny").save(tmp_path / "fresh")
    out = tmp_path / "out"
    calls = []
    original = trainer.denoise

    def spy(unet, audio_driver, *args):
        calls.append((audio_driver, args[-1]))
        return original(unet, audio_driver, *args)

    trainer.denoise = spy
    try:
        code, stdout, err = run(capsys, "--stage", 2, "--data", clips, "--model", folder, "--out", out, "--steps", 2,
                                "--clip-frames", 4, "--no-audio-driver", *FAST)
    finally:
        trainer.denoise = original
    assert code == 0, err
    assert len(losses(stdout)) == 2 and all(np.isfinite(losses(stdout)))
    assert calls and all(driver is None and audio is None for driver, audio in calls)
    before, after = CovOGModel.load(folder), CovOGModel.load(out / "checkpoint-2")
    changed = changed_parameters(before, after)
    motion = names(before.denoising_unet, lambda n: "motion_modules" in n)
    # the motion modules' zero-initialised outputs hold back the rest of them at the first step; what moves is theirs
    assert changed["denoising_unet"] and changed["denoising_unet"] <= motion
    for component in ("audio_driver", "vae", "image_encoder", "audio_encoder", "reference_unet", "pose_guider",
                      "pose_adaptor"):
        assert changed[component] == set(), component
    assert not after.audio_driver.trained


def test_the_ablation_is_the_same_training_without_the_driver(clips, model_folder, tmp_path, capsys):  # noqa: F811
    """From a model with a trained driver: the ablation's motion modules learn as in a stage 2 whose driver adds
    nothing; the driver itself is left exactly as it was (and still marked trained, as it came)."""
    model = CovOGModel.load(model_folder)
    assert model.audio_driver.trained
    net = trainer.TrainingNet(model, 2, trainer.Recipe(condition_dropout=0.0), audio_driver=False)
    assert set(net.trained) == {"denoising_unet"} and not net.audio_driver
    parameters = trainer.set_trainable(model, 2, audio_driver=False)
    assert {id(p) for p in parameters} == {id(p) for n, p in model.denoising_unet.named_parameters()
                                           if "motion_modules" in n}
    assert all(not p.requires_grad for p in model.audio_driver.parameters())
    out = tmp_path / "out"
    code, _, err = run(capsys, "--stage", 2, "--data", clips, "--model", model_folder, "--out", out, "--steps", 1,
                       "--clip-frames", 4, "--no-audio-driver", *FAST)
    assert code == 0, err
    after = CovOGModel.load(out / "checkpoint-1")
    assert changed_parameters(model, after)["audio_driver"] == set() and after.audio_driver.trained


def test_no_audio_driver_is_refused_in_stage1(clips, model_folder, tmp_path, capsys):  # noqa: F811
    code, _, err = run(capsys, "--stage", 1, "--data", clips, "--model", model_folder, "--out", tmp_path / "o",
                       "--steps", 1, "--no-audio-driver", *FAST)
    assert code == 2 and "--no-audio-driver is a stage-2 ablation" in err


def test_fused_optimizer_flag_is_accepted_and_trains(clips, model_folder, tmp_path, capsys):  # noqa: F811
    """One stage-1 step with --fused-optimizer: it runs and the pose guider moves."""
    out = tmp_path / "fused"
    code, stdout, err = run(capsys, "--stage", 1, "--data", clips, "--model", model_folder, "--out", out,
                            "--steps", 1, *FAST, "--fused-optimizer")
    assert code == 0, err
    assert len(losses(stdout)) == 1
    assert changed_parameters(CovOGModel.load(model_folder), CovOGModel.load(out / "checkpoint-1"))["pose_guider"]


def test_fused_adamw_takes_the_same_steps_as_the_default():
    """torch's fused AdamW and the default one, as make_optimizer builds them, give the same weights after three
    steps (to float rounding)."""
    accelerator = type("A", (), {"device": torch.device("cpu"), "print": lambda self, *a: None})()
    torch.manual_seed(0)
    start = torch.nn.Linear(8, 4)
    x = torch.randn(16, 8)
    weights = {}
    for fused in (False, True):
        layer = torch.nn.Linear(8, 4)
        layer.load_state_dict(start.state_dict())
        optimizer = trainer.make_optimizer(list(layer.parameters()), 1e-2, 1, accelerator, fused=fused)
        for _ in range(3):
            optimizer.zero_grad()
            layer(x).pow(2).mean().backward()
            optimizer.step()
        weights[fused] = layer.weight.detach().clone()
    assert not torch.equal(weights[False], start.weight)
    assert torch.allclose(weights[False], weights[True], atol=1e-6)


def test_make_optimizer_fused_flag():
    parameters = [torch.nn.Parameter(torch.zeros(3))]
    accelerator = type("A", (), {"device": torch.device("cpu"), "print": lambda self, *a: None})()
    assert trainer.make_optimizer(parameters, 1e-4, 1, accelerator, fused=True).defaults["fused"] is True
    assert not trainer.make_optimizer(parameters, 1e-4, 1, accelerator).defaults.get("fused")


@pytest.mark.parametrize("audio_driver", [True, False])
def test_training_net_runs_the_driver_only_when_asked(clips, model, audio_driver, monkeypatch):  # noqa: F811
    from test_train import one_batch

    seen = []
    monkeypatch.setattr(trainer, "denoise", lambda unet, driver, *args: seen.append(driver) or denoise(unet, driver,
                                                                                                     *args))
    net = trainer.TrainingNet(model, 2, trainer.Recipe(condition_dropout=0.0), audio_driver=audio_driver)
    net(one_batch(clips, 2, model))
    assert seen == [model.audio_driver if audio_driver else None]
