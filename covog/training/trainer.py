"""CovOG's trainer: the objective (`TrainingNet`), what each stage trains, and the loop with its checkpoints and
exact resumption (`prepare`, `train`); `python -m covog.train` is its command line."""


from __future__ import annotations

import json
import re
import shutil
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path

import torch
from accelerate import Accelerator, DistributedDataParallelKwargs
from accelerate.utils import send_to_device, set_seed
from torch.utils.data import DataLoader

from covog.models import reference_attention
from covog.models.audio_driver import AudioConditioning
from covog.models.denoiser import denoise
from covog.models.encoders import clip_image_embedding, encode_latents
from covog.models.model import CovOGModel
from covog.training.dataset import MIN_FRAME_GAP, SIZE_MULTIPLE, ConversationClips, EpochOrder, collate
from mit_annotator.core.progress import Progress, report

LEARNING_RATE = 1e-5  # the paper, both stages
STEPS = 30_000  # the paper, per stage
SNR_GAMMA = 5.0  # the paper: Min-SNR weighting
NOISE_OFFSET = 0.05  # the paper
CONDITION_DROPOUT = 0.1  # the paper: 10% of samples without CLIP embedding and reference attention
WEIGHT_DECAY = 1e-2  # Moore-AnimateAnyone's training configs (AdamW)
MAX_GRAD_NORM = 1.0  # Moore-AnimateAnyone's training configs
TRAINED = {1: ("denoising_unet", "reference_unet", "pose_guider", "pose_adaptor"),
           2: ("denoising_unet", "audio_driver")}
STATE = re.compile(r"state-(\d+)")


@dataclass
class Recipe:
    noise_offset: float = NOISE_OFFSET
    snr_gamma: float = SNR_GAMMA
    condition_dropout: float = CONDITION_DROPOUT


def trained_components(stage: int, audio_driver: bool = True) -> tuple[str, ...]:
    """The components `stage` trains; without the audio driver (stage 2's ablation) the motion modules alone."""
    return tuple(c for c in TRAINED[stage] if audio_driver or c != "audio_driver")


def is_trained(stage: int, component: str, name: str, model: CovOGModel, audio_driver: bool = True) -> bool:
    """Whether parameter `name` of `component` trains in `stage`."""
    if component not in trained_components(stage, audio_driver):
        return False
    if component == "denoising_unet":
        return ("motion_modules" in name) == (stage == 2)
    if component == "reference_unet":
        # the published code freezes the ReferenceNet's last up block; conv_norm_out/conv_out are never read
        last_up = f"up_blocks.{len(model.reference_unet.up_blocks) - 1}."
        return not name.startswith((last_up, "conv_norm_out.", "conv_out."))
    return True


def set_trainable(model: CovOGModel, stage: int, audio_driver: bool = True) -> list[torch.nn.Parameter]:
    """Freeze everything, then unfreeze (and put in train mode) the stage's parameters; returns them. Stage 2 marks
    the audio driver trained: it runs from the first step, and every checkpoint it writes records it (not so without
    the audio driver: it stays as it was, and an untrained one is skipped)."""
    model.eval()
    if stage == 2 and audio_driver:
        model.audio_driver.mark_trained()
    trained = []
    for component in trained_components(stage, audio_driver):
        module = getattr(model, component).train()
        for name, parameter in module.named_parameters():
            if is_trained(stage, component, name, model, audio_driver):
                parameter.requires_grad_(True)
                trained.append(parameter)
    return trained


class TrainingNet(torch.nn.Module):
    """One training step's forward, as one module: accelerate/DDP wrap it, and its registered modules (those with
    trained parameters) are what the training state saves. The frozen networks are reached through `self.model`."""

    def __init__(self, model: CovOGModel, stage: int, recipe: Recipe | None = None, audio_driver: bool = True):
        super().__init__()
        self.model, self.stage, self.recipe = model, stage, recipe or Recipe()
        self.audio_driver = stage == 2 and audio_driver  # whether the audio driver runs (and trains)
        self.trained = torch.nn.ModuleDict({name: getattr(model, name)
                                            for name in trained_components(stage, audio_driver)})
        self.bank = reference_attention.attach(model.reference_unet, model.denoising_unet)

    def forward(self, batch: dict) -> torch.Tensor:
        """The batch's Min-SNR-weighted v-prediction loss."""
        model, stage = self.model, self.stage
        frames = batch["target"][:, None] if stage == 1 else batch["frames"]  # (batch, frames, 3, H, W)
        poses = batch["target_poses"][:, None] if stage == 1 else batch["poses"]  # (batch, frames, people, 3, H, W)
        batch_size, num_frames = frames.shape[:2]
        with torch.no_grad():
            latents = encode_latents(model.vae, frames, sample=True)
            reference_latent = encode_latents(model.vae, batch["reference"][:, None], sample=False)[:, :, 0]
            context = clip_image_embedding(model.image_encoder, batch["reference"])
        keep = torch.rand(batch_size, device=latents.device) >= self.recipe.condition_dropout
        context = context * keep[:, None, None].to(context.dtype)
        with torch.set_grad_enabled(stage == 1):  # the ReferenceNet and pose encoders train in stage 1 only
            self.fill_reference_bank(reference_latent, batch["reference_poses"], context, keep, num_frames)
            pose_features = model.pose_guider(poses.flatten(0, 1))
        audio = audio_conditioning(model, batch) if self.audio_driver else None

        noise = torch.randn_like(latents)
        noise += self.recipe.noise_offset * torch.randn(*latents.shape[:2], 1, 1, 1, device=latents.device)
        timesteps = torch.randint(0, model.scheduler.config.num_train_timesteps, (batch_size,), device=latents.device)
        noisy = model.scheduler.add_noise(latents, noise, timesteps)
        target = model.scheduler.get_velocity(latents, noise, timesteps)
        bypass = motion_modules_bypassed(model.denoising_unet) if stage == 1 else nullcontext()
        with bypass:
            prediction = denoise(model.denoising_unet, model.audio_driver if self.audio_driver else None, noisy,
                                 timesteps, context, pose_features, audio)
        weights = min_snr_weights(model.scheduler, timesteps, self.recipe.snr_gamma)
        per_sample = (prediction.float() - target.float()).pow(2).mean(dim=(1, 2, 3, 4))
        return (per_sample * weights).mean()

    def fill_reference_bank(self, reference_latent, reference_poses, context, keep, num_frames):
        """Run the ReferenceNet at timestep 0 on the reference latents, the pose adaptor's features added after its
        conv_in (as the sampler does); dropped samples' rows skip the reference."""
        self.bank.clear()
        self.bank.reading_rows = keep.repeat_interleave(num_frames)
        if not keep.any():
            return  # no row reads the reference: the ReferenceNet need not run
        pose = self.model.pose_adaptor(reference_poses)
        reference_attention.write_reference(self.model.reference_unet, reference_latent, context, pose)


def audio_conditioning(model: CovOGModel, batch: dict) -> AudioConditioning:
    """The audio driver's inputs, one row per (clip, frame) as the UNet's spatial layers see them."""
    return AudioConditioning(
        tokens=model.audio_driver.project(batch["audio_features"].flatten(0, 1)),
        scores=batch["speaking_scores"].flatten(0, 1),
        face_masks={factor: mask.flatten(0, 1) for factor, mask in batch["face_masks"].items()})


def min_snr_weights(scheduler, timesteps: torch.Tensor, gamma: float) -> torch.Tensor:
    """Min-SNR-gamma loss weights for the v-prediction target, as CovOG's and Moore-AnimateAnyone's training scripts
    compute them: min(snr + 1, gamma) / (snr + 1). With zero-terminal SNR the last timestep (snr 0) weighs 1."""
    alphas = scheduler.alphas_cumprod.to(timesteps.device)[timesteps].float()
    snr_plus_one = alphas / (1 - alphas) + 1
    return snr_plus_one.clamp(max=gamma) / snr_plus_one


@contextmanager
def motion_modules_bypassed(unet):
    """Stage 1 trains a single-image model, as AnimateAnyone's stage 1 (which has no motion modules). Over one
    frame a motion module is not the identity (its attention returns its value projection), so it is skipped."""
    modules = [m for block in (*unet.down_blocks, unet.mid_block, *unet.up_blocks)
               for m in (getattr(block, "motion_modules", None) or [])]
    for module in modules:
        module.forward = _pass_through
    try:
        yield
    finally:
        for module in modules:
            del module.forward


def _pass_through(hidden_states, *args, **kwargs):
    return hidden_states


# ---------------------------------------------------------------------------------------------------------------------
# The command line


@dataclass
class TrainSettings:
    """One training run: what `python -m covog.train` takes, with the paper's values as defaults."""

    stage: int  # 1 or 2
    data: list[str]  # clip folders, or folders of clip folders
    model: str  # the CovOG model folder to start from
    out: str  # checkpoint-N and state-N go here
    steps: int = STEPS
    lr: float = LEARNING_RATE
    batch: int = 1  # clips per GPU
    width: int = 640
    height: int = 384
    clip_frames: int = 15  # stage 2 frames per clip
    min_frame_gap: int = MIN_FRAME_GAP  # stage 1: least frames between reference and target
    save_every: int = 1000
    log_every: int = 10
    resume: bool = False  # continue from the latest state-N in `out`
    allow_inexact_resume: bool = False  # resume even when the saved random states cannot be restored
    mixed_precision: str = "no"  # "no", "fp16" (the paper) or "bf16"
    gradient_checkpointing: bool = False
    seed: int = 0
    workers: int = 2  # data loading processes
    condition_dropout: float = CONDITION_DROPOUT
    noise_offset: float = NOISE_OFFSET
    snr_gamma: float = SNR_GAMMA
    no_audio_driver: bool = False  # stage 2 without the audio driver (the ablation)
    fused_optimizer: bool = False  # torch's fused AdamW
    driver_lr: float | None = None  # stage 2: the audio driver's learning rate (None: lr), new weights may need more

    def check(self) -> None:
        if self.width <= 0 or self.height <= 0 or self.width % SIZE_MULTIPLE or self.height % SIZE_MULTIPLE:
            raise ValueError(f"--width {self.width} --height {self.height}: both must be positive multiples of "
                             f"{SIZE_MULTIPLE}")
        for name in ("steps", "batch", "clip_frames", "save_every", "log_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(self, name)}")
        if not 0 <= self.condition_dropout <= 1:
            raise ValueError(f"--condition-dropout must be between 0 and 1, got {self.condition_dropout}")
        if self.workers < 0:
            raise ValueError(f"--workers must be at least 0, got {self.workers}")
        if self.min_frame_gap < 1:
            raise ValueError(f"--min-frame-gap must be at least 1, got {self.min_frame_gap}")
        if self.no_audio_driver and self.stage != 2:
            raise ValueError("--no-audio-driver is a stage-2 ablation; stage 1 never runs the audio driver")
        if self.driver_lr is not None and (self.driver_lr <= 0 or self.stage != 2 or self.no_audio_driver):
            raise ValueError(f"--driver-lr {self.driver_lr}: the audio driver's learning rate must be positive, and "
                             "only stage 2 with the audio driver trains it")


@dataclass
class Run:
    settings: TrainSettings
    accelerator: Accelerator
    model: CovOGModel
    net: TrainingNet  # as accelerate prepared it
    optimizer: torch.optim.Optimizer
    dataset: ConversationClips
    order: EpochOrder
    parameters: list[torch.nn.Parameter]
    start_step: int


def prepare(settings: TrainSettings) -> Run:
    """Check the inputs, load the model and the data, and restore the training state when resuming."""
    settings.check()
    out = Path(settings.out)
    state = latest_state(out)
    if state is not None and not settings.resume:
        raise ValueError(f"{out} already holds training state {state.name}: pass --resume to continue it, or choose "
                         "another --out")
    if settings.resume and state is not None:
        saved_stage = json.loads((state / "training.json").read_text())["stage"]
        if saved_stage != settings.stage:
            raise ValueError(f"{state} is stage-{saved_stage} training; this run is stage {settings.stage}: start it in "
                             "another --out from a checkpoint-N folder")
    model = CovOGModel.load(settings.model)
    frame_limit = model.denoising_unet.config.motion_max_seq_length
    if settings.stage == 2 and settings.clip_frames > frame_limit:
        raise ValueError(f"--clip-frames {settings.clip_frames}: the motion modules encode at most {frame_limit} frames")

    accelerator = Accelerator(mixed_precision=settings.mixed_precision,
                              # a sample whose conditions are dropped leaves the ReferenceNet out of that step
                              kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)])
    set_seed(settings.seed, device_specific=True)
    model.to(accelerator.device)
    with accelerator.main_process_first():  # the main process writes the audio feature caches
        dataset = ConversationClips(settings.data, (settings.width, settings.height), settings.stage, settings.clip_frames,
                                    audio_encoder=model.audio_encoder if settings.stage == 2 else None,
                                    min_frame_gap=settings.min_frame_gap)
    if settings.batch > 1 and len(dataset.people_counts) > 1:
        raise ValueError(f"--batch {settings.batch}: the clips show {sorted(dataset.people_counts)} people, and a batch "
                         "needs one count; use --batch 1 (the paper's: 1 per GPU)")
    order = EpochOrder(len(dataset), settings.batch, settings.seed, accelerator.process_index, accelerator.num_processes)

    audio_driver = not settings.no_audio_driver
    parameters = set_trainable(model, settings.stage, audio_driver)
    if settings.gradient_checkpointing:
        for name in trained_components(settings.stage, audio_driver):
            module = getattr(model, name)
            if getattr(module, "_supports_gradient_checkpointing", False):
                module.enable_gradient_checkpointing()
    net = TrainingNet(model, settings.stage, Recipe(settings.noise_offset, settings.snr_gamma, settings.condition_dropout),
                      audio_driver)
    optimizer = make_optimizer(parameter_groups(parameters, model, settings.driver_lr), settings.lr, settings.stage,
                               accelerator, settings.fused_optimizer)
    net, optimizer = accelerator.prepare(net, optimizer)
    start_step = 0
    if settings.resume:
        if state is None:
            accelerator.print(f"no training state in {out}: starting at step 0")
        else:
            start_step = resume(accelerator, state, len(order), settings.allow_inexact_resume)
    return Run(settings, accelerator, model, net, optimizer, dataset, order, parameters, start_step)


def resume(accelerator: Accelerator, state: Path, steps_per_epoch: int, inexact_ok: bool = False) -> int:
    """Load the training state (weights, optimizer, random states); returns its step. The last thing before the
    first step: nothing may draw from the restored random generators in between."""
    sentinel = random_generators_scrambled()
    accelerator.load_state(str(state))
    if torch.equal(torch.get_rng_state(), sentinel):  # accelerate only logs that it could not load them
        where = state / f"random_states_{accelerator.process_index}.pkl"
        if not inexact_ok:
            raise ValueError(f"{where}: the random states could not be restored (missing or corrupt), so the run "
                             "would not continue as an uninterrupted one: pass --allow-inexact-resume to go on")
        accelerator.print(f"warning: {where} could not be restored; the run goes on with fresh random states")
    saved = json.loads((state / "training.json").read_text())
    accelerator.print(f"resuming from {state} at step {saved['step']}")
    if saved.get("steps_per_epoch") != steps_per_epoch:
        accelerator.print(f"the data changed since {state.name} ({saved.get('steps_per_epoch')} steps per epoch, now "
                          f"{steps_per_epoch}): the clips are not read in the order of an uninterrupted run")
    return saved["step"]


def random_generators_scrambled() -> torch.Tensor:
    """Seed torch's CPU generator from fresh entropy and return its state: still equal after a load, nothing was
    restored (a saved state equal to a fresh random one has odds of 2^-64)."""
    import secrets

    torch.manual_seed(secrets.randbits(63))
    return torch.get_rng_state()


def parameter_groups(parameters: list[torch.nn.Parameter], model: CovOGModel, driver_lr: float | None) -> list[dict]:
    """The optimizer's parameter groups: one at the run's learning rate, and the audio driver's own when
    `driver_lr` is set."""
    if driver_lr is None:
        return [{"params": parameters}]
    driver = {id(p) for p in model.audio_driver.parameters()}
    return [{"params": [p for p in parameters if id(p) not in driver]},
            {"params": [p for p in parameters if id(p) in driver], "lr": driver_lr}]


def make_optimizer(parameters, lr: float, stage: int, accelerator: Accelerator,
                   fused: bool = False) -> torch.optim.Optimizer:
    """AdamW; in stage 2 bitsandbytes' 8-bit AdamW (the paper's) when it is installed and a GPU is used; torch's
    fused AdamW when `fused`."""
    if stage == 2:
        try:
            import bitsandbytes
        except ImportError:
            accelerator.print("bitsandbytes is not installed: stage 2 uses plain AdamW (the paper: 8-bit AdamW)")
        else:
            if accelerator.device.type == "cuda":
                return bitsandbytes.optim.AdamW8bit(parameters, lr=lr, weight_decay=WEIGHT_DECAY)
            accelerator.print("8-bit AdamW needs a GPU: plain AdamW")
    return torch.optim.AdamW(parameters, lr=lr, weight_decay=WEIGHT_DECAY, **({"fused": True} if fused else {}))


def train(run: Run, progress: Progress | None = None) -> Path:
    """The training loop; returns the last checkpoint folder. progress(step, steps) is called at the start and after
    every step; when it raises (to cancel), the state at that step is saved first, so `--resume` goes on from it."""
    settings, accelerator = run.settings, run.accelerator
    out, step = Path(settings.out), run.start_step
    if step >= settings.steps:
        accelerator.print(f"already at step {step} of {settings.steps}: nothing to train")
        return out / f"checkpoint-{step}"
    report(progress, step, settings.steps)
    bank = accelerator.unwrap_model(run.net).bank
    epoch, skip = divmod(step, len(run.order))
    while step < settings.steps:
        for batch in epoch_loader(run, epoch, skip):
            loss = run.net(send_to_device(batch, accelerator.device))
            accelerator.backward(loss)
            if accelerator.sync_gradients:
                accelerator.clip_grad_norm_(run.parameters, MAX_GRAD_NORM)
            run.optimizer.step()
            run.optimizer.zero_grad(set_to_none=True)
            bank.clear()  # the reference tokens hold this step's graph
            step += 1
            if step % settings.log_every == 0 or step == settings.steps:
                mean_loss = accelerator.gather(loss.detach()[None]).mean().item()
                accelerator.print(f"step {step}/{settings.steps} loss {mean_loss:.6f}")
            saved = step % settings.save_every == 0 or step == settings.steps
            if saved:
                save(run, step)
            try:
                report(progress, step, settings.steps)
            except BaseException:
                if not saved:
                    save(run, step)
                raise
            if step >= settings.steps:
                break
        epoch, skip = epoch + 1, 0
    return out / f"checkpoint-{step}"


def epoch_loader(run: Run, epoch: int, skip: int) -> DataLoader:
    """The batches of `epoch` from its step `skip` on. The loader has a generator of its own: starting it draws
    nothing from torch's global generator, whose state the training state saves."""
    return DataLoader(run.dataset, batch_sampler=run.order.batches(epoch, skip), collate_fn=collate,
                      num_workers=run.settings.workers, generator=torch.Generator())


def save(run: Run, step: int):
    """OUT/checkpoint-N (the whole model, our folder format) and OUT/state-N (accelerate's state); older states are
    removed once the new one is complete."""
    accelerator, out = run.accelerator, Path(run.settings.out)
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        run.model.save(out / f"checkpoint-{step}", overwrite=True)
    partial = out / f"state-{step}.partial"
    accelerator.save_state(str(partial))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        (partial / "training.json").write_text(json.dumps({"stage": run.settings.stage, "step": step,
                                                           "steps_per_epoch": len(run.order)}))
        final = out / f"state-{step}"
        shutil.rmtree(final, ignore_errors=True)
        partial.rename(final)
        for older in out.glob("state-*"):
            if older != final and STATE.fullmatch(older.name):
                shutil.rmtree(older)
    accelerator.wait_for_everyone()


def latest_state(out: Path) -> Path | None:
    """The state-N folder with the largest N in `out` (partial saves are ignored)."""
    states = [(int(m.group(1)), path) for path in (out.iterdir() if out.is_dir() else [])
              if (m := STATE.fullmatch(path.name)) and (path / "training.json").is_file()]
    return max(states)[1] if states else None
