"""Component configurations: the published sizes (SD-1.5, AnimateDiff v2, sd-image-variations' CLIP, wav2vec2-base)
and a tiny variant with the same structure (same blocks, same state-dict keys, smaller widths) for tests and
overhead benchmarks. Configuration is data: every builder reads these dicts."""

from __future__ import annotations

import copy

SD15_UNET = {  # runwayml/stable-diffusion-v1-5 unet/config.json (sd-image-variations has the same architecture)
    "sample_size": 64, "in_channels": 4, "out_channels": 4, "layers_per_block": 2,
    "block_out_channels": [320, 640, 1280, 1280],
    "down_block_types": ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
    "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
    "cross_attention_dim": 768, "attention_head_dim": 8, "norm_num_groups": 32, "norm_eps": 1e-5,
}
MOTION_ADAPTER_V2 = {  # guoyww/animatediff-motion-adapter-v1-5-2
    "block_out_channels": [320, 640, 1280, 1280], "motion_layers_per_block": 2,
    "motion_mid_block_layers_per_block": 1, "motion_num_attention_heads": 8, "motion_norm_num_groups": 32,
    "motion_max_seq_length": 32, "use_motion_mid_block": True,
}
SD15_VAE = {  # stabilityai/sd-vae-ft-mse
    "in_channels": 3, "out_channels": 3, "latent_channels": 4, "layers_per_block": 2, "sample_size": 256,
    "block_out_channels": [128, 256, 512, 512], "norm_num_groups": 32, "scaling_factor": 0.18215,
    "down_block_types": ["DownEncoderBlock2D"] * 4, "up_block_types": ["UpDecoderBlock2D"] * 4,
}
CLIP_VISION = {  # lambdalabs/sd-image-variations-diffusers image_encoder: ViT-L/14, 768-wide projection
    "hidden_size": 1024, "intermediate_size": 4096, "num_hidden_layers": 24, "num_attention_heads": 16,
    "image_size": 224, "patch_size": 14, "projection_dim": 768, "hidden_act": "quick_gelu",
}
WAV2VEC2_BASE = {  # facebook/wav2vec2-base-960h: 12 layers of 768, the audio driver's (12, 768) per frame
    "hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12, "intermediate_size": 3072,
}
AUDIO_DRIVER = {  # CovOG: after down blocks 0-2 and up blocks 0-1 of SD-1.5's UNet
    "down_channels": [320, 640, 1280], "up_channels": [1280, 1280], "audio_dim": 1024, "feature_layers": 12,
    "feature_dim": 768, "intermediate_dim": 512, "context_tokens": 32, "norm_num_groups": 32,
}
POSE_GUIDER = {"embedding_channels": 320, "block_out_channels": [16, 32, 96, 256]}  # AnimateAnyone
POSE_ADAPTOR = {"embedding_channels": 320, "block_out_channels": [16, 32, 64, 128]}  # CovOG training code
SCHEDULER = {  # the paper: v-prediction, zero-terminal-SNR betas, trailing timesteps
    "num_train_timesteps": 1000, "beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear",
    "prediction_type": "v_prediction", "rescale_betas_zero_snr": True, "timestep_spacing": "trailing",
    "clip_sample": False, "set_alpha_to_one": True, "steps_offset": 1,
}

PUBLISHED = {
    "unet": SD15_UNET, "motion_adapter": MOTION_ADAPTER_V2, "vae": SD15_VAE, "image_encoder": CLIP_VISION,
    "audio_encoder": WAV2VEC2_BASE, "audio_driver": AUDIO_DRIVER, "pose_guider": POSE_GUIDER,
    "pose_adaptor": POSE_ADAPTOR, "scheduler": SCHEDULER,
}

_TINY_CHANNELS = [32, 48, 64, 64]  # every channel change of SD-1.5 kept: the tiny models have every published key
TINY = {
    "unet": {**SD15_UNET, "sample_size": 8, "block_out_channels": _TINY_CHANNELS, "cross_attention_dim": 32,
             "attention_head_dim": 4, "norm_num_groups": 8},
    "motion_adapter": {**MOTION_ADAPTER_V2, "block_out_channels": _TINY_CHANNELS, "motion_num_attention_heads": 2,
                       "motion_norm_num_groups": 8},
    "vae": {**SD15_VAE, "block_out_channels": [8, 8, 16, 16], "layers_per_block": 1, "norm_num_groups": 8,
            "sample_size": 64},
    "image_encoder": {**CLIP_VISION, "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
                      "num_attention_heads": 4, "image_size": 32, "patch_size": 8, "projection_dim": 32},
    "audio_encoder": {"hidden_size": 16, "num_hidden_layers": 3, "num_attention_heads": 2, "intermediate_size": 32,
                      "conv_dim": [16, 16], "conv_stride": [5, 4], "conv_kernel": [10, 4],
                      "num_conv_pos_embeddings": 16, "num_conv_pos_embedding_groups": 2},
    "audio_driver": {**AUDIO_DRIVER, "down_channels": _TINY_CHANNELS[:3], "up_channels": [64, 64], "audio_dim": 24,
                     "feature_layers": 3, "feature_dim": 16, "intermediate_dim": 24, "context_tokens": 4,
                     "norm_num_groups": 8},
    "pose_guider": {"embedding_channels": 32, "block_out_channels": [4, 8, 8, 16]},
    "pose_adaptor": {"embedding_channels": 32, "block_out_channels": [4, 8, 8, 8]},
    "scheduler": SCHEDULER,
}


def configs(size: str) -> dict[str, dict]:
    """A deep copy of the component configs: size 'sd15' (the published model) or 'tiny'."""
    table = {"sd15": PUBLISHED, "tiny": TINY}
    if size not in table:
        raise ValueError(f"unknown model size {size!r}: choose from {sorted(table)}")
    return copy.deepcopy(table[size])
