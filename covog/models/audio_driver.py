"""IAD, the Interactive Audio Driver: audio tokens that reach each person's face only, gated by their speaking score.

CovOG's layout (from Hallo2), so the published `audio_proj.*` / `audio_down_module.*` / `audio_up_module.*` weights
load key for key. An untrained driver is skipped and a fresh block is exactly the identity (only its proj_out starts
at zero). docs/covog-model.md gives the arithmetic and why the init differs from the published one.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.attention import FeedForward
from diffusers.models.attention_processor import Attention
from diffusers.models.modeling_utils import ModelMixin
from torch import nn

SCORE_DIVISOR = 3.0  # the training code divides the TalkNet-style speaking scores by 3 before the gate
DOWN_FACTORS = (2, 4, 8)  # feature size of down blocks 0-2 outputs, as a division of the latent size
UP_FACTORS = (4, 2)  # ... and of up blocks 0-1 outputs
FACE_MASK_FACTORS = tuple(sorted(set(DOWN_FACTORS + UP_FACTORS)))  # the face masks the blocks read: 1/2, 1/4, 1/8


@dataclass
class AudioConditioning:
    """What the audio blocks read, one row per (video, frame) as the UNet's spatial layers see them.

    tokens: (rows, 32, audio_dim) shared by everyone, or (rows, people, 32, audio_dim), one stream per person;
    scores: (rows, people) speaking scores (TalkNet-style: positive while speaking);
    face_masks: {factor: (rows, people, h, w)} face masks at each feature size (latent size / factor), 0..1.
    """

    tokens: torch.Tensor
    scores: torch.Tensor
    face_masks: dict[int, torch.Tensor]


class AudioProjection(nn.Module):
    """Per frame, flatten (blocks, channels) wav2vec2 features and project to `context_tokens` tokens."""

    def __init__(self, blocks: int, channels: int, intermediate_dim: int, context_tokens: int, output_dim: int):
        super().__init__()
        self.context_tokens, self.output_dim = context_tokens, output_dim
        self.proj1 = nn.Linear(blocks * channels, intermediate_dim)
        self.proj2 = nn.Linear(intermediate_dim, intermediate_dim)
        self.proj3 = nn.Linear(intermediate_dim, context_tokens * output_dim)
        self.norm = nn.LayerNorm(output_dim)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """(..., blocks, channels) -> (..., context_tokens, output_dim)."""
        lead = features.shape[:-2]
        x = torch.relu(self.proj1(features.flatten(-2)))
        x = torch.relu(self.proj2(x))
        return self.norm(self.proj3(x).reshape(*lead, self.context_tokens, self.output_dim))


class AudioTransformerBlock(nn.Module):
    def __init__(self, dim: int, audio_dim: int):
        super().__init__()
        self.zero_conv_face = nn.Conv2d(dim, dim, kernel_size=1)  # the published name; not zeroed (module doc)
        self.norm1 = nn.LayerNorm(dim)
        self.attn2_1 = Attention(query_dim=dim, cross_attention_dim=audio_dim, heads=1, dim_head=dim, bias=False)
        self.norm2 = nn.LayerNorm(dim)
        self.ff = FeedForward(dim, activation_fn="geglu")
        self.norm3 = nn.LayerNorm(dim)
        self.activate_score_proj = nn.Linear(1, audio_dim)

    def forward(self, x: torch.Tensor, size: tuple[int, int], audio: AudioConditioning,
                face_masks: torch.Tensor) -> torch.Tensor:
        """x: (rows, h*w, dim); face_masks: (rows, people, h, w)."""
        rows, people = audio.scores.shape
        hidden = self.norm1(x)  # the training code carries the normalised features on as the residual
        attn = self.attn2_1
        query = attn.to_q(self.norm2(hidden))[:, None]  # (rows, 1, L, dim): the same query for every person
        gates = torch.sigmoid(self.activate_score_proj((audio.scores / SCORE_DIVISOR)[..., None].to(x.dtype)))
        tokens = audio.tokens if audio.tokens.ndim == 4 else audio.tokens[:, None]
        gated = tokens * gates[:, :, None, :]  # (rows, people, tokens, audio_dim)
        per_person = F.scaled_dot_product_attention(query, attn.to_k(gated), attn.to_v(gated))
        per_person = attn.to_out[0](per_person) * face_masks.flatten(2)[..., None].to(x.dtype)
        # the conv is linear, so sum(conv(a_p)) = conv(sum a_p) + (people - 1) * bias
        summed = per_person.sum(dim=1).transpose(1, 2).reshape(rows, -1, *size)
        face = self.zero_conv_face(summed) + (people - 1) * self.zero_conv_face.bias[:, None, None]
        hidden = hidden + face.flatten(2).transpose(1, 2)
        return self.ff(self.norm3(hidden)) + hidden


class AudioTransformer(nn.Module):
    def __init__(self, dim: int, audio_dim: int, norm_num_groups: int):
        super().__init__()
        self.norm = nn.GroupNorm(norm_num_groups, dim, eps=1e-6)
        self.proj_in = nn.Conv2d(dim, dim, kernel_size=1)
        self.transformer_blocks = nn.ModuleList([AudioTransformerBlock(dim, audio_dim)])
        self.proj_out = nn.Conv2d(dim, dim, kernel_size=1)
        nn.init.zeros_(self.proj_out.weight)  # a fresh block is exactly the identity (see the module docstring)
        nn.init.zeros_(self.proj_out.bias)

    def forward(self, features: torch.Tensor, audio: AudioConditioning, face_masks: torch.Tensor) -> torch.Tensor:
        rows, dim, h, w = features.shape
        x = self.proj_in(self.norm(features)).flatten(2).transpose(1, 2)
        for block in self.transformer_blocks:
            x = block(x, (h, w), audio, face_masks)
        return self.proj_out(x.transpose(1, 2).reshape(rows, dim, h, w)) + features


class MultiHumanAudioBlock(nn.Module):
    def __init__(self, dim: int, audio_dim: int, norm_num_groups: int):
        super().__init__()
        self.audio_modules = nn.ModuleList([AudioTransformer(dim, audio_dim, norm_num_groups)])

    def forward(self, features: torch.Tensor, audio: AudioConditioning, factor: int) -> torch.Tensor:
        masks = audio.face_masks.get(factor)
        if masks is None or masks.shape[-2:] != features.shape[-2:]:
            got = None if masks is None else tuple(masks.shape[-2:])
            raise ValueError(f"face masks at 1/{factor} of the latent size must be {tuple(features.shape[-2:])}, "
                             f"got {got}")
        for module in self.audio_modules:
            features = module(features, audio, masks)
        return features


class InteractiveAudioDriver(ModelMixin, ConfigMixin):
    """The audio projection and the five audio blocks, keyed as in CovOG's checkpoints.

    `trained` (saved in its config.json) says whether the weights were trained (CovOG stage 2, or converted from a
    stage-2 checkpoint) or are a fresh init; an untrained driver is skipped.
    """

    @register_to_config
    def __init__(self, down_channels: tuple[int, ...] = (320, 640, 1280), up_channels: tuple[int, ...] = (1280, 1280),
                 audio_dim: int = 1024, feature_layers: int = 12, feature_dim: int = 768,
                 intermediate_dim: int = 512, context_tokens: int = 32, norm_num_groups: int = 32,
                 trained: bool = False):
        super().__init__()
        self.audio_proj = AudioProjection(feature_layers, feature_dim, intermediate_dim, context_tokens, audio_dim)
        self.audio_down_module = nn.ModuleList(
            [MultiHumanAudioBlock(c, audio_dim, norm_num_groups) for c in down_channels])
        self.audio_up_module = nn.ModuleList([MultiHumanAudioBlock(c, audio_dim, norm_num_groups) for c in up_channels])

    @property
    def trained(self) -> bool:
        return bool(self.config.trained)

    def mark_trained(self):
        """From now on its weights count as trained: `denoise` runs it, and `save_pretrained` records it."""
        self.register_to_config(trained=True)

    def project(self, features: torch.Tensor) -> torch.Tensor:
        """wav2vec2 features (..., feature_layers, feature_dim) -> audio tokens (..., context_tokens, audio_dim)."""
        expected = (self.config.feature_layers, self.config.feature_dim)
        if tuple(features.shape[-2:]) != expected:
            raise ValueError(f"audio features must end in {expected} (wav2vec2 layers x width), "
                             f"got {tuple(features.shape)}")
        return self.audio_proj(features.to(self.dtype))

    def after_down_block(self, index: int, features: torch.Tensor, audio: AudioConditioning) -> torch.Tensor:
        if index >= len(self.audio_down_module):
            return features
        return self.audio_down_module[index](features, audio, DOWN_FACTORS[index])

    def after_up_block(self, index: int, features: torch.Tensor, audio: AudioConditioning) -> torch.Tensor:
        if index >= len(self.audio_up_module):
            return features
        return self.audio_up_module[index](features, audio, UP_FACTORS[index])
