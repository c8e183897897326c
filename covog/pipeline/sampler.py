"""CovOG's multi-speaker sampler for long videos.

DDIM with v-prediction, zero-terminal-SNR betas and trailing timesteps (the model's scheduler config); classifier-free
guidance on appearance only: the unconditional pass drops the CLIP embedding and the reference attention, while
pose, audio, face masks and speaking scores stay. A long video is made in windows (25 frames by default); the last
frames of each window are re-encoded and imposed, noised to the current step, on the first latents of the next
window at every step, and the overlapping frames are blended.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from covog.models import reference_attention
from covog.models.audio_driver import FACE_MASK_FACTORS, AudioConditioning
from covog.models.denoiser import denoise
from covog.models.encoders import clip_image_embedding, encode_latents
from covog.models.model import CovOGModel
from mit_annotator.core.progress import Progress, report, within

PIXELS_PER_LATENT_CELL = 8  # the VAE's downsampling
SIZE_MULTIPLE = 64  # the latent must halve 3 times in the UNet: 8 x 8 pixels


@dataclass
class SamplerSettings:
    steps: int = 30  # the paper: DDIM, 30 steps
    guidance: float = 3.5  # the paper: CFG 3.5 on appearance
    window: int = 25  # the paper: 25-frame windows ...
    overlap: int = 10  # ... whose last 10 frames are imposed on the next
    seed: int = 0
    decode_chunk: int = 8  # frames per VAE decode call (memory)

    def check(self):
        if self.steps < 1:
            raise ValueError(f"steps must be at least 1, got {self.steps}")
        if self.guidance < 1:
            raise ValueError(f"guidance (cfg) must be at least 1, got {self.guidance}")
        if self.window < 1 or not 0 <= self.overlap < self.window:
            raise ValueError(f"need window >= 1 and 0 <= overlap < window, got window {self.window}, "
                             f"overlap {self.overlap}")


@dataclass
class Conditions:
    """Everything the video is made from, for `frames` frames of `people` people at (height, width) pixels.

    reference: (3, H, W) RGB in 0..1, the frame showing everyone;
    reference_poses: (people, 3, H, W) skeleton renders of the reference frame (the pose adaptor's input);
    poses: (frames, people, 3, H, W) skeleton renders, uint8 or 0..1 float;
    audio_features: (frames, layers, dim) wav2vec2 features of the mixed track, or (people, frames, layers, dim),
      one track per person;
    speaking_scores: (frames, people); face_masks: {factor: (frames, people, H / 8 / factor, W / 8 / factor)}.
    """

    reference: torch.Tensor
    reference_poses: torch.Tensor
    poses: torch.Tensor
    audio_features: torch.Tensor
    speaking_scores: torch.Tensor
    face_masks: dict[int, torch.Tensor]

    @property
    def frames(self) -> int:
        return self.poses.shape[0]

    @property
    def people(self) -> int:
        return self.poses.shape[1]

    def check(self):
        if self.poses.ndim != 5 or self.poses.shape[2] != 3:
            raise ValueError(f"poses must be (frames, people, 3, H, W), got {tuple(self.poses.shape)}")
        frames, people, _, height, width = self.poses.shape
        if people == 0:
            raise ValueError("no person: give at least one person's poses")
        if frames == 0:
            raise ValueError("the pose sequence is empty")
        if height % SIZE_MULTIPLE or width % SIZE_MULTIPLE:
            raise ValueError(f"video size {width}x{height} must be a multiple of {SIZE_MULTIPLE} on both sides")
        if tuple(self.reference.shape) != (3, height, width):
            raise ValueError(f"reference image is {tuple(self.reference.shape)}; the poses need (3, {height}, "
                             f"{width}): resize it to the video size")
        if tuple(self.reference_poses.shape) != (people, 3, height, width):
            raise ValueError(f"reference poses must be {(people, 3, height, width)}, got "
                             f"{tuple(self.reference_poses.shape)}")
        audio_frames = self.audio_features.shape[-3]
        if audio_frames != frames:
            raise ValueError(f"the audio covers {audio_frames} frames but the pose sequence has {frames}: they must "
                             "cover the same frames")
        if self.audio_features.ndim == 4 and self.audio_features.shape[0] != people:
            raise ValueError(f"{self.audio_features.shape[0]} per-person audio tracks for {people} people")
        if tuple(self.speaking_scores.shape) != (frames, people):
            raise ValueError(f"speaking scores must be (frames, people) = {(frames, people)}, got "
                             f"{tuple(self.speaking_scores.shape)}")
        for factor in FACE_MASK_FACTORS:
            size = (height // PIXELS_PER_LATENT_CELL // factor, width // PIXELS_PER_LATENT_CELL // factor)
            mask = self.face_masks.get(factor)
            if mask is None or tuple(mask.shape) != (frames, people, *size):
                got = None if mask is None else tuple(mask.shape)
                raise ValueError(f"face masks at 1/{factor} must be {(frames, people, *size)}, got {got}")


def window_starts(frames: int, window: int, overlap: int) -> list[int]:
    """First frame of each window: a stride of window - overlap, the last window ending on the last frame."""
    if frames <= window:
        return [0]
    stride = window - overlap
    starts = list(range(0, frames - window, stride))
    return starts + [frames - window]


def check_window(model: CovOGModel, window: int, frames: int) -> None:
    longest = model.denoising_unet.config.motion_max_seq_length
    if min(window, frames) > longest:
        raise ValueError(f"window {window}: the motion modules encode at most {longest} frames at once")


def generate(model: CovOGModel, conditions: Conditions, settings: SamplerSettings | None = None,
             progress: Progress | None = None) -> torch.Tensor:
    """Frames (frames, 3, H, W) in 0..1, float32 on the CPU.

    progress(done, total) is called before the first denoising step and after every step (total = windows x
    steps); a hook that raises there (mit_annotator.core.progress) stops the work between two steps.
    """
    settings = settings or SamplerSettings()
    settings.check()
    conditions.check()
    check_window(model, settings.window, conditions.frames)
    bank = reference_attention.attach(model.reference_unet, model.denoising_unet)
    try:
        with torch.no_grad():
            context, latent = encode_reference(model, conditions.reference)
            write_reference(model, bank, context, latent, conditions.reference_poses)
            return sample_windows(model, conditions, settings, context, bank, progress).video
    finally:
        bank.clear()  # the reference tokens would otherwise stay in (GPU) memory


@dataclass
class SampledWindows:
    windows: list[tuple[int, torch.Tensor]]  # (first frame, latents (1, channels, frames, h, w)) per window
    video: torch.Tensor | None  # the decoded windows blended, (frames, 3, H, W) in 0..1 on the CPU


def sample_windows(model: CovOGModel, conditions: Conditions, settings: SamplerSettings, context: torch.Tensor,
                   bank, progress: Progress | None = None, decode_last: bool = True) -> SampledWindows:
    """Every window in turn, each starting from the previous windows' frames it overlaps (decoded, blended and
    re-encoded). The reference must be in `bank` already (write_reference). With decode_last=False the last
    window is left as latents: `video` then holds the frames before it, as the next window would have read them."""
    tokens = audio_tokens(model, conditions.audio_features)
    generator = torch.Generator("cpu").manual_seed(settings.seed)
    starts = window_starts(conditions.frames, settings.window, settings.overlap)
    total = len(starts) * settings.steps
    report(progress, 0, total)
    video, windows = None, []  # video: (frames so far, 3, H, W)
    for index, start in enumerate(starts):
        stop = min(start + settings.window, conditions.frames)
        known = None
        if video is not None and start < video.shape[0]:  # the previous window's frames inside this one, re-encoded
            known = encode_frames(model, video[start:])
        latents = sample_window(model, conditions, range(start, stop), context, tokens, bank, known, settings,
                                generator, within(progress, index * settings.steps, total))
        windows.append((start, latents))
        if decode_last or index + 1 < len(starts):
            video = blend(video, decode_latents(model, latents, settings.decode_chunk), start)
    return SampledWindows(windows, video)


def decode_windows(model: CovOGModel, windows: list[tuple[int, torch.Tensor]], chunk: int,
                   progress: Progress | None = None) -> torch.Tensor:
    """Windows of latents (sample_windows' `windows`) as frames, blended over their overlaps as generate does."""
    video = None
    for k, (start, latents) in enumerate(windows):
        video = blend(video, decode_latents(model, latents.to(model.device), chunk), start)
        report(progress, k + 1, len(windows))
    return video


def encode_reference(model: CovOGModel, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The reference image (3, H, W) in 0..1 as its CLIP context (1, 1, dim), in the model's dtype, and its VAE
    latent (1, channels, H/8, W/8), float32."""
    context = clip_image_embedding(model.image_encoder, image[None].to(model.device)).to(model.dtype)
    latent = encode_frames(model, image[None])[:, :, 0]
    return context, latent


def write_reference(model: CovOGModel, bank, context: torch.Tensor, latent: torch.Tensor,
                    reference_poses: torch.Tensor) -> None:
    """Fill the reference bank: the ReferenceNet at timestep 0 on the reference latent, with the pose adaptor's
    features of the reference frame's skeletons added after its conv_in."""
    device, dtype = model.device, model.dtype
    bank.clear()
    pose = model.pose_adaptor(reference_poses[None].to(device))
    reference_attention.write_reference(model.reference_unet, latent.to(device, dtype), context.to(device, dtype),
                                        pose)


def audio_tokens(model: CovOGModel, features: torch.Tensor) -> torch.Tensor:
    """(frames, tokens, dim) or, per person, (frames, people, tokens, dim)."""
    tokens = model.audio_driver.project(features.to(model.device))
    return tokens.transpose(0, 1) if tokens.ndim == 4 else tokens


def sample_window(model, conditions, frames: range, context, tokens, bank, known, settings, generator,
                  progress: Progress | None = None):
    """One window's latents; progress(k, steps) after its k-th denoising step."""
    device, dtype = model.device, model.dtype
    scheduler = model.scheduler
    scheduler.set_timesteps(settings.steps, device=device)
    height, width = conditions.poses.shape[-2:]
    shape = (1, model.denoising_unet.config.in_channels, len(frames),
             height // PIXELS_PER_LATENT_CELL, width // PIXELS_PER_LATENT_CELL)
    latents = torch.randn(shape, generator=generator).to(device) * scheduler.init_noise_sigma
    known_noise = None if known is None else torch.randn(known.shape, generator=generator).to(device)

    guided = settings.guidance > 1
    copies = 2 if guided else 1  # rows: [unconditional frames..., conditional frames...]
    pose = model.pose_guider(conditions.poses[frames.start:frames.stop].to(device)).repeat(copies, 1, 1, 1)
    audio = AudioConditioning(
        tokens=tokens[frames.start:frames.stop].to(dtype).repeat(copies, *[1] * (tokens.ndim - 1)),
        scores=conditions.speaking_scores[frames.start:frames.stop].to(device, dtype).repeat(copies, 1),
        face_masks={f: m[frames.start:frames.stop].to(device, dtype).repeat(copies, 1, 1, 1)
                    for f, m in conditions.face_masks.items()})
    contexts = torch.cat([torch.zeros_like(context), context]) if guided else context
    bank.reading_rows = (torch.arange(copies * len(frames), device=device) >= len(frames)) if guided else None

    for done, t in enumerate(scheduler.timesteps, 1):
        if known is not None:
            latents[:, :, :known.shape[2]] = scheduler.add_noise(known, known_noise, t.reshape(1))
        model_input = latents.repeat(copies, 1, 1, 1, 1).to(dtype)
        prediction = denoise(model.denoising_unet, model.audio_driver, model_input, t, contexts, pose, audio).float()
        if guided:
            unconditional, conditional = prediction.chunk(2)
            prediction = unconditional + settings.guidance * (conditional - unconditional)
        latents = scheduler.step(prediction, t, latents).prev_sample
        report(progress, done, len(scheduler.timesteps))
    if known is not None:
        latents[:, :, :known.shape[2]] = known
    return latents


def encode_frames(model: CovOGModel, frames: torch.Tensor) -> torch.Tensor:
    """(n, 3, H, W) in 0..1 -> scaled VAE latents (1, channels, n, H/8, W/8), float32."""
    return encode_latents(model.vae, frames[None], sample=False).float()


def decode_latents(model: CovOGModel, latents: torch.Tensor, chunk: int) -> torch.Tensor:
    """(1, channels, n, h, w) latents -> (n, 3, H, W) frames in 0..1 on the CPU."""
    vae = model.vae
    flat = latents[0].permute(1, 0, 2, 3) / vae.config.scaling_factor
    frames = [vae.decode(part.to(vae.dtype)).sample.float().cpu() for part in flat.split(chunk)]
    return ((torch.cat(frames) + 1) / 2).clamp(0, 1)


def blend(video: torch.Tensor | None, window: torch.Tensor, start: int) -> torch.Tensor:
    """Append a window whose first frames overlap the video from `start` on, fading linearly from old to new (the
    window itself when there is no video yet)."""
    if video is None:
        return window
    overlap = video.shape[0] - start
    if overlap <= 0:
        return torch.cat([video, window])
    weight = torch.linspace(0, 1, overlap + 2)[1:-1].reshape(-1, 1, 1, 1)
    mixed = video[start:] * (1 - weight) + window[:overlap] * weight
    return torch.cat([video[:start], mixed, window[overlap:]])
