"""MPE, the Multi-Human Pose Encoder: ONE shared pose guider applied to each person's skeleton render, the
per-person features summed, so any number of people is encoded without padding and in any order.

The guider is diffusers' ControlNetConditioningEmbedding, which has exactly the layout of AnimateAnyone's
PoseGuider (conv 3->16, a 3x3 and a stride-2 3x3 conv with SiLU per channel pair, zero-initialised conv out, x8
downsampling), so Moore-AnimateAnyone's `pose_guider.pth` loads into it key for key. The same class with channels
(16, 32, 64, 128) is CovOG's pose adaptor into the ReferenceNet.
"""

from __future__ import annotations

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.controlnets.controlnet import ControlNetConditioningEmbedding
from diffusers.models.modeling_utils import ModelMixin

GUIDER_CHANNELS = (16, 32, 96, 256)  # AnimateAnyone's pose guider (paper)
ADAPTOR_CHANNELS = (16, 32, 64, 128)  # CovOG's pose adaptor (training code)


class MultiHumanPoseEncoder(ModelMixin, ConfigMixin):
    @register_to_config
    def __init__(self, embedding_channels: int = 320, block_out_channels: tuple[int, ...] = GUIDER_CHANNELS,
                 conditioning_channels: int = 3):
        super().__init__()
        self.guider = ControlNetConditioningEmbedding(embedding_channels, conditioning_channels,
                                                      tuple(block_out_channels))

    def forward(self, renders: torch.Tensor, person_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Sum over people of the guider's features.

        renders: (batch, people, channels, height, width), one skeleton render per person: floats in 0..1, or uint8
        as `covog.pipeline.conditioning.PoseRenders` draws them;
        person_mask: (batch, people) bool, False for empty slots when people counts differ within a batch.
        Returns (batch, embedding_channels, height / 8, width / 8).
        """
        if renders.ndim != 5:
            raise ValueError(f"renders must be (batch, people, channels, height, width), got {tuple(renders.shape)}")
        batch, people, channels, height, width = renders.shape
        if people == 0:
            raise ValueError("no person to encode: give at least one skeleton render")
        if height % 8 or width % 8:
            raise ValueError(f"render size must be a multiple of 8, got {height}x{width}")
        # one memory layout whatever the renders' (PoseRenders' are channels-last-like): the convolutions then
        # compute the same bits for the same values
        pixels = renders.to(dtype=self.dtype, memory_format=torch.contiguous_format)
        pixels = pixels / 255.0 if renders.dtype == torch.uint8 else pixels
        features = self.guider(pixels.reshape(batch * people, channels, height, width))
        features = features.reshape(batch, people, *features.shape[1:])
        if person_mask is not None:
            if person_mask.shape != (batch, people):
                raise ValueError(f"person_mask must be (batch, people) = {(batch, people)}, got "
                                 f"{tuple(person_mask.shape)}")
            features = features * person_mask[:, :, None, None, None].to(features.dtype)
        return features.sum(dim=1)
