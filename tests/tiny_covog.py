"""Test helpers for CovOG models shared across the test folders."""

import torch

from covog.models.model import CovOGModel


def perturb(model: CovOGModel, seed=0) -> CovOGModel:
    """Give the zero-initialised weights (audio face convs and outputs, pose encoder outputs, motion outputs) random
    values and mark the audio driver trained, as a trained model has: a fresh model's audio driver and pose encoders
    add exactly nothing."""
    torch.manual_seed(seed)
    for module in model.modules.values():
        for p in module.parameters():
            if p.ndim > 1 and not p.any():
                torch.nn.init.normal_(p, std=0.05)
    model.audio_driver.mark_trained()
    return model
