"""CovOG's sampler: where the time goes, and (on a GPU, at the published size) seconds and peak memory per window.

    .venv/bin/python benchmarks/bench_covog.py                       # tiny configs, CPU: overhead share
    python benchmarks/bench_covog.py --size sd15 --device cuda       # full SD-1.5 size, random weights

The overhead share is the sampler's time outside the networks' forward passes (denoising UNet, ReferenceNet, VAE,
CLIP, pose encoders, audio projection): scheduler steps, window bookkeeping, latent copies. Each network call is
timed in place (with a CUDA synchronise around it on a GPU) and the rest of `generate` is the overhead.
"""

from __future__ import annotations

import argparse
import time
from contextlib import contextmanager

import torch

import covog.pipeline.sampler as sampler
from covog.models.model import DTYPES, CovOGModel, pick_dtype
from covog.pipeline.sampler import Conditions, SamplerSettings, generate


def random_conditions(model: CovOGModel, frames: int, people: int, size: tuple[int, int]) -> Conditions:
    width, height = size
    g = torch.Generator().manual_seed(0)
    c = model.audio_driver.config
    masks = {f: (torch.rand(frames, people, height // 8 // f, width // 8 // f, generator=g) > 0.7).float()
             for f in (1, 2, 4, 8)}
    return Conditions(
        reference=torch.rand(3, height, width, generator=g),
        reference_poses=torch.rand(people, 3, height, width, generator=g),
        poses=(torch.rand(frames, people, 3, height, width, generator=g) * 255).to(torch.uint8),
        audio_features=torch.randn(frames, c.feature_layers, c.feature_dim, generator=g),
        speaking_scores=torch.randn(frames, people, generator=g) * 3, face_masks=masks)


class NetworkClock:
    """Adds up the time spent inside the networks' calls during a run."""

    def __init__(self, device: torch.device):
        self.device, self.seconds, self.calls = device, 0.0, 0

    def sync(self):
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def wrap(self, function):
        def timed(*args, **kwargs):
            self.sync()
            start = time.perf_counter()
            out = function(*args, **kwargs)
            self.sync()
            self.seconds += time.perf_counter() - start
            self.calls += 1
            return out
        return timed

    @contextmanager
    def installed(self, model: CovOGModel):
        """Time the sampler's network calls: module-level functions it calls, and the modules' forwards."""
        names = ("denoise", "encode_frames", "decode_latents", "clip_image_embedding")
        originals = {name: getattr(sampler, name) for name in names}
        modules = [model.reference_unet, model.pose_guider, model.pose_adaptor]
        forwards = [m.forward for m in modules]
        project = model.audio_driver.project
        try:
            for name in names:
                setattr(sampler, name, self.wrap(originals[name]))
            for module, forward in zip(modules, forwards):
                module.forward = self.wrap(forward)
            model.audio_driver.project = self.wrap(project)
            yield self
        finally:
            for name, original in originals.items():
                setattr(sampler, name, original)
            for module in modules:
                del module.forward
            del model.audio_driver.project


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", choices=["tiny", "sd15"], default="tiny")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", choices=["auto", *DTYPES], default="auto",
                        help="auto: fp16 on a GPU, fp32 on the CPU")
    parser.add_argument("--frames", type=int, default=25, help="25: one window")
    parser.add_argument("--people", type=int, default=2)
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=384)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--cfg", type=float, default=3.5)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    device = torch.device(args.device)
    dtype = pick_dtype(args.dtype, device)
    model = CovOGModel.random(args.size).to(device, dtype)
    conditions = random_conditions(model, args.frames, args.people, (args.width, args.height))
    settings = SamplerSettings(steps=args.steps, guidance=args.cfg)
    generate(model, conditions, SamplerSettings(steps=1, guidance=args.cfg))  # warm up

    print("| size | device | dtype | frames | people | WxH | steps | cfg | run | seconds | in networks | "
          "overhead share | peak memory |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for run in range(1, args.runs + 1):
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        clock = NetworkClock(device)
        with clock.installed(model):
            clock.sync()
            start = time.perf_counter()
            generate(model, conditions, settings)
            clock.sync()
            total = time.perf_counter() - start
        peak = (f"{torch.cuda.max_memory_allocated(device) / 2 ** 30:.2f} GiB" if device.type == "cuda" else "-")
        print(f"| {args.size} | {device} | {str(dtype).removeprefix('torch.')} | {args.frames} | {args.people} | "
              f"{args.width}x{args.height} | {args.steps} | {args.cfg} | {run} | {total:.2f} | "
              f"{clock.seconds:.2f} ({clock.calls} calls) | {(total - clock.seconds) / total:.1%} | {peak} |")


if __name__ == "__main__":
    main()
