"""The condition encoders around the UNets: the reference frame's CLIP image embedding (global appearance, one
token) and wav2vec2 features per video frame (the audio driver's input)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from transformers import CLIPVisionModelWithProjection, Wav2Vec2Model

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)  # OpenAI CLIP's normalisation
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
AUDIO_RATE = 16000  # wav2vec2 reads 16 kHz mono


def clip_image_embedding(encoder: CLIPVisionModelWithProjection, image: torch.Tensor) -> torch.Tensor:
    """(batch, 3, H, W) RGB in 0..1 -> (batch, 1, projection_dim): resized to the encoder's input (shorter side,
    centre crop, bicubic, as CLIPImageProcessor does) and normalised."""
    size = encoder.config.image_size
    height, width = image.shape[-2:]
    scale = size / min(height, width)
    resized = F.interpolate(image.float(), size=(max(size, round(height * scale)), max(size, round(width * scale))),
                            mode="bicubic", align_corners=False, antialias=True)
    top, left = (resized.shape[-2] - size) // 2, (resized.shape[-1] - size) // 2
    crop = resized[..., top:top + size, left:left + size].clamp(0, 1)
    mean = torch.tensor(CLIP_MEAN, device=crop.device)[:, None, None]
    std = torch.tensor(CLIP_STD, device=crop.device)[:, None, None]
    pixels = ((crop - mean) / std).to(device=encoder.device, dtype=encoder.dtype)
    return encoder(pixel_values=pixels).image_embeds[:, None]


def encode_latents(vae, frames: torch.Tensor, sample: bool) -> torch.Tensor:
    """(batch, frames, 3, H, W) in 0..1 -> scaled VAE latents (batch, channels, frames, H/8, W/8): a draw from the
    VAE's posterior (`sample`, for training targets) or its mean."""
    batch, count = frames.shape[:2]
    pixels = frames.flatten(0, 1).to(vae.device, vae.dtype) * 2 - 1
    distribution = vae.encode(pixels).latent_dist
    latents = (distribution.sample() if sample else distribution.mean) * vae.config.scaling_factor
    return latents.reshape(batch, count, *latents.shape[1:]).permute(0, 2, 1, 3, 4)


def audio_features(encoder: Wav2Vec2Model, samples: np.ndarray, num_frames: int, fps: float,
                   chunk_seconds: float = 30.0, context_seconds: float = 2.0) -> torch.Tensor:
    """16 kHz mono audio -> (num_frames, layers, hidden) float32: the hidden states of wav2vec2 layers 1..N (the
    paper's 12 x 768 for wav2vec2-base), linearly resampled in time to the video's frames.

    The audio covers `num_frames / fps` seconds: shorter audio is padded with silence, longer audio cut, so that
    frame t always hears the audio at t / fps. Long audio is encoded in chunks of `chunk_seconds`, each seeing
    `context_seconds` more on both sides (self-attention over a whole long recording would not fit in memory).
    """
    if num_frames < 1:
        raise ValueError(f"num_frames must be at least 1, got {num_frames}")
    samples = np.asarray(samples, dtype=np.float32)
    if samples.ndim != 1:
        raise ValueError(f"audio must be mono samples (1-D), got shape {samples.shape}")
    wanted = int(round(num_frames / fps * AUDIO_RATE))
    samples = np.pad(samples[:wanted], (0, max(0, wanted - len(samples))))
    # wav2vec2-base-960h's feature extractor normalises each utterance to zero mean, unit variance
    samples = (samples - samples.mean()) / np.sqrt(samples.var() + 1e-7)
    chunk, context = int(chunk_seconds * AUDIO_RATE), int(context_seconds * AUDIO_RATE)
    steps = [_encode_chunk(encoder, samples, start, min(start + chunk, len(samples)), context)
             for start in range(0, len(samples), chunk)]
    stacked = torch.cat(steps, dim=1)  # (layers, steps, hidden)
    frames = F.interpolate(stacked.transpose(1, 2), size=num_frames, mode="linear", align_corners=True)
    return frames.permute(2, 0, 1).float().contiguous()  # (num_frames, layers, hidden)


def _encode_chunk(encoder: Wav2Vec2Model, samples: np.ndarray, start: int, stop: int, context: int) -> torch.Tensor:
    """(layers, steps, hidden) for samples[start:stop], encoded with up to `context` samples around them."""
    first, last = max(0, start - context), min(len(samples), stop + context)
    inputs = torch.from_numpy(samples[first:last])[None].to(encoder.device, torch.float32)
    with torch.no_grad():
        hidden = torch.stack(encoder(inputs, output_hidden_states=True).hidden_states[1:], dim=1)[0]
    per_sample = hidden.shape[1] / (last - first)  # steps per sample (1/320 for wav2vec2-base)
    keep = slice(int(round((start - first) * per_sample)), int(round((stop - first) * per_sample)))
    return hidden[:, keep]
