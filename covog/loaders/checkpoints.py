"""Build a CovOGModel from published checkpoints: Moore-AnimateAnyone, CovOG training outputs, AnimateDiff v2
motion modules, diffusers SD-1.5 folders and transformers encoder folders.

The details: docs/checkpoints.md.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch

from covog.loaders.checkpoint_files import (
    CheckpointError,
    first_line,
    load_state_dict,
)
from covog.loaders.key_rules import (
    ACCELERATE_PREFIXES,
    CONTROLNET_PREFIX,
    pose_encoder_keys,
    split_accelerate,
    split_audio,
    strip_ddp_prefix,
    unet3d_key_to_diffusers,
)
from covog.models.configs import configs
from covog.models.model import COMPONENTS, CovOGModel, build_component

ACCELERATE_FILES = ("pytorch_model.bin", "model.safetensors")
REFERENCE_OUTPUT_KEYS = ("conv_norm_out.weight", "conv_norm_out.bias", "conv_out.weight", "conv_out.bias")


# Moore / CovOG training file names, optionally with the training step: reference_unet-26560.pth
CHECKPOINT_NAME = re.compile(r"^(reference_unet|denoising_unet|motion_module|pose_guider|pose_adaptor)"
                             r"(?:-(\d+))?\.(?:safetensors|pth|pt|bin|ckpt)$")
KIND_ORDER = ("reference_unet", "denoising_unet", "motion_module", "pose_guider", "pose_adaptor")

# Weights of a transformers folder that our class does not have but may be left out: (key prefixes, what they are)
FOLDER_DROPS = {"audio_encoder": (("lm_head.",), "the CTC head"),
                "image_encoder": (("text_model.", "text_projection.", "logit_scale"), "the text half of a CLIP")}

# A single-model folder's config.json name -> the component it supplies
FOLDER_KINDS = {"AutoencoderKL": "vae", "wav2vec2": "audio_encoder", "clip_vision_model": "image_encoder",
                "clip": "image_encoder", "ControlNetModel": "pose_guider"}

WHERE_FROM = {
    "vae": "--vae, a VAE folder (stabilityai/sd-vae-ft-mse, the paper's), or --base, an SD-1.5 diffusers folder "
           "with vae/",
    "image_encoder": "--image-encoder, or a --base folder with image_encoder/ (sd-image-variations-diffusers)",
    "audio_encoder": "--audio-encoder, a wav2vec2 folder (facebook/wav2vec2-base-960h)",
    "reference_unet": "reference_unet.pth (Moore-AnimateAnyone) or reference_unet-N.pth (CovOG stage 1)",
    "denoising_unet": "denoising_unet.pth (Moore-AnimateAnyone) or denoising_unet-N.pth (CovOG)",
    "motion": "motion_module.pth (Moore-AnimateAnyone), mm_sd_v15_v2.ckpt (AnimateDiff v2) or a CovOG stage-2 "
              "denoising_unet-N.pth",
    "pose_guider": "pose_guider.pth or pose_guider-N.pth",
    "pose_adaptor": "pose_adaptor-N.pth from CovOG stage 1 (Moore-AnimateAnyone has none, and the pose guider's "
                    "channels do not fit it)",
    "audio_driver": "a CovOG stage-2 denoising_unet-N.pth trained with use_audio_module: true",
}


@dataclass
class Piece:
    """Weights for one component from one source, already under the component's own key names."""

    component: str
    source: str
    tensors: dict[str, torch.Tensor]
    source_keys: dict[str, str] = field(default_factory=dict)  # target key -> key in the file, where renamed
    dropped: list[str] = field(default_factory=list)  # keys of the file left out on purpose
    dropped_because: str = ""


@dataclass
class LoadReport:
    component: str
    sources: list[str]
    loaded: int
    missing: list[str]  # the component's keys left at the fresh init
    unexpected: list[str]  # keys of the sources not loaded (documented drops)
    notes: list[str] = field(default_factory=list)

    def summary(self) -> str:
        line = (f"{self.component:<15} loaded {self.loaded:>5}  missing {len(self.missing):>4}  "
                f"unexpected {len(self.unexpected):>3}  from {', '.join(self.sources) or 'nothing (fresh init)'}")
        return "\n".join([line, *(f"    {note}" for note in self.notes)])


# ---------------------------------------------------------------------------------------------- sources -> pieces

def unet3d_pieces(state_dict: Mapping[str, torch.Tensor], source: str) -> list[Piece]:
    """A Moore/CovOG denoising UNet or motion-module file: UNet keys renamed, audio keys to the audio driver."""
    unet_keys, audio_keys = split_audio(state_dict)
    unet = Piece("denoising_unet", source, {}, dropped_because="duplicate positional tables, the same as the "
                                                                 "attention_blocks.0 ones loaded")
    for key, value in unet_keys.items():
        target = unet3d_key_to_diffusers(key)
        if target is None:
            unet.dropped.append(key)
            continue
        unet.tensors[target] = value
        if target != key:
            unet.source_keys[target] = key
    pieces = [unet] if unet.tensors else []
    if audio_keys:
        pieces.append(Piece("audio_driver", source, audio_keys))
    return pieces


def pieces_for_kind(kind: str, state_dict: Mapping[str, torch.Tensor], source: str) -> list[Piece]:
    if kind == "reference_unet":
        return [Piece("reference_unet", source, dict(state_dict))]
    if kind in ("denoising_unet", "motion_module"):
        return unet3d_pieces(state_dict, source)
    if kind in ("pose_guider", "pose_adaptor"):
        tensors, dropped = pose_encoder_keys(state_dict)
        return [Piece(kind, source, tensors, dropped=dropped,
                      dropped_because="the rest of a ControlNet, and its conv_out (zero instead: the guider starts "
                                      "at zero, as AnimateAnyone's training starts it)")]
    if kind == "accelerate":
        return [piece for prefix, part in split_accelerate(state_dict, source).items()
                for piece in pieces_for_kind(prefix, part, f"{source}[{prefix}]")]
    raise AssertionError(kind)


def kind_of_file(path: Path, state_dict: Mapping[str, torch.Tensor]) -> str:
    """What a checkpoint file holds: from its training-script name, else from its keys."""
    match = CHECKPOINT_NAME.match(path.name)
    if match:
        return match[1]
    keys = list(strip_ddp_prefix(state_dict))
    known = [key.partition(".")[0] in ACCELERATE_PREFIXES for key in keys]
    if keys and (all(known) or (path.name in ACCELERATE_FILES and any(known))):
        return "accelerate"  # accelerate's own file with a stray key: split_accelerate names the key
    if keys and all(".motion_modules." in key for key in keys):
        return "motion_module"
    if any(key.startswith(CONTROLNET_PREFIX) for key in keys):
        return "pose_guider"
    raise CheckpointError(f"{path}: cannot tell which component it holds; name it as the training scripts do "
                          f"({', '.join(k + '.pth' for k in KIND_ORDER)}) or pass an accelerate pytorch_model.bin")


def file_pieces(path: Path) -> list[Piece]:
    state_dict = strip_ddp_prefix(load_state_dict(path))
    return pieces_for_kind(kind_of_file(path, state_dict), state_dict, str(path))


def checkpoint_files(folder: Path) -> list[Path]:
    """The checkpoint files of a Moore release or a training output folder: the latest step of each kind, then an
    accelerate state (when the folder is a checkpoint-N folder)."""
    latest: dict[str, tuple[int, Path]] = {}
    for path in folder.iterdir():
        match = CHECKPOINT_NAME.match(path.name)
        if match and path.is_file():
            step = int(match[2]) if match[2] else -1
            if match[1] not in latest or step > latest[match[1]][0]:
                latest[match[1]] = (step, path)
    files = [latest[kind][1] for kind in KIND_ORDER if kind in latest]
    return files + [folder / name for name in ACCELERATE_FILES if (folder / name).is_file()]


def _pretrained(cls, folder: Path, subfolder: str | None = None):
    """from_pretrained from a local folder; returns (module, unexpected keys). safetensors weights when the folder
    has them; otherwise its `.bin` weights, which diffusers and transformers read with torch.load(weights_only=True)
    (plain tensors only, never code), and which the converter then writes as safetensors."""
    where = folder / subfolder if subfolder else folder
    has_safetensors = any(where.glob("*.safetensors"))
    kwargs = {"use_safetensors": True if has_safetensors else None, "local_files_only": True,
              "output_loading_info": True}
    if subfolder:
        kwargs["subfolder"] = subfolder
    try:
        module, info = cls.from_pretrained(folder, **kwargs)
    except Exception as error:  # missing files, foreign or unsafe pickles: all mean "cannot use this folder"
        if "Weights only load failed" in str(error):
            raise CheckpointError(f"{where}: refused, its weights file pickles objects that are not plain tensors; "
                                  "only plain weights are loaded, never code or custom objects") from None
        raise CheckpointError(f"{where}: cannot load a {cls.__name__} from it ({type(error).__name__}: "
                              f"{first_line(error)})") from None
    if info.get("missing_keys") or info.get("mismatched_keys"):
        bad = sorted(info.get("missing_keys") or []) + sorted(str(k) for k in info.get("mismatched_keys") or [])
        raise CheckpointError(f"{where}: {len(bad)} weights of {cls.__name__} missing or mismatched, e.g. {bad[0]}")
    return module, sorted(info.get("unexpected_keys") or [])


def pretrained_piece(component: str, cls, folder: Path, subfolder: str | None = None,
                     keep: Iterable[str] | None = None) -> Piece:
    module, unexpected = _pretrained(cls, folder, subfolder)
    tensors = module.state_dict()
    if keep is not None:
        tensors = {key: tensors[key] for key in keep}
    source = str(folder / subfolder) if subfolder else str(folder)
    allowed, what = FOLDER_DROPS.get(component, ((), ""))
    strays = [key for key in unexpected if not key.startswith(allowed)]
    if strays:
        raise CheckpointError(f"{source}: {len(strays)} weights that {cls.__name__} does not have, "
                              f"e.g. {strays[0]!r}")
    return Piece(component, source, tensors, dropped=unexpected, dropped_because=what)


def diffusers_folder_pieces(folder: Path, with_unet: bool) -> list[Piece]:
    """An SD-1.5 diffusers folder: its VAE, image encoder (if any) and UNet. As a source (with_unet) the UNet
    supplies both UNets' spatial layers; as --base only the 4 output keys the reference UNet checkpoints lack."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPVisionModelWithProjection

    pieces = []
    if (folder / "vae").is_dir():
        pieces.append(pretrained_piece("vae", AutoencoderKL, folder, "vae"))
    if (folder / "image_encoder").is_dir():
        pieces.append(pretrained_piece("image_encoder", CLIPVisionModelWithProjection, folder, "image_encoder"))
    if (folder / "unet").is_dir():
        if with_unet:
            unet = pretrained_piece("reference_unet", UNet2DConditionModel, folder, "unet")
            pieces += [unet, Piece("denoising_unet", unet.source, unet.tensors)]
        else:
            pieces.append(pretrained_piece("reference_unet", UNet2DConditionModel, folder, "unet",
                                           keep=REFERENCE_OUTPUT_KEYS))
    if not pieces:
        raise CheckpointError(f"{folder}: a diffusers folder without vae/, image_encoder/ or unet/")
    return pieces


def model_folder_piece(folder: Path, component: str | None = None) -> list[Piece]:
    """A single-model folder, told apart by its config.json (`_class_name` for diffusers, `model_type` for
    transformers): a diffusers VAE (stabilityai/sd-vae-ft-mse), a wav2vec2 audio encoder, a CLIP image encoder, or a
    diffusers ControlNet (its conditioning embedding: the pose guider)."""
    import json

    from covog.models.model import COMPONENT_CLASSES

    config_path = folder / "config.json"
    if not config_path.is_file():
        raise CheckpointError(f"{folder}: no config.json, not a diffusers or transformers model folder")
    config = json.loads(config_path.read_text())
    name = config.get("_class_name") or config.get("model_type")
    kind = FOLDER_KINDS.get(name)
    if kind is None or component not in (None, kind):
        raise CheckpointError(f"{folder}: its config.json describes {name!r}, not {component or 'a model CovOG uses'} "
                              f"(one of {', '.join(FOLDER_KINDS)})")
    if kind == "pose_guider":
        return file_pieces(_controlnet_weights(folder))
    return [pretrained_piece(kind, COMPONENT_CLASSES[kind], folder)]


def _controlnet_weights(folder: Path) -> Path:
    for name in ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin"):
        if (folder / name).is_file():
            return folder / name
    raise CheckpointError(f"{folder}: a ControlNet folder without diffusion_pytorch_model.safetensors or .bin")


def source_pieces(source: str | os.PathLike) -> list[Piece]:
    """Every piece one SOURCE supplies: a checkpoint file, a checkpoint folder, a diffusers or transformers folder."""
    path = Path(source)
    if path.is_file():
        return file_pieces(path)
    if not path.is_dir():
        raise CheckpointError(f"{path}: no such file or folder")
    if any((path / sub).is_dir() for sub in ("unet", "vae", "image_encoder")):
        return diffusers_folder_pieces(path, with_unet=True)
    if (path / "config.json").is_file():  # before the scan: transformers name their weights as accelerate does
        return model_folder_piece(path)
    files = checkpoint_files(path)
    if files:
        return [piece for file in files for piece in file_pieces(file)]
    raise CheckpointError(f"{path}: no checkpoint in this folder (expected {', '.join(KIND_ORDER)}[-N].pth, "
                          f"{' or '.join(ACCELERATE_FILES)}, or a diffusers/transformers model folder)")


# ---------------------------------------------------------------------------------------------- checking & loading

def merge_pieces(component: str, pieces: list[Piece]) -> tuple[dict[str, tuple[torch.Tensor, str]], LoadReport]:
    """{target key: (tensor, where it came from)}, later pieces winning, and the report so far."""
    merged: dict[str, tuple[torch.Tensor, str]] = {}
    report = LoadReport(component, [], 0, [], [])
    for piece in pieces:
        replaced = sum(key in merged for key in piece.tensors)
        if replaced:
            report.notes.append(f"{replaced} keys replaced by {piece.source}")
        for key, tensor in piece.tensors.items():
            source_key = piece.source_keys.get(key)
            merged[key] = (tensor, f"{piece.source}" + (f" key {source_key}" if source_key else ""))
        report.sources.append(piece.source)
        report.unexpected += piece.dropped
        if piece.dropped:
            report.notes.append(f"{len(piece.dropped)} keys of {piece.source} left out: {piece.dropped_because}")
    return merged, report


def check_fits(component: str, merged: Mapping[str, tuple[torch.Tensor, str]],
               expected: Mapping[str, torch.Tensor]) -> None:
    """Raise on keys the component does not have and on shape mismatches, naming key, file and shapes."""
    strays = [key for key in merged if key not in expected]
    if strays:
        raise CheckpointError(f"{component}: {len(strays)} keys it does not have, e.g. {strays[0]!r} from "
                              f"{merged[strays[0]][1]}")
    for key, (tensor, origin) in merged.items():
        want = tuple(expected[key].shape)
        if tuple(tensor.shape) == want:
            continue
        if key.endswith(".pe") and tensor.ndim == 3 and len(want) == 3:
            raise CheckpointError(f"{component}: positional table {key} ({origin}) has max_len {tensor.shape[1]}, "
                                  f"the model needs {want[1]} (shape {list(tensor.shape)} vs {list(want)}); "
                                  "AnimateDiff v1 / inference_v1 motion modules are not supported, use v2")
        raise CheckpointError(f"{component}: {key} ({origin}) has shape {list(tensor.shape)}, the model needs "
                              f"{list(want)}")


def documented_missing(component: str, missing: list[str]) -> list[str]:
    if component == "reference_unet":
        return [key for key in missing if key in REFERENCE_OUTPUT_KEYS]
    return []


def missing_problem(component: str, missing: list[str]) -> str:
    """One clause saying what is missing and which file would supply it."""
    if component == "denoising_unet":
        motion = [key for key in missing if ".motion_modules." in key]
        clauses = []
        if motion:
            clauses.append(f"denoising_unet: {len(motion)} motion-module keys (from {WHERE_FROM['motion']})")
        if len(motion) < len(missing):
            clauses.append(f"denoising_unet: {len(missing) - len(motion)} spatial keys, e.g. "
                           f"{next(k for k in missing if k not in motion)} (from {WHERE_FROM['denoising_unet']})")
        return "; ".join(clauses)
    return f"{component}: {len(missing)} keys, e.g. {missing[0]} (from {WHERE_FROM[component]})"


def plan_component(component: str, module: torch.nn.Module, pieces: list[Piece],
                   allow_random: bool) -> tuple[dict[str, torch.Tensor], LoadReport, str | None]:
    """What to load into one component, its report, and what is missing beyond what is allowed (or None)."""
    expected = module.state_dict()
    merged, report = merge_pieces(component, pieces)
    check_fits(component, merged, expected)
    report.loaded = len(merged)
    report.missing = [key for key in expected if key not in merged]
    documented = documented_missing(component, report.missing)
    allowed = report.missing if allow_random else documented
    if documented:
        report.notes.append("conv_norm_out/conv_out are not in AnimateAnyone reference UNets (unused for reference "
                            "features): kept at the fresh init; --base copies SD-1.5's")
    if len(allowed) > len(documented):
        report.notes.append(f"{len(allowed) - len(documented)} keys kept at the fresh init (--allow-random)")
    unsupplied = [key for key in report.missing if key not in allowed]
    problem = missing_problem(component, unsupplied) if unsupplied else None
    return {key: tensor for key, (tensor, _) in merged.items()}, report, problem


def gather_pieces(sources: Iterable[str | os.PathLike], base, folders: Mapping[str, str | os.PathLike | None]
                  ) -> list[Piece]:
    """Every piece, in order: the base, the sources, then the folders given per component (vae, audio_encoder,
    image_encoder)."""
    pieces = diffusers_folder_pieces(Path(base), with_unet=False) if base else []
    for source in sources:
        pieces += source_pieces(source)
    for component, folder in folders.items():
        if folder:
            pieces += model_folder_piece(Path(folder), component)
    return pieces


def convert(sources: Iterable[str | os.PathLike] = (), *, base: str | os.PathLike | None = None,
            vae: str | os.PathLike | None = None, audio_encoder: str | os.PathLike | None = None,
            image_encoder: str | os.PathLike | None = None, size: str = "sd15",
            allow_random: Iterable[str] = ()) -> tuple[CovOGModel, list[LoadReport]]:
    """A CovOGModel with every component's weights from the sources, and one report per component.

    Raises CheckpointError for unreadable or unsafe files, keys a component does not have, shape mismatches and
    missing weights (unless the component is in allow_random, then its missing keys keep the fresh init).
    """
    allow_random = set(allow_random)
    unknown = allow_random - set(COMPONENTS)
    if unknown:
        raise CheckpointError(f"unknown component(s) {', '.join(sorted(unknown))}: choose from {', '.join(COMPONENTS)}")
    pieces = gather_pieces(sources, base, {"vae": vae, "audio_encoder": audio_encoder, "image_encoder": image_encoder})
    with torch.device("meta"):  # shapes only: the weights come from the sources
        model = CovOGModel.random(size)
    plans, problems = {}, []
    for component, module in model.modules.items():
        own = [piece for piece in pieces if piece.component == component]
        tensors, report, problem = plan_component(component, module, own, component in allow_random)
        plans[component] = (tensors, report)
        if problem:
            problems.append(problem)
    if problems:
        raise CheckpointError("missing weights (name the component in --allow-random to keep a fresh init "
                              "instead): " + "; ".join(problems))
    for component, module in model.modules.items():
        setattr(model, component, materialize(component, module, plans[component][0], size))
    mark_audio_driver(model, plans["audio_driver"][1])
    return model.eval(), [report for _, report in plans.values()]


def mark_audio_driver(model: CovOGModel, report: LoadReport) -> None:
    """A driver whose every weight came from a stage-2 checkpoint is trained; one left (even partly) at its fresh
    init is not, and the sampler skips it."""
    if report.missing:
        report.notes.append("untrained (fresh init): skipped when generating, until `covog.train --stage 2`")
    else:
        model.audio_driver.mark_trained()


def materialize(component: str, skeleton: torch.nn.Module, tensors: dict[str, torch.Tensor],
                size: str) -> torch.nn.Module:
    """The component with `tensors` loaded. A network every weight of which is supplied takes the source tensors
    themselves (no second copy of a multi-gigabyte UNet, no random init to overwrite); one with weights left to
    its fresh init is built for real first."""
    expected = skeleton.state_dict()
    if set(tensors) == set(expected) and not _non_persistent_buffers(skeleton):
        tensors = {key: tensor.to(expected[key].dtype) for key, tensor in tensors.items()}
        skeleton.load_state_dict(tensors, strict=True, assign=True)
        return skeleton
    module = build_component(component, configs(size))
    module.load_state_dict(tensors, strict=False)  # completeness was checked by plan_component
    return module


def _non_persistent_buffers(module: torch.nn.Module) -> bool:
    """Buffers outside the state dict (e.g. position ids) would stay on the meta device."""
    saved = module.state_dict()
    return any(name not in saved for name, _ in module.named_buffers())
