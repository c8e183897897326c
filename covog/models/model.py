"""The CovOG model as one object: its components, built from configs or loaded from a model folder.

A model folder holds one subfolder per component, each in its library's own format (safetensors weights + a JSON
config, written by `save_pretrained`), a `scheduler/scheduler_config.json`, and `model_index.json` naming them all:

    vae/  image_encoder/  audio_encoder/  reference_unet/  denoising_unet/  pose_guider/  pose_adaptor/
    audio_driver/  scheduler/  model_index.json

The denoising UNet is diffusers' UNetMotionModel with one change, made wherever one is built or loaded: its motion
modules group-normalise each frame on its own, as the original AnimateDiff motion modules (Moore's, CovOG's) whose
weights it runs; diffusers' AnimateDiffTransformer3D normalises over all the frames of a clip at once.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass, fields
from pathlib import Path

import torch
from diffusers import AutoencoderKL, DDIMScheduler, MotionAdapter, UNet2DConditionModel, UNetMotionModel
from diffusers.models.unets.unet_motion_model import AnimateDiffTransformer3D
from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection, Wav2Vec2Config, Wav2Vec2Model

from covog.models.audio_driver import InteractiveAudioDriver
from covog.models.configs import configs
from covog.models.pose_encoder import MultiHumanPoseEncoder
from mit_annotator.core.files import current_umask

FORMAT = "covog-model"
FORMAT_VERSION = 1


COMPONENT_CLASSES = {
    "vae": AutoencoderKL, "image_encoder": CLIPVisionModelWithProjection, "audio_encoder": Wav2Vec2Model,
    "reference_unet": UNet2DConditionModel, "denoising_unet": UNetMotionModel, "pose_guider": MultiHumanPoseEncoder,
    "pose_adaptor": MultiHumanPoseEncoder, "audio_driver": InteractiveAudioDriver,
}
COMPONENTS = tuple(COMPONENT_CLASSES)
KEPT_IN_FLOAT32 = ("audio_encoder",)  # wav2vec2's convolutions and layer norms want float32
DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def pick_dtype(name: str, device: torch.device) -> torch.dtype:
    """A DTYPES name, or "auto": fp16 on a GPU, fp32 on the CPU."""
    if name == "auto":
        return torch.float16 if device.type == "cuda" else torch.float32
    return DTYPES[name]


class PerFrameGroupNorm(torch.nn.GroupNorm):
    """GroupNorm of each frame on its own, for (batch, channels, frames, h, w) inputs: the original motion module's
    norm of (batch * frames, channels, h, w). Same parameters and keys as the GroupNorm it replaces."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 5:
            return super().forward(x)
        batch, channels, frames, height, width = x.shape
        per_frame = x.transpose(1, 2).reshape(batch * frames, channels, height, width)
        return super().forward(per_frame).reshape(batch, frames, channels, height, width).transpose(1, 2)


def normalise_motion_per_frame(unet: UNetMotionModel) -> UNetMotionModel:
    """Give every motion module the original's per-frame GroupNorm, keeping its weights."""
    for module in unet.modules():
        if isinstance(module, AnimateDiffTransformer3D) and not isinstance(module.norm, PerFrameGroupNorm):
            old = module.norm
            norm = PerFrameGroupNorm(old.num_groups, old.num_channels, old.eps, old.affine, device="meta")
            norm.weight, norm.bias = old.weight, old.bias
            module.norm = norm
    return unet


def build_component(name: str, c: dict[str, dict]) -> torch.nn.Module:
    """One network, randomly initialised, from the component configs `c` (covog.models.configs.configs(size))."""
    if name == "vae":
        return AutoencoderKL(**c["vae"])
    if name == "image_encoder":
        return CLIPVisionModelWithProjection(CLIPVisionConfig(**c["image_encoder"]))
    if name == "audio_encoder":
        return Wav2Vec2Model(Wav2Vec2Config(**c["audio_encoder"]))
    if name == "reference_unet":
        return UNet2DConditionModel(**c["unet"])
    if name == "denoising_unet":
        unet = UNetMotionModel.from_unet2d(UNet2DConditionModel(**c["unet"]), MotionAdapter(**c["motion_adapter"]))
        return normalise_motion_per_frame(unet)
    if name in ("pose_guider", "pose_adaptor"):
        return MultiHumanPoseEncoder(**c[name])
    if name == "audio_driver":
        return InteractiveAudioDriver(**c["audio_driver"])
    raise ValueError(f"unknown component {name!r}: choose from {', '.join(COMPONENTS)}")


class ModelFolderError(ValueError):
    """A model folder that is missing a component or is not a CovOG model folder."""


def is_model_folder(folder: Path) -> bool:
    try:
        return json.loads((folder / "model_index.json").read_text()).get("format") == FORMAT
    except (OSError, ValueError, AttributeError):
        return False


def check_model_folder_target(folder: str | os.PathLike, overwrite: bool = False) -> None:
    """Refuse to write a model folder where it would destroy something: a file, a folder holding anything but a CovOG
    model, or (without `overwrite`) an existing model. Checked before the work, and again when saving."""
    folder = Path(folder)
    if folder.is_file():
        raise ModelFolderError(f"{folder} is a file: name a folder to write the model to")
    if not folder.is_dir() or not any(folder.iterdir()):
        return
    if not is_model_folder(folder):
        raise ModelFolderError(f"{folder} exists and is not a CovOG model folder; it is left as it is: name a new or "
                               "empty folder")
    if not overwrite:
        raise ModelFolderError(f"{folder} already holds a CovOG model: name a new folder, or pass --overwrite to "
                               "replace it")


def swap_in(partial: Path, folder: Path) -> None:
    """Put the complete `partial` folder under `folder`'s name; a replaced model stays whole until the new one is in."""
    if folder.is_dir() and not any(folder.iterdir()):
        folder.rmdir()
    if not folder.exists():
        partial.rename(folder)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", suffix=".replaced", dir=folder.parent))
    folder.rename(old / folder.name)
    partial.rename(folder)
    shutil.rmtree(old)


@dataclass
class CovOGModel:
    vae: AutoencoderKL
    image_encoder: CLIPVisionModelWithProjection
    audio_encoder: Wav2Vec2Model
    reference_unet: UNet2DConditionModel
    denoising_unet: UNetMotionModel
    pose_guider: MultiHumanPoseEncoder
    pose_adaptor: MultiHumanPoseEncoder
    audio_driver: InteractiveAudioDriver
    scheduler: DDIMScheduler

    @property
    def modules(self) -> dict[str, torch.nn.Module]:
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "scheduler"}

    @property
    def device(self) -> torch.device:
        return self.denoising_unet.device

    @property
    def dtype(self) -> torch.dtype:
        return self.denoising_unet.dtype

    def to(self, device=None, dtype: torch.dtype | None = None) -> CovOGModel:
        """Move every network; the audio encoder stays in float32."""
        for name, module in self.modules.items():
            if name in KEPT_IN_FLOAT32 or dtype in (None, module.dtype):
                module.to(device)  # naming no dtype: diffusers warns whenever one is named
            else:
                module.to(device, dtype)
        return self

    def eval(self) -> CovOGModel:
        for module in self.modules.values():
            module.eval().requires_grad_(False)
        return self

    @classmethod
    def random(cls, size: str = "tiny", seed: int = 0) -> CovOGModel:
        """Randomly initialised networks at the published size ('sd15') or the tiny test size, with the
        zero-initialised outputs (pose encoders, audio face convs, motion outputs) left at zero as in training.
        Built under `torch.device("meta")` it holds shapes only (no memory, no init time)."""
        torch.manual_seed(seed)
        c = configs(size)
        networks = {name: build_component(name, c) for name in COMPONENTS}
        return cls(**networks, scheduler=DDIMScheduler(**c["scheduler"])).eval()

    def save(self, folder: str | os.PathLike, overwrite: bool = False) -> Path:
        """Write the model folder; it appears under its final name only once complete. An existing folder is
        replaced only when it is a CovOG model folder and `overwrite` is set (see `check_model_folder_target`)."""
        folder = Path(folder)
        check_model_folder_target(folder, overwrite)
        folder.parent.mkdir(parents=True, exist_ok=True)
        partial = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", suffix=".partial", dir=folder.parent))
        try:
            os.chmod(partial, 0o777 & ~current_umask())
            for name, module in self.modules.items():
                module.save_pretrained(partial / name, safe_serialization=True)
            self.scheduler.save_pretrained(partial / "scheduler")
            index = {"format": FORMAT, "format_version": FORMAT_VERSION,
                     "components": {name: type(module).__name__ for name, module in self.modules.items()}}
            (partial / "model_index.json").write_text(json.dumps(index, indent=2))
            swap_in(partial, folder)
        except BaseException:
            shutil.rmtree(partial, ignore_errors=True)
            raise
        return folder

    @classmethod
    def load(cls, folder: str | os.PathLike, device: str | torch.device = "cpu",
             dtype: torch.dtype = torch.float32) -> CovOGModel:
        """Load a model folder written by `save` (or by `python -m covog.convert`); safetensors only."""
        folder = Path(folder)
        index_path = folder / "model_index.json"
        if not index_path.is_file():
            raise ModelFolderError(f"{folder} is not a CovOG model folder: no model_index.json "
                                   "(convert checkpoints with `python -m covog.convert SOURCE --out DIR`)")
        index = json.loads(index_path.read_text())
        if index.get("format") != FORMAT or index.get("format_version", 0) > FORMAT_VERSION:
            raise ModelFolderError(f"{index_path}: not a {FORMAT} index of version <= {FORMAT_VERSION}")
        missing = [f.name for f in fields(cls) if not (folder / f.name).is_dir()]
        if missing:
            raise ModelFolderError(f"{folder} lacks the component folder(s) {', '.join(missing)}")
        # loaded in their dtype (diffusers warns about casting a loaded model)
        networks = {name: kind.from_pretrained(folder / name, use_safetensors=True,
                                               torch_dtype=torch.float32 if name in KEPT_IN_FLOAT32 else dtype)
                    for name, kind in COMPONENT_CLASSES.items()}
        normalise_motion_per_frame(networks["denoising_unet"])
        model = cls(**networks, scheduler=DDIMScheduler.from_pretrained(folder / "scheduler"))
        return model.to(device).eval()
