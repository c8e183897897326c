"""Convert published checkpoints into a CovOG model folder (safetensors + JSON per component).

    python -m covog.convert SOURCE [SOURCE ...] --out DIR [--base SD15_DIFFUSERS_DIR] [--vae DIR]
        [--audio-encoder DIR] [--image-encoder DIR] [--size sd15|tiny] [--allow-random COMPONENT ...] [--overwrite]

A SOURCE is a Moore-AnimateAnyone release folder, a CovOG training output folder (the latest step of each file is
used), an accelerate checkpoint-N folder or its pytorch_model.bin, one checkpoint file (reference_unet.pth,
denoising_unet-N.pth, motion_module.pth, mm_sd_v15_v2.ckpt, ...), a diffusers SD-1.5 folder, or one model's folder
(a VAE such as sd-vae-ft-mse, wav2vec2, CLIP vision, a ControlNet for the pose guider). Later sources
replace the keys of earlier ones. See covog/loaders/checkpoints.py for the layouts.
"""

from __future__ import annotations

import argparse
import sys


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m covog.convert", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("sources", nargs="+", metavar="SOURCE", help="checkpoint files or folders, in order")
    parser.add_argument("--out", required=True, help="the model folder to write (new or empty)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace the CovOG model folder at --out (any other non-empty folder is refused)")
    parser.add_argument("--base", help="SD-1.5 diffusers folder: the VAE, the image encoder (sd-image-variations) "
                                       "and the reference UNet's 4 output keys")
    parser.add_argument("--vae", help="VAE folder (diffusers: config.json + diffusion_pytorch_model.safetensors or "
                                      ".bin), e.g. stabilityai/sd-vae-ft-mse as the paper; replaces --base's vae/")
    parser.add_argument("--audio-encoder", help="wav2vec2 folder (transformers, safetensors)")
    parser.add_argument("--image-encoder", help="CLIP vision folder (transformers, safetensors)")
    parser.add_argument("--size", choices=("sd15", "tiny"), default="sd15",
                        help="model size: sd15 (the published model); tiny exists for tests")
    parser.add_argument("--allow-random", nargs="+", action="extend", default=[], metavar="COMPONENT",
                        help="components whose missing weights keep a fresh init (vae, image_encoder, "
                             "audio_encoder, reference_unet, denoising_unet, pose_guider, pose_adaptor, audio_driver)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from covog.loaders.checkpoint_files import CheckpointError
    from covog.loaders.checkpoints import convert  # torch and diffusers load slowly: not for --help
    from covog.models.model import ModelFolderError, check_model_folder_target

    try:
        check_model_folder_target(args.out, args.overwrite)  # before minutes of conversion
        model, reports = convert(args.sources, base=args.base, vae=args.vae, audio_encoder=args.audio_encoder,
                                 image_encoder=args.image_encoder, size=args.size, allow_random=args.allow_random)
        for report in reports:
            print(report.summary())
        folder = model.save(args.out, overwrite=args.overwrite)
    except (CheckpointError, ModelFolderError, OSError) as error:  # bad input: one clear line, no traceback
        print(f"error: {' '.join(str(error).split())}", file=sys.stderr)
        return 2
    print(f"wrote {folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
