"""Checkpoint conversion: synthetic Moore-AnimateAnyone / CovOG / AnimateDiff / accelerate files with exactly the
published key sets (shared/data/checkpoint-layouts), tiny tensors under the real names."""

import collections
import json
import os

import pytest
import torch
from conftest import SHARED_DATA

from covog.convert import main
from covog.loaders.checkpoint_files import CheckpointError, load_state_dict
from covog.loaders.checkpoints import REFERENCE_OUTPUT_KEYS, convert, kind_of_file
from covog.loaders.key_rules import pose_encoder_keys, unet3d_key_to_diffusers
from covog.models.model import CovOGModel
from covog.models.pose_encoder import MultiHumanPoseEncoder

LAYOUTS = SHARED_DATA / "checkpoint-layouts"
ENCODERS_RANDOM = ["vae", "image_encoder", "audio_encoder"]


def layout(name):
    if not LAYOUTS.is_dir():
        pytest.skip(f"checkpoint layouts not found at {LAYOUTS}")
    return json.loads((LAYOUTS / name).read_text())


def randomized(state, seed):
    """The same keys and shapes with distinct random values, so a round trip cannot pass by accident."""
    generator = torch.Generator().manual_seed(seed)
    return {key: torch.randn(value.shape, generator=generator) for key, value in state.items()}


def to_moore_unet3d(unet_motion_state):
    """diffusers UNetMotionModel keys -> the Moore/CovOG 3D UNet's, through the published mapping read backwards;
    the positional table goes into both of Moore's slots, as AnimateDiff stores it."""
    to_moore = {d: m for m, d in layout("mapping_moore_unet3d_full_to_diffusers_unet_motion.json").items()}
    moore = {}
    for key, value in unet_motion_state.items():
        moore[to_moore[key]] = value
        if to_moore[key].endswith(".attention_blocks.0.pos_encoder.pe"):
            moore[to_moore[key].replace(".attention_blocks.0.", ".attention_blocks.1.")] = value
    return moore


def strip_guider(state):
    return {key.removeprefix("guider."): value for key, value in state.items()}


@pytest.fixture(scope="module")
def source():
    """Our components' tiny state dicts with random values (the truth), and the Moore/CovOG files made from them."""
    model = CovOGModel.random("tiny")
    truth = {name: randomized(module.state_dict(), seed) for seed, (name, module) in enumerate(model.modules.items())}
    moore_full = to_moore_unet3d(truth["denoising_unet"])
    files = {
        "reference_unet": {k: v for k, v in truth["reference_unet"].items() if k not in REFERENCE_OUTPUT_KEYS},
        "denoising_unet": {k: v for k, v in moore_full.items() if ".motion_modules." not in k},
        "motion_module": {k: v for k, v in moore_full.items() if ".motion_modules." in k},
        "pose_guider": strip_guider(truth["pose_guider"]),
        "pose_adaptor": strip_guider(truth["pose_adaptor"]),
        "stage2_noaudio": moore_full,
        "stage2": {**moore_full, **truth["audio_driver"]},
    }
    return truth, files


@pytest.fixture(scope="module")
def base_folder(tmp_path_factory):
    """A tiny SD-1.5-style diffusers folder (vae/, unet/, image_encoder/) and a wav2vec2 CTC folder (as
    facebook/wav2vec2-base-960h is: the encoder under `wav2vec2.`, plus a CTC head)."""
    from transformers import Wav2Vec2ForCTC

    folder = tmp_path_factory.mktemp("sources")
    other = CovOGModel.random("tiny", seed=7)
    other.vae.save_pretrained(folder / "sd" / "vae")
    other.reference_unet.save_pretrained(folder / "sd" / "unet")
    other.image_encoder.save_pretrained(folder / "sd" / "image_encoder")
    ctc = Wav2Vec2ForCTC(other.audio_encoder.config)
    ctc.wav2vec2.load_state_dict(other.audio_encoder.state_dict())
    ctc.save_pretrained(folder / "wav2vec2")
    return folder / "sd", folder / "wav2vec2", other


@pytest.fixture(scope="module")
def moore_folder(source, tmp_path_factory):
    _, files = source
    folder = tmp_path_factory.mktemp("moore")
    for name in ("reference_unet", "denoising_unet", "pose_guider", "motion_module"):
        torch.save(files[name], folder / f"{name}.pth")
    return folder


@pytest.fixture(scope="module")
def covog_outputs(source, tmp_path_factory):
    """CovOG stage 1 (three steps kept, as the training script does) and stage 2 (only denoising_unet-N.pth)."""
    _, files = source
    stage1, stage2 = tmp_path_factory.mktemp("CovOG_stage1"), tmp_path_factory.mktemp("CovOG_stage2")
    for step, scale in ((100, -1.0), (200, 1.0), (30, -2.0)):  # only step 200 holds the truth
        for name in ("reference_unet", "pose_guider", "pose_adaptor"):
            torch.save({k: v * scale for k, v in files[name].items()}, stage1 / f"{name}-{step}.pth")
        # stage 1's spatial UNet differs from stage 2's: stage 2 is given later, so its values must win
        torch.save({k: v + 5 for k, v in files["denoising_unet"].items()}, stage1 / f"denoising_unet-{step}.pth")
    torch.save(files["stage2"], stage2 / "denoising_unet-300.pth")
    return stage1, stage2 / "denoising_unet-300.pth"


def assert_state_equal(module, expected, keys=None):
    state = module.state_dict()
    for key in keys if keys is not None else expected:
        torch.testing.assert_close(state[key], expected[key].to(state[key].dtype), rtol=0, atol=0, msg=key)


def reports_by_name(reports):
    return {report.component: report for report in reports}


# ---------------------------------------------------------------------------------------------- key rules

def test_the_rules_reproduce_the_published_mappings():
    full = layout("mapping_moore_unet3d_full_to_diffusers_unet_motion.json")
    motion = layout("mapping_moore_motion_module_to_diffusers_motion_adapter.json")
    for mapping, keys in ((full, layout("moore_denoising_unet_stage2_full.json")),
                          (motion, layout("moore_motion_module.json"))):
        assert {key: unet3d_key_to_diffusers(key) for key in mapping} == mapping
        dropped = [key for key in keys if key not in mapping]
        assert len(dropped) == 21 and all(key.endswith(".attention_blocks.1.pos_encoder.pe") for key in dropped)
        assert all(unet3d_key_to_diffusers(key) is None for key in dropped)
    assert set(full.values()) == set(layout("diffusers_unet_motion_sd15.json"))
    assert set(motion.values()) == set(layout("diffusers_motion_adapter_v2.json"))


def test_synthetic_files_have_exactly_the_published_keys(source):
    truth, files = source
    expected = {
        "reference_unet": "moore_reference_unet.json", "denoising_unet": "moore_denoising_unet.json",
        "motion_module": "moore_motion_module.json", "pose_guider": "moore_pose_guider.json",
        "pose_adaptor": "covog_stage1_pose_adaptor.json", "stage2_noaudio": "covog_stage2_denoising_unet_noaudio.json",
        "stage2": "covog_stage2_denoising_unet.json",
    }
    for name, json_name in expected.items():
        published = layout(json_name)
        assert set(files[name]) == set(published), name
        assert all(files[name][key].ndim == len(shape) for key, shape in published.items()), name
    assert set(truth["audio_driver"]) == set(layout("covog_stage2_audio_modules_only.json"))
    assert set(layout("covog_stage1_reference_unet.json")) == set(files["reference_unet"])
    assert set(layout("covog_stage1_pose_guider.json")) == set(files["pose_guider"])
    assert set(accelerate_state(files)) == set(layout("covog_stage2_accelerate_pytorch_model.json"))


def accelerate_state(files, ddp=False):
    """accelerate's whole-Net state dict of CovOG stage 2 (reference UNet and pose encoders in fp16, as saved)."""
    parts = {"reference_unet": files["reference_unet"], "denoising_unet": files["stage2"],
             "pose_guider": files["pose_guider"], "pose_adaptor": files["pose_adaptor"]}
    state = {}
    for prefix, part in parts.items():
        for key, value in part.items():
            state[f"{'module.' if ddp else ''}{prefix}.{key}"] = value if prefix == "denoising_unet" else value.half()
    return state


def test_a_controlnet_cond_embedding_is_accepted_for_the_guider():
    weight = torch.ones(2)
    tensors, dropped = pose_encoder_keys({"controlnet_cond_embedding.conv_in.weight": weight,
                                          "controlnet_mid_block.weight": torch.zeros(1)})
    assert tensors == {"guider.conv_in.weight": weight} and dropped == ["controlnet_mid_block.weight"]
    assert pose_encoder_keys({"conv_in.weight": weight}) == ({"guider.conv_in.weight": weight}, [])


def controlnet_state(guider_state):
    """A ControlNet's state dict around a pose guider's weights (its own conv_in and a block, too)."""
    return {**{f"controlnet_cond_embedding.{k}": v for k, v in strip_guider(guider_state).items()},
            "conv_in.weight": torch.ones(2), "controlnet_mid_block.weight": torch.ones(3)}


def test_a_guider_from_a_controlnet_starts_at_zero(source, tmp_path):
    """AnimateAnyone's and CovOG's stage 1 take the ControlNet's conditioning embedding without its conv_out, so the
    guider adds nothing at first: so does the converter, from a ControlNet file or a diffusers ControlNet folder."""
    from safetensors.torch import save_file

    truth, _ = source
    file = tmp_path / "diffusion_pytorch_model.bin"
    torch.save(controlnet_state(truth["pose_guider"]), file)
    folder = tmp_path / "control_v11p_sd15_openpose"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"_class_name": "ControlNetModel"}))
    save_file(controlnet_state(truth["pose_guider"]), folder / "diffusion_pytorch_model.safetensors")
    for controlnet in (file, folder):
        model, reports = convert([controlnet], size="tiny", allow_random=all_but("pose_guider"))
        state = model.pose_guider.state_dict()
        assert not state["guider.conv_out.weight"].any() and not state["guider.conv_out.bias"].any()
        assert_state_equal(model.pose_guider, truth["pose_guider"],
                           keys=[k for k in state if not k.startswith("guider.conv_out.")])
        with torch.no_grad():
            assert not model.pose_guider(torch.rand(1, 2, 3, 32, 32)).any()
        report = reports_by_name(reports)["pose_guider"]
        assert report.missing == [] and sorted(report.unexpected) == [
            "controlnet_cond_embedding.conv_out.bias", "controlnet_cond_embedding.conv_out.weight",
            "controlnet_mid_block.weight", "conv_in.weight"]


# ---------------------------------------------------------------------------------------------- conversions

def test_a_moore_release_converts_with_base_and_audio_encoder(source, moore_folder, base_folder):
    truth, files = source
    sd, wav2vec2, other = base_folder
    model, reports = convert([moore_folder], base=sd, audio_encoder=wav2vec2, size="tiny",
                             allow_random=["pose_adaptor", "audio_driver"])
    reports = reports_by_name(reports)
    assert (reports["reference_unet"].loaded, reports["reference_unet"].missing) == (686, [])
    denoising = reports["denoising_unet"]
    assert (denoising.loaded, denoising.missing) == (1253, [])
    assert len(denoising.unexpected) == 21 and all(k.endswith("attention_blocks.1.pos_encoder.pe")
                                                   for k in denoising.unexpected)
    assert len(reports["pose_adaptor"].missing) == 16 and reports["pose_adaptor"].loaded == 0
    assert reports["vae"].missing == [] and reports["audio_encoder"].missing == []
    assert sorted(reports["audio_encoder"].unexpected) == ["lm_head.bias", "lm_head.weight"]

    assert_state_equal(model.reference_unet, truth["reference_unet"], keys=files["reference_unet"])
    assert_state_equal(model.reference_unet, other.reference_unet.state_dict(), keys=REFERENCE_OUTPUT_KEYS)
    assert_state_equal(model.denoising_unet, truth["denoising_unet"])  # every motion key, pe tables included
    assert_state_equal(model.pose_guider, truth["pose_guider"])
    assert_state_equal(model.vae, other.vae.state_dict())
    assert_state_equal(model.image_encoder, other.image_encoder.state_dict())
    assert_state_equal(model.audio_encoder, other.audio_encoder.state_dict())
    assert not model.audio_driver.trained and any("untrained" in n for n in reports["audio_driver"].notes)


def test_covog_training_outputs_convert_latest_step_and_later_source_wins(source, covog_outputs):
    truth, files = source
    stage1, stage2 = covog_outputs
    model, reports = convert([stage1, stage2], size="tiny", allow_random=ENCODERS_RANDOM)
    reports = reports_by_name(reports)
    assert sorted(reports["reference_unet"].missing) == sorted(REFERENCE_OUTPUT_KEYS)  # the documented drop
    assert any("conv_out" in note for note in reports["reference_unet"].notes)
    assert reports["reference_unet"].sources == [str(stage1 / "reference_unet-200.pth")]
    assert reports["audio_driver"].loaded == len(truth["audio_driver"]) and not reports["audio_driver"].missing
    assert reports["denoising_unet"].sources == [str(stage1 / "denoising_unet-200.pth"), str(stage2)]
    for name in ("denoising_unet", "pose_guider", "pose_adaptor", "audio_driver"):
        assert_state_equal(getattr(model, name), truth[name])
    assert_state_equal(model.reference_unet, truth["reference_unet"], keys=files["reference_unet"])
    assert model.audio_driver.trained  # every audio weight came from the stage-2 checkpoint


def test_an_accelerate_checkpoint_with_ddp_prefix_converts(source, tmp_path):
    truth, files = source
    folder = tmp_path / "checkpoint-7"
    folder.mkdir()
    torch.save(accelerate_state(files, ddp=True), folder / "pytorch_model.bin")
    model, reports = convert([folder], size="tiny", allow_random=ENCODERS_RANDOM)
    reports = reports_by_name(reports)
    assert all(not reports[name].missing for name in ("denoising_unet", "pose_guider", "pose_adaptor",
                                                      "audio_driver"))
    for name in ("denoising_unet", "audio_driver"):  # saved in fp32
        assert_state_equal(getattr(model, name), truth[name])
    for name in ("pose_guider", "pose_adaptor"):  # saved in fp16: equal to the fp16 values
        assert_state_equal(getattr(model, name), {k: v.half() for k, v in truth[name].items()})


def test_an_accelerate_checkpoint_with_a_stray_key_names_the_file_and_the_key(source, tmp_path):
    from covog.loaders.key_rules import ACCELERATE_PREFIXES

    _, files = source
    weights = tmp_path / "checkpoint-3" / "pytorch_model.bin"
    weights.parent.mkdir()
    torch.save({**accelerate_state(files, ddp=False), "ema.shadow": torch.zeros(2)}, weights)
    with pytest.raises(CheckpointError) as caught:
        convert([weights.parent], size="tiny", allow_random=ENCODERS_RANDOM)
    assert str(caught.value) == (f"{weights}: 1 keys outside the known submodules {', '.join(ACCELERATE_PREFIXES)}, "
                                 "e.g. 'ema.shadow'")


def test_a_base_folder_without_its_subfolders_is_named(tmp_path):
    with pytest.raises(CheckpointError) as caught:
        convert([], base=tmp_path, size="tiny", allow_random=all_but("vae"))
    assert str(caught.value) == f"{tmp_path}: a diffusers folder without vae/, image_encoder/ or unet/"


def test_an_sd_folder_and_an_animatediff_ckpt_make_a_denoising_unet(source, base_folder, tmp_path):
    truth, files = source
    sd, _, other = base_folder
    ckpt = tmp_path / "mm_sd_v15_v2.ckpt"
    torch.save({"state_dict": files["motion_module"], "global_step": 5}, ckpt)  # the AnimateDiff wrapper
    assert load_state_dict(ckpt).keys() == files["motion_module"].keys()
    model, reports = convert([sd, ckpt], size="tiny",
                             allow_random=["audio_encoder", "pose_guider", "pose_adaptor", "audio_driver"])
    assert reports_by_name(reports)["denoising_unet"].missing == []
    motion_keys = [k for k in truth["denoising_unet"] if ".motion_modules." in k]
    assert_state_equal(model.denoising_unet, truth["denoising_unet"], keys=motion_keys)
    spatial = other.reference_unet.state_dict()
    assert_state_equal(model.denoising_unet, spatial, keys=spatial)
    assert_state_equal(model.reference_unet, spatial)


# ---------------------------------------------------------------------------------------------- refusals

class RunsCode:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return open, (str(self.marker), "w")  # would create the marker file when unpickled


class CustomStateDict(collections.OrderedDict):
    pass


def test_a_pickle_with_code_or_custom_objects_is_refused(tmp_path):
    marker = tmp_path / "ran"
    cases = {
        "code.pth": ({"w": torch.zeros(1), "x": RunsCode(marker)}, r"refused.*open"),
        "custom.pth": (CustomStateDict(w=torch.zeros(1)), r"refused.*CustomStateDict"),
        "function.pth": ({"w": torch.zeros(1), "f": os.getcwd}, r"refused.*getcwd"),
        "number.pth": ({"w": torch.zeros(1), "step": 3}, r"key 'step' holds a int"),
        "nested.pth": ({"w": {"x": torch.zeros(1)}}, r"key 'w' holds a dict"),
        "list.pth": ([torch.zeros(1)], r"holds a list"),
    }
    for name, (content, message) in cases.items():
        torch.save(content, tmp_path / name)
        with pytest.raises(CheckpointError, match=message) as caught:
            load_state_dict(tmp_path / name)
        assert str(tmp_path / name) in str(caught.value)
    assert not marker.exists()


def test_unreadable_files_are_clear_errors(tmp_path):
    with pytest.raises(CheckpointError, match="no such checkpoint file"):
        load_state_dict(tmp_path / "missing.pth")
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(CheckpointError, match="not a checkpoint"):
        load_state_dict(tmp_path / "notes.txt")
    (tmp_path / "garbage.pth").write_bytes(b"hello world")
    with pytest.raises(CheckpointError, match="garbage.pth: not a readable PyTorch checkpoint"):
        load_state_dict(tmp_path / "garbage.pth")
    (tmp_path / "garbage.safetensors").write_bytes(b"hello world")
    with pytest.raises(CheckpointError, match="not a readable safetensors file"):
        load_state_dict(tmp_path / "garbage.safetensors")
    with pytest.raises(CheckpointError, match="cannot tell which component"):
        kind_of_file(tmp_path / "weights.pth", {"conv_in.weight": torch.zeros(1)})


def test_a_max_len_24_positional_table_is_a_clear_error(source, tmp_path):
    _, files = source
    motion = {k: v[:, :24] if k.endswith(".pe") else v for k, v in files["motion_module"].items()}
    torch.save(motion, tmp_path / "motion_module.pth")
    with pytest.raises(CheckpointError, match=r"positional table down_blocks\.0\.motion_modules\.0\.transformer_"
                                              r"blocks\.0\.pos_embed\.pe .*attention_blocks\.0\.pos_encoder\.pe.*"
                                              r"max_len 24, the model needs 32"):
        convert([tmp_path / "motion_module.pth"], size="tiny", allow_random=["denoising_unet", *ENCODERS_RANDOM])


def test_a_shape_mismatch_names_key_and_both_shapes(source, tmp_path):
    _, files = source
    torch.save(files["pose_adaptor"], tmp_path / "pose_guider.pth")  # the adaptor's channels do not fit the guider
    with pytest.raises(CheckpointError, match=r"pose_guider: guider\.blocks\.5\.weight \(.*pose_guider\.pth\) has "
                                              r"shape \[8, 8, 3, 3\], the model needs \[16, 8, 3, 3\]"):
        convert([tmp_path / "pose_guider.pth"], size="tiny", allow_random=["pose_guider"])


def test_keys_a_component_lacks_are_refused(source, tmp_path):
    _, files = source
    torch.save({**files["reference_unet"], "conv_extra.weight": torch.zeros(1)}, tmp_path / "reference_unet.pth")
    with pytest.raises(CheckpointError, match=r"reference_unet: 1 keys it does not have, e.g. 'conv_extra.weight'"):
        convert([tmp_path / "reference_unet.pth"], size="tiny", allow_random=["reference_unet"])


def test_missing_components_need_allow_random_and_the_error_says_where_to_find_them(moore_folder):
    with pytest.raises(CheckpointError) as caught:
        convert([moore_folder], size="tiny")
    message = str(caught.value)
    assert message.startswith("missing weights (name the component in --allow-random to keep a fresh init "
                              "instead): ")
    assert len(message.split("; ")) >= 5  # one clause per component
    for component in ("vae", "image_encoder", "audio_encoder", "pose_adaptor", "audio_driver"):
        assert f"{component}: " in message
    for component in ("reference_unet", "denoising_unet", "pose_guider"):
        assert f"{component}: " not in message
    assert "--base" in message and "pose_adaptor-N.pth" in message and "use_audio_module" in message
    with pytest.raises(CheckpointError, match="unknown component"):
        convert([moore_folder], size="tiny", allow_random=["motion"])


# ---------------------------------------------------------------------------------------------- command line

def test_the_command_line_writes_a_model_folder_that_loads_back(source, covog_outputs, base_folder, tmp_path,
                                                                capsys):
    truth, files = source
    stage1, stage2 = covog_outputs
    sd, wav2vec2, other = base_folder
    out = tmp_path / "covog-tiny"
    assert main([str(stage1), str(stage2), "--base", str(sd), "--audio-encoder", str(wav2vec2), "--size", "tiny",
                 "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    for component in ("vae", "reference_unet", "denoising_unet", "pose_adaptor", "audio_driver"):
        assert any(line.startswith(component) and "missing    0" in line for line in printed.splitlines())

    loaded = CovOGModel.load(out)
    expected = {**truth, "vae": other.vae.state_dict(), "image_encoder": other.image_encoder.state_dict(),
                "audio_encoder": other.audio_encoder.state_dict(),
                "reference_unet": {**truth["reference_unet"], **{k: other.reference_unet.state_dict()[k]
                                                                 for k in REFERENCE_OUTPUT_KEYS}}}
    for name, module in loaded.modules.items():
        assert set(module.state_dict()) == set(expected[name]), name
        assert_state_equal(module, expected[name])

    reference = MultiHumanPoseEncoder(**loaded.pose_guider.config)
    reference.guider.load_state_dict(files["pose_guider"])
    renders = torch.rand(1, 2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(loaded.pose_guider(renders), reference.eval()(renders), rtol=0, atol=0)


def test_the_command_line_reports_bad_input_in_one_line(moore_folder, tmp_path, capsys):
    torch.save({"x": RunsCode(tmp_path / "ran")}, tmp_path / "reference_unet.pth")
    cases = [[str(tmp_path / "nowhere")], [str(tmp_path / "reference_unet.pth")], [str(moore_folder)]]
    for sources in cases:
        assert main([*sources, "--size", "tiny", "--out", str(tmp_path / "out")]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "out").exists() and not (tmp_path / "ran").exists()


def test_the_command_line_never_deletes_a_folder_it_did_not_write(covog_outputs, tmp_path, capsys, monkeypatch):
    """`--out ComfyUI/models/covog` once wiped every model there and exited 0. A non-empty folder that is not a CovOG
    model is refused before any conversion; a model is replaced only with --overwrite."""
    import covog.loaders.checkpoints as checkpoints

    stage1, stage2 = covog_outputs
    models = tmp_path / "models" / "covog"
    (models / "other-model").mkdir(parents=True)
    (models / "other-model" / "model_index.json").write_text("{}")
    sources = [str(stage1), str(stage2), "--size", "tiny", "--allow-random", *ENCODERS_RANDOM]
    converted = []
    real_convert = checkpoints.convert
    monkeypatch.setattr(checkpoints, "convert", lambda *a, **k: converted.append(1) or real_convert(*a, **k))
    for extra in ([], ["--overwrite"]):
        assert main([*sources, "--out", str(models), *extra]) == 2
        err = capsys.readouterr().err
        assert err == f"error: {models} exists and is not a CovOG model folder; it is left as it is: name a new or " \
                      "empty folder\n"
    assert converted == [] and [p.name for p in models.iterdir()] == ["other-model"]

    out = models / "mine"
    assert main([*sources, "--out", str(out)]) == 0 and converted == [1]
    assert main([*sources, "--out", str(out)]) == 2 and converted == [1]
    assert "already holds a CovOG model: name a new folder, or pass --overwrite" in capsys.readouterr().err
    assert main([*sources, "--out", str(out), "--overwrite"]) == 0
    assert sorted(p.name for p in models.iterdir()) == ["mine", "other-model"]
    CovOGModel.load(out)


def test_fully_supplied_networks_take_the_source_tensors_without_a_second_copy(source, tmp_path, monkeypatch):
    """A multi-gigabyte UNet is not built and initialised only to be overwritten: the converter builds shapes on the
    meta device and takes the loaded tensors; what keeps a fresh init is built for real. Nothing stays on meta."""
    import covog.loaders.checkpoints as checkpoints

    truth, files = source
    folder = tmp_path / "checkpoint-7"
    folder.mkdir()
    torch.save(accelerate_state(files), folder / "pytorch_model.bin")  # pose encoders in fp16 there
    built = []
    real_build = checkpoints.build_component
    monkeypatch.setattr(checkpoints, "build_component", lambda name, c: built.append(name) or real_build(name, c))
    model, _ = convert([folder], size="tiny", allow_random=ENCODERS_RANDOM)
    assert "denoising_unet" not in built and "pose_guider" not in built
    assert "reference_unet" in built  # its 4 output keys are not in the file: they keep a fresh init
    for name, module in model.modules.items():
        for key, tensor in [*module.named_parameters(), *module.named_buffers()]:
            assert not tensor.is_meta, f"{name}.{key} was left on the meta device"
        assert {p.dtype for p in module.parameters()} == {torch.float32}, name
    assert_state_equal(model.denoising_unet, truth["denoising_unet"])


def test_encoder_folders_with_bin_weights_load_weights_only(base_folder, tmp_path):
    """Hub folders that ship only `.bin` weights (older wav2vec2/CLIP repositories) convert; the libraries read them
    with torch.load(weights_only=True), so a `.bin` that pickles code is refused like any other."""
    from transformers import Wav2Vec2ForCTC

    _, wav2vec2, other = base_folder
    legacy = tmp_path / "wav2vec2_bin"
    legacy.mkdir()
    (legacy / "config.json").write_text((wav2vec2 / "config.json").read_text())
    torch.save(Wav2Vec2ForCTC.from_pretrained(wav2vec2).state_dict(), legacy / "pytorch_model.bin")
    model, reports = convert([], audio_encoder=legacy, size="tiny", allow_random=all_but("audio_encoder"))
    assert reports_by_name(reports)["audio_encoder"].missing == []
    assert_state_equal(model.audio_encoder, other.audio_encoder.state_dict())

    marker = tmp_path / "ran"
    (legacy / "pytorch_model.bin").unlink()
    torch.save({"weight": Exploit(marker)}, legacy / "pytorch_model.bin")
    with pytest.raises(CheckpointError, match="refused, its weights file pickles objects that are not plain"):
        convert([], audio_encoder=legacy, size="tiny", allow_random=all_but("audio_encoder"))
    assert not marker.exists()


def all_but(name):
    """Every component but `name` (they may keep a fresh init)."""
    from covog.models.model import COMPONENTS

    return [c for c in COMPONENTS if c != name]


class Exploit:
    """Unpickling this would create a file: proof that code ran."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def save_moore_release(model, folder):
    """A model's networks as Moore-AnimateAnyone's four release files."""
    moore = to_moore_unet3d(model.denoising_unet.state_dict())
    reference = model.reference_unet.state_dict()
    files = {
        "reference_unet": {k: v for k, v in reference.items() if k not in REFERENCE_OUTPUT_KEYS},
        "denoising_unet": {k: v for k, v in moore.items() if ".motion_modules." not in k},
        "motion_module": {k: v for k, v in moore.items() if ".motion_modules." in k},
        "pose_guider": strip_guider(model.pose_guider.state_dict()),
    }
    folder.mkdir()
    for name, state in files.items():
        torch.save(state, folder / f"{name}.pth")
    return folder


def test_a_model_converted_with_a_random_audio_driver_ignores_the_audio(base_folder, tmp_path):
    """Before stage 2 trains it, the audio driver changes nothing: the UNet's output is the same with and without it,
    and the frames are the same whatever the audio and the speaking scores."""
    from test_covog_model import conditioning, latents
    from test_sampler import make_conditions
    from tiny_covog import perturb

    from covog.models.denoiser import denoise
    from covog.pipeline.sampler import SamplerSettings, generate

    sd, wav2vec2, _ = base_folder
    release = save_moore_release(perturb(CovOGModel.random("tiny", seed=3)), tmp_path / "moore")
    model, _ = convert([release], base=sd, audio_encoder=wav2vec2, size="tiny",
                       allow_random=["pose_adaptor", "audio_driver"])
    folder = model.save(tmp_path / "covog")
    assert json.loads((folder / "audio_driver" / "config.json").read_text())["trained"] is False
    model = CovOGModel.load(folder)
    x, context = latents(), torch.randn(1, 1, model.denoising_unet.config.cross_attention_dim)
    with torch.no_grad():
        driven = denoise(model.denoising_unet, model.audio_driver, x, 500, context, audio=conditioning(model))
        silent = denoise(model.denoising_unet, None, x, 500, context)
    assert torch.isfinite(silent).all() and torch.equal(driven, silent)

    settings = SamplerSettings(steps=2, window=6, overlap=2)
    conditions = make_conditions(model, 6)
    other = make_conditions(model, 6)
    other.audio_features = torch.randn_like(other.audio_features) * 3
    other.speaking_scores = -other.speaking_scores
    frames = generate(model, conditions, settings)
    assert frames.std() > 0.01 and torch.equal(frames, generate(model, other, settings))


@pytest.mark.parametrize("safetensors", [True, False])
def test_a_vae_folder_converts(base_folder, tmp_path, capsys, safetensors):
    """The paper's VAE, stabilityai/sd-vae-ft-mse: config.json + diffusion_pytorch_model.safetensors (or .bin), as a
    source or with --vae (which replaces the --base folder's vae/)."""
    sd, _, _ = base_folder
    vae = CovOGModel.random("tiny", seed=11).vae
    folder = tmp_path / "sd-vae-ft-mse"
    vae.save_pretrained(folder, safe_serialization=safetensors)
    weights = "diffusion_pytorch_model." + ("safetensors" if safetensors else "bin")
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", weights]
    model, _ = convert([folder], size="tiny", allow_random=all_but("vae"))
    assert_state_equal(model.vae, vae.state_dict())
    out = tmp_path / "covog"  # the SD folder brings a VAE of its own; --vae comes later and wins
    assert main([str(sd), "--vae", str(folder), "--size", "tiny", "--out", str(out),
                 "--allow-random", *all_but("vae")]) == 0, capsys.readouterr().err
    assert_state_equal(CovOGModel.load(out).vae, vae.state_dict())


def whole_clip_folder(encoder, folder):
    """openai/clip-vit-*'s layout: a whole CLIPModel (its config's model_type "clip") around `encoder`'s vision half."""
    from transformers import CLIPConfig, CLIPModel, CLIPTextConfig

    vision = encoder.config
    text = CLIPTextConfig(vocab_size=99, hidden_size=vision.hidden_size, intermediate_size=vision.intermediate_size,
                          num_hidden_layers=1, num_attention_heads=vision.num_attention_heads,
                          projection_dim=vision.projection_dim, bos_token_id=0, eos_token_id=1, pad_token_id=1)
    clip = CLIPModel(CLIPConfig(text_config=text.to_dict(), vision_config=vision.to_dict(),
                                projection_dim=vision.projection_dim))
    clip.vision_model.load_state_dict(encoder.vision_model.state_dict())
    clip.visual_projection.load_state_dict(encoder.visual_projection.state_dict())
    clip.save_pretrained(folder)


def wav2vec2_ctc_folder(encoder, folder):
    from transformers import Wav2Vec2ForCTC

    ctc = Wav2Vec2ForCTC(encoder.config)
    ctc.wav2vec2.load_state_dict(encoder.state_dict())
    ctc.save_pretrained(folder)


FOLDER_SOURCES = {  # how each single-model folder is published -> (component, its writer, what is left out)
    "sd-vae-ft-mse": ("vae", lambda vae, folder: vae.save_pretrained(folder), []),
    "wav2vec2-base-960h": ("audio_encoder", wav2vec2_ctc_folder, ["lm_head.bias", "lm_head.weight"]),
    "clip-vision": ("image_encoder", lambda encoder, folder: encoder.save_pretrained(folder), []),
    "clip-vit-whole": ("image_encoder", whole_clip_folder, ("text_model.", "text_projection.", "logit_scale")),
}


@pytest.mark.parametrize("name", FOLDER_SOURCES)
def test_every_single_model_folder_converts_given_as_a_source(name, tmp_path):
    """Each kind of model folder the converter names, given as a SOURCE (not through --vae/--audio-encoder/...), as
    the hub ships it today (safetensors, which transformers names as accelerate does): its component takes exactly
    the folder's weights and nothing else changes. (The ControlNet folder has its own test above.)"""
    component, write, left_out = FOLDER_SOURCES[name]
    network = getattr(CovOGModel.random("tiny", seed=21), component)
    write(network, tmp_path / name)
    model, reports = convert([tmp_path / name], size="tiny", allow_random=all_but(component))
    assert_state_equal(getattr(model, component), network.state_dict())
    fresh = getattr(CovOGModel.random("tiny"), component).state_dict()
    assert any(not torch.equal(value, fresh[key]) for key, value in network.state_dict().items())
    report = reports_by_name(reports)[component]
    assert (report.sources, report.missing, report.loaded) == ([str(tmp_path / name)], [], len(fresh))
    if isinstance(left_out, tuple):  # prefixes: the text half of a CLIP
        assert {key.split(".")[0] for key in report.unexpected} == {"text_model", "text_projection", "logit_scale"}
    else:
        assert report.unexpected == left_out
    for other in all_but(component):
        assert reports_by_name(reports)[other].loaded == 0


def test_a_folder_of_another_model_is_named(tmp_path):
    folder = tmp_path / "unet"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"_class_name": "UNet2DConditionModel"}))
    with pytest.raises(CheckpointError, match="unet: its config.json describes 'UNet2DConditionModel', not a model "
                                              "CovOG uses"):
        convert([folder], size="tiny", allow_random=all_but("vae"))
    with pytest.raises(CheckpointError, match="describes 'UNet2DConditionModel', not vae"):
        convert([], vae=folder, size="tiny", allow_random=all_but("vae"))


def copy_of_sd(base_folder, tmp_path):
    import shutil

    sd = tmp_path / "sd"
    shutil.copytree(base_folder[0], sd)
    return sd


def edit_safetensors(path, change):
    from safetensors.torch import load_file, save_file

    tensors = load_file(path)
    change(tensors)
    save_file(tensors, path)


def test_a_subfolder_missing_a_weight_is_named_with_the_key(base_folder, tmp_path):
    sd = copy_of_sd(base_folder, tmp_path)
    weights = sd / "vae" / "diffusion_pytorch_model.safetensors"
    edit_safetensors(weights, lambda tensors: tensors.pop("decoder.conv_out.bias"))
    with pytest.raises(CheckpointError) as caught:
        convert([sd], size="tiny", allow_random=all_but("vae"))
    assert str(caught.value) == (f"{sd / 'vae'}: 1 weights of AutoencoderKL missing or mismatched, e.g. "
                                 "decoder.conv_out.bias")


def test_a_subfolder_with_weights_its_model_lacks_is_named_with_one(base_folder, tmp_path):
    sd = copy_of_sd(base_folder, tmp_path)
    edit_safetensors(sd / "vae" / "diffusion_pytorch_model.safetensors",
                     lambda tensors: tensors.update({"decoder.extra.weight": torch.zeros(2)}))
    with pytest.raises(CheckpointError) as caught:
        convert([sd], size="tiny", allow_random=all_but("vae"))
    assert str(caught.value) == f"{sd / 'vae'}: 1 weights that AutoencoderKL does not have, e.g. 'decoder.extra.weight'"


def test_an_image_encoder_folder_replaces_the_base_folders(base_folder, tmp_path):
    sd = base_folder[0]
    encoder = CovOGModel.random("tiny", seed=12).image_encoder
    encoder.save_pretrained(tmp_path / "clip")
    model, reports = convert([sd], image_encoder=tmp_path / "clip", size="tiny",
                             allow_random=all_but("image_encoder"))
    assert_state_equal(model.image_encoder, encoder.state_dict())
    base = base_folder[2].image_encoder.state_dict()
    assert any(not torch.equal(value, base[key]) for key, value in encoder.state_dict().items())


def test_what_is_missing_says_how_many_keys_one_of_them_and_where_from():
    from covog.loaders.checkpoints import WHERE_FROM, missing_problem

    motion = ["down_blocks.0.motion_modules.0.a", "up_blocks.1.motion_modules.2.b"]
    spatial = ["conv_in.weight", "conv_out.bias"]
    assert missing_problem("denoising_unet", motion + spatial) == (
        f"denoising_unet: 2 motion-module keys (from {WHERE_FROM['motion']}); "
        f"denoising_unet: 2 spatial keys, e.g. conv_in.weight (from {WHERE_FROM['denoising_unet']})")
    assert missing_problem("denoising_unet", motion) == (
        f"denoising_unet: 2 motion-module keys (from {WHERE_FROM['motion']})")
    assert missing_problem("denoising_unet", spatial) == (
        f"denoising_unet: 2 spatial keys, e.g. conv_in.weight (from {WHERE_FROM['denoising_unet']})")
    assert missing_problem("vae", ["b", "a"]) == f"vae: 2 keys, e.g. b (from {WHERE_FROM['vae']})"


def test_a_folder_without_a_checkpoint_says_what_it_looked_for(tmp_path):
    (tmp_path / "notes.txt").write_text("no weights here")
    with pytest.raises(CheckpointError) as caught:
        convert([tmp_path], size="tiny")
    assert str(caught.value) == (
        f"{tmp_path}: no checkpoint in this folder (expected reference_unet, denoising_unet, motion_module, "
        "pose_guider, pose_adaptor[-N].pth, pytorch_model.bin or model.safetensors, or a diffusers/transformers model "
        "folder)")


def test_an_unknown_component_is_named_with_the_choices(moore_folder):
    from covog.models.model import COMPONENTS

    with pytest.raises(CheckpointError) as caught:
        convert([moore_folder], size="tiny", allow_random=["motion", "audio"])
    assert str(caught.value) == f"unknown component(s) audio, motion: choose from {', '.join(COMPONENTS)}"


def test_a_missing_source_and_a_folder_without_weights_are_named(base_folder, tmp_path):
    with pytest.raises(CheckpointError) as caught:
        convert([tmp_path / "nope"], size="tiny")
    assert str(caught.value) == f"{tmp_path / 'nope'}: no such file or folder"
    sd = copy_of_sd(base_folder, tmp_path)
    (sd / "vae" / "diffusion_pytorch_model.safetensors").unlink()
    with pytest.raises(CheckpointError) as caught:
        convert([sd], size="tiny", allow_random=all_but("vae"))
    assert str(caught.value).startswith(f"{sd / 'vae'}: cannot load a AutoencoderKL from it (OSError: ")
