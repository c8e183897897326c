"""python -m covog.train: train CovOG in the paper's two stages on annotated clip folders.

    python -m covog.train --stage 1 --data CLIPS [CLIPS ...] --model MODEL_DIR --out OUT [--steps N] ...
    accelerate launch -m covog.train --stage 2 ...        (several GPUs)

Stage 1 (single frames) trains the denoising UNet's spatial weights, the ReferenceNet, the pose guider and the pose
adaptor. Stage 2 (clips) trains only the motion modules and the Interactive Audio Driver, which is switched on (the
published code never switched it on). VAE, CLIP and wav2vec2 stay frozen. The objective: v-prediction, Min-SNR
weighting (gamma 5), noise offset 0.05, and 10% condition dropout (no CLIP embedding and no reference attention) for
classifier-free guidance. Every --save-every steps and at the end: OUT/checkpoint-N, a CovOG model folder, and
OUT/state-N, accelerate's training state that --resume continues from, exactly: the weights, the optimizer's state,
the random states, and the data order (`EpochOrder`: a function of the seed and the epoch) at the step where it
stopped. The learning rate is constant (the published configs' 'constant' schedule), so no scheduler state exists.
Ctrl-C stops after the step in progress and saves its state (a second Ctrl-C stops at once).
"""

from __future__ import annotations

import argparse
import dataclasses
import signal
import sys
import threading
from contextlib import contextmanager

from covog.models.model import ModelFolderError
from covog.training import trainer
from covog.training.dataset import MIN_FRAME_GAP
from covog.training.trainer import CONDITION_DROPOUT, LEARNING_RATE, NOISE_OFFSET, SNR_GAMMA, STEPS, TrainSettings
from mit_annotator.core.documents import FormatError
from mit_annotator.core.files import output_folder
from mit_annotator.core.media import MediaError
from mit_annotator.core.progress import Cancelled


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m covog.train", description=__doc__.split("\n\n")[0])
    parser.add_argument("--stage", type=int, choices=[1, 2], required=True)
    parser.add_argument("--data", nargs="+", required=True, help="clip folders, or folders of clip folders")
    parser.add_argument("--model", required=True, help="CovOG model folder to start from")
    parser.add_argument("--out", required=True, type=output_folder,
                        help="folder for checkpoint-N (model folders) and state-N")
    parser.add_argument("--steps", type=int, default=STEPS, help=f"total steps (the paper: {STEPS})")
    parser.add_argument("--lr", type=float, default=LEARNING_RATE, help=f"the paper: {LEARNING_RATE}")
    parser.add_argument("--batch", type=int, default=1, help="clips per GPU (the paper: 1)")
    parser.add_argument("--width", type=int, default=640, help="multiple of 64 (the paper: 640)")
    parser.add_argument("--height", type=int, default=384, help="multiple of 64 (the paper: 384)")
    parser.add_argument("--clip-frames", type=int, default=15, help="stage 2 frames per clip (the paper: 15)")
    parser.add_argument("--min-frame-gap", type=int, default=MIN_FRAME_GAP,
                        help=f"stage 1: least frames between reference and target (default {MIN_FRAME_GAP}; the "
                             "authors' configs: 30, and 50 for CovOG's stage-1 fine-tune)")
    parser.add_argument("--save-every", type=int, default=1000, help="steps between checkpoints")
    parser.add_argument("--log-every", type=int, default=10, help="steps between loss lines")
    parser.add_argument("--resume", action="store_true", help="continue from the latest state-N in --out")
    parser.add_argument("--allow-inexact-resume", action="store_true",
                        help="resume even when the saved random states cannot be restored (the run then differs "
                             "from an uninterrupted one)")
    parser.add_argument("--mixed-precision", choices=["no", "fp16", "bf16"], default="no",
                        help="the paper trained in fp16")
    parser.add_argument("--gradient-checkpointing", action="store_true", help="less memory, slower steps")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=2, help="data loading processes")
    parser.add_argument("--condition-dropout", type=float, default=CONDITION_DROPOUT,
                        help=f"share of samples without appearance conditions (the paper: {CONDITION_DROPOUT})")
    parser.add_argument("--noise-offset", type=float, default=NOISE_OFFSET, help=f"the paper: {NOISE_OFFSET}")
    parser.add_argument("--snr-gamma", type=float, default=SNR_GAMMA, help=f"Min-SNR gamma (the paper: {SNR_GAMMA})")
    parser.add_argument("--no-audio-driver", action="store_true",
                        help="stage 2 without the audio driver (an ablation): the motion modules alone train, and the "
                             "driver stays as it was (an untrained one is skipped)")
    parser.add_argument("--driver-lr", type=float, default=None,
                        help="stage 2: the audio driver's learning rate (default: --lr); its weights are new, the "
                             "motion modules' may be pretrained")
    parser.add_argument("--fused-optimizer", action="store_true",
                        help="torch's fused AdamW (the same steps as the default, to float rounding)")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        run = trainer.prepare(settings_from(args))
    except (ValueError, FileNotFoundError, MediaError, FormatError, ModelFolderError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    with stop_on_interrupt(run.accelerator.num_processes == 1) as progress:
        try:
            folder = trainer.train(run, progress)
        except Cancelled as stopped:
            print(f"{stopped}: its state is saved in {run.settings.out}; the same command with --resume goes on",
                  file=sys.stderr)
            return 130
    run.accelerator.print(f"saved {folder}")
    return 0


@contextmanager
def stop_on_interrupt(enabled: bool):
    """A progress hook for the trainer that cancels after the step in which Ctrl-C came (the trainer then saves that
    step). Only for a single process in the main thread: the processes of a distributed run could see the signal at
    different steps; elsewhere Ctrl-C stops at once, as Python's default."""
    if not enabled or threading.current_thread() is not threading.main_thread():
        yield None
        return
    asked = []

    def ask(_signal, _frame):
        asked.append(True)
        signal.signal(signal.SIGINT, previous)  # a second Ctrl-C stops at once
        print("stopping after this step, which is saved (Ctrl-C again to stop at once)", file=sys.stderr)

    def progress(step: int, steps: int) -> None:
        if asked:
            raise Cancelled(f"stopped at step {step} of {steps}")

    previous = signal.signal(signal.SIGINT, ask)
    try:
        yield progress
    finally:
        signal.signal(signal.SIGINT, previous)


def settings_from(args: argparse.Namespace) -> TrainSettings:
    return TrainSettings(**{f.name: getattr(args, f.name) for f in dataclasses.fields(TrainSettings)})


if __name__ == "__main__":
    sys.exit(main())
