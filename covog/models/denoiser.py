"""One pass of CovOG's denoising UNet: diffusers' UNetMotionModel blocks, with the Multi-Human Pose Encoder's
features added right after conv_in and the Interactive Audio Driver's blocks after down blocks 0-2 and up blocks 0-1
(where CovOG's training code puts them). Reference attention works inside the spatial self-attentions through
`reference_attention`'s processors.

The forward is written out here, block by block, so the two places where CovOG departs from AnimateDiff can be seen.
"""

from __future__ import annotations

import torch
from diffusers import UNetMotionModel

from covog.models.audio_driver import AudioConditioning, InteractiveAudioDriver


def denoise(unet: UNetMotionModel, audio_driver: InteractiveAudioDriver | None, latents: torch.Tensor,
            timestep: torch.Tensor | int, context: torch.Tensor, pose_features: torch.Tensor | None = None,
            audio: AudioConditioning | None = None) -> torch.Tensor:
    """The model output (v-prediction) for `latents`.

    latents: (batch, channels, frames, h, w); context: (batch, tokens, dim), the CLIP image embedding;
    pose_features: (batch * frames, block_out_channels[0], h, w) from the pose encoder, or None;
    audio: the audio driver's conditioning, rows = batch * frames, or None to run without audio; an untrained audio
    driver (a fresh init: its weights are random) is skipped, so it changes nothing.
    Returns (batch, channels, frames, h, w).
    """
    batch, _, frames, height, width = latents.shape
    rows = batch * frames
    multiple = 2 ** (len(unet.down_blocks) - 1)
    if height % multiple or width % multiple:
        raise ValueError(f"latent size {height}x{width} must be a multiple of {multiple}")
    timesteps = torch.as_tensor(timestep, device=latents.device).reshape(-1).expand(batch)
    emb = unet.time_embedding(unet.time_proj(timesteps).to(unet.dtype))
    emb = emb.repeat_interleave(frames, dim=0)
    context = context.repeat_interleave(frames, dim=0)

    sample = latents.permute(0, 2, 1, 3, 4).reshape(rows, -1, height, width)
    sample = unet.conv_in(sample)
    if pose_features is not None:
        sample = sample + pose_features.to(sample.dtype)
    if audio_driver is None or not audio_driver.trained:
        audio = None
    if audio is not None:
        audio = _check_rows(audio, rows)

    skips = (sample,)
    for index, block in enumerate(unet.down_blocks):
        if getattr(block, "has_cross_attention", False):
            sample, res = block(hidden_states=sample, temb=emb, encoder_hidden_states=context, num_frames=frames)
        else:
            sample, res = block(hidden_states=sample, temb=emb, num_frames=frames)
        if audio is not None:
            sample = audio_driver.after_down_block(index, sample, audio)  # the skip connections stay as they were
        skips += res

    sample = unet.mid_block(sample, emb, encoder_hidden_states=context, num_frames=frames)

    for index, block in enumerate(unet.up_blocks):
        res, skips = skips[-len(block.resnets):], skips[:-len(block.resnets)]
        if getattr(block, "has_cross_attention", False):
            sample = block(hidden_states=sample, temb=emb, res_hidden_states_tuple=res,
                           encoder_hidden_states=context, num_frames=frames)
        else:
            sample = block(hidden_states=sample, temb=emb, res_hidden_states_tuple=res, num_frames=frames)
        if audio is not None:
            sample = audio_driver.after_up_block(index, sample, audio)

    sample = unet.conv_out(unet.conv_act(unet.conv_norm_out(sample)))
    return sample.reshape(batch, frames, -1, height, width).permute(0, 2, 1, 3, 4)


def _check_rows(audio: AudioConditioning, rows: int) -> AudioConditioning:
    for name, tensor in (("tokens", audio.tokens), ("scores", audio.scores)):
        if tensor.shape[0] != rows:
            raise ValueError(f"audio {name} have {tensor.shape[0]} rows; the UNet runs {rows} (batch x frames)")
    for factor, mask in audio.face_masks.items():
        if mask.shape[:2] != audio.scores.shape:
            raise ValueError(f"face masks at 1/{factor} are {tuple(mask.shape[:2])} (rows, people); the scores are "
                             f"{tuple(audio.scores.shape)}")
    return audio
