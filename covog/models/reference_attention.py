"""Reference attention (AnimateAnyone): the denoising UNet's spatial self-attentions also attend to the tokens that
entered the ReferenceNet's matching self-attentions when it saw the reference frame.

Implemented as diffusers attention processors on the `attn1` of every spatial transformer block (the motion modules'
temporal attentions are left alone), matched by module name, which is the same in UNet2DConditionModel and
UNetMotionModel. The writer stores each attn1 input of the ReferenceNet; the reader concatenates the stored tokens
of its own reference to the keys and values. Rows can be told to ignore the reference: classifier-free guidance's
unconditional pass drops reference attention, as in training's condition dropout.
"""

from __future__ import annotations

import torch
from diffusers.models.attention_processor import AttnProcessor2_0


def spatial_self_attention_names(unet: torch.nn.Module) -> list[str]:
    """Names of the spatial transformer blocks' self-attentions (not the motion modules' temporal ones)."""
    return [name for name, _ in unet.named_modules()
            if name.endswith(".attn1") and ".attentions." in name and ".motion_modules." not in name]


class ReferenceBank:
    """The reference tokens per attention name, and which denoising rows may read them."""

    def __init__(self):
        self.tokens: dict[str, torch.Tensor] = {}
        self.reading_rows: torch.Tensor | None = None  # (rows,) bool; None: every row reads the reference

    def clear(self):
        self.tokens.clear()
        self.reading_rows = None


class _Writer:
    def __init__(self, bank: ReferenceBank, name: str):
        self.bank, self.name, self.plain = bank, name, AttnProcessor2_0()

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None, **kwargs):
        self.bank.tokens[self.name] = hidden_states
        return self.plain(attn, hidden_states, encoder_hidden_states, attention_mask, temb)


class _Reader:
    def __init__(self, bank: ReferenceBank, name: str):
        self.bank, self.name, self.plain = bank, name, AttnProcessor2_0()

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None, **kwargs):
        reference = self.bank.tokens.get(self.name)
        if reference is None:
            return self.plain(attn, hidden_states, encoder_hidden_states, attention_mask, temb)
        rows = hidden_states.shape[0]
        if rows % reference.shape[0]:
            raise ValueError(f"{rows} denoising rows cannot share {reference.shape[0]} reference images evenly")
        reference = reference.repeat_interleave(rows // reference.shape[0], dim=0).to(hidden_states.dtype)
        reading = self.bank.reading_rows
        if reading is None or bool(reading.all()):
            context = torch.cat([hidden_states, reference], dim=1)
            return self.plain(attn, hidden_states, context, attention_mask, temb)
        out = torch.empty_like(hidden_states)  # attn1 keeps the width of its input
        skipping = ~reading
        if skipping.any():  # rows that ignore the reference: plain self-attention
            out[skipping] = self.plain(attn, hidden_states[skipping])
        if reading.any():
            context = torch.cat([hidden_states[reading], reference[reading]], dim=1)
            out[reading] = self.plain(attn, hidden_states[reading], context)
        return out


def attach(reference_unet: torch.nn.Module, denoising_unet: torch.nn.Module) -> ReferenceBank:
    """Install writer processors on the ReferenceNet and reader processors on the denoising UNet; returns their
    shared bank. Each spatial self-attention of the denoising UNet must have its match in the ReferenceNet."""
    bank = ReferenceBank()
    writers = set(spatial_self_attention_names(reference_unet))
    readers = spatial_self_attention_names(denoising_unet)
    unmatched = [name for name in readers if name not in writers]
    if unmatched:
        raise ValueError(f"the ReferenceNet has no self-attention matching {unmatched[:3]} of the denoising UNet: "
                         "they must share the SD-1.5 block layout")
    modules = dict(reference_unet.named_modules())
    for name in writers:
        modules[name].set_processor(_Writer(bank, name))
    modules = dict(denoising_unet.named_modules())
    for name in readers:
        modules[name].set_processor(_Reader(bank, name))
    return bank


class _AllWritten(Exception):
    """Raised once every writer has stored its tokens: what the ReferenceNet would compute next is never read."""


def write_reference(reference_unet: torch.nn.Module, latent: torch.Tensor, context: torch.Tensor,
                    pose_features: torch.Tensor) -> None:
    """Run the ReferenceNet at timestep 0 on the reference latent (batch, channels, h, w), the pose adaptor's
    features added right after its conv_in: its writer processors fill the bank. It stops as soon as the last of them
    has: the rest of its last transformer block, conv_norm_out and conv_out are never read, so never run."""
    writers = [name.removesuffix(".processor") for name, processor in reference_unet.attn_processors.items()
               if isinstance(processor, _Writer)]
    written: set[str] = set()

    def stop_when_all_written(name):
        def hook(module, args, output):
            written.add(name)
            if len(written) == len(writers):
                raise _AllWritten
        return hook

    modules = dict(reference_unet.named_modules())
    # hooks of this call only: gradient checkpointing re-runs blocks during backward, when they are gone
    hooks = [modules[name].register_forward_hook(stop_when_all_written(name)) for name in writers]
    hooks.append(reference_unet.conv_in.register_forward_hook(
        lambda module, args, out: out + pose_features.to(out.dtype)))
    try:
        reference_unet(latent, 0, encoder_hidden_states=context)
    except _AllWritten:
        pass
    finally:
        for hook in hooks:
            hook.remove()
