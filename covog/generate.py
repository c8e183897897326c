"""python -m covog.generate: a conversation video from one reference frame, the people's tracked poses and the audio.

    python -m covog.generate --model DIR --reference IMAGE --poses TRACKS.json \\
        (--audio AUDIO | --person-audio A.wav B.wav ...) [--assignment ASSIGNMENT.json] --out OUT.mp4

TRACKS.json comes from `python -m mit_annotator poses`, ASSIGNMENT.json from `python -m mit_annotator assign`.
Who speaks when: the assignment's scores; with one audio file per person (in the tracks' order), each file's own
speech; with one person, the audio's speech. The audio is muxed into the output.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

from covog.models.encoders import AUDIO_RATE  # the driver's audio features are read at wav2vec2's rate
from covog.models.model import DTYPES, CovOGModel, ModelFolderError, pick_dtype
from covog.pipeline.conditioning import build_conditions
from covog.pipeline.sampler import SIZE_MULTIPLE, SamplerSettings, generate
from mit_annotator.core import media
from mit_annotator.core.documents import FormatError
from mit_annotator.core.files import output_file
from mit_annotator.core.progress import Cancelled, tqdm_progress
from mit_annotator.core.records import SpeakingActivity, VideoTracks

OUTPUT_AUDIO_RATE = 44100


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m covog.generate", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="CovOG model folder (python -m covog.convert writes one)")
    parser.add_argument("--reference", required=True, help="image showing every person (PNG/JPEG)")
    parser.add_argument("--poses", required=True, help="tracks with poses (mit_annotator poses)")
    audio = parser.add_mutually_exclusive_group(required=True)
    audio.add_argument("--audio", help="the conversation's mixed audio (any media file)")
    audio.add_argument("--person-audio", nargs="+", help="one audio file per person, in the tracks' order")
    parser.add_argument("--assignment", help="speaking scores per person (mit_annotator assign)")
    parser.add_argument("--out", required=True, type=output_file, help="output mp4")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--cfg", type=float, default=3.5, help="guidance on appearance")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--window", type=int, default=25, help="frames per window")
    parser.add_argument("--overlap", type=int, default=10, help="frames shared by consecutive windows")
    parser.add_argument("--width", type=int, default=640, help="multiple of 64 (the paper: 640)")
    parser.add_argument("--height", type=int, default=384, help="multiple of 64 (the paper: 384)")
    parser.add_argument("--reference-frame", type=int, default=0, help="the pose frame the reference image shows")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, ...")
    parser.add_argument("--dtype", choices=["auto", *DTYPES], default="auto",
                        help="auto: fp16 on a GPU, fp32 on the CPU")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        out = run(args)
    except (ValueError, FileNotFoundError, media.MediaError, FormatError, ModelFolderError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except (Cancelled, KeyboardInterrupt):
        print("cancelled: no video written", file=sys.stderr)
        return 130
    print(f"wrote {out}")
    return 0


def run(args: argparse.Namespace) -> Path:
    size = (args.width, args.height)
    settings = SamplerSettings(steps=args.steps, guidance=args.cfg, window=args.window, overlap=args.overlap,
                               seed=args.seed)
    settings.check()
    if args.width % SIZE_MULTIPLE or args.height % SIZE_MULTIPLE or min(size) <= 0:
        raise ValueError(f"--width {args.width} --height {args.height}: both must be positive multiples of "
                         f"{SIZE_MULTIPLE}")
    tracks = VideoTracks.load(args.poses)
    if not tracks.tracks:
        raise ValueError(f"{args.poses} has no tracked person")
    reference = read_reference(args.reference, size)
    if args.person_audio and len(args.person_audio) != len(tracks.tracks):
        raise ValueError(f"{len(args.person_audio)} --person-audio files for {len(tracks.tracks)} people: give one "
                         "per person, in the tracks' order")
    paths = args.person_audio or [args.audio]
    audio = [media.read_audio(path, AUDIO_RATE) for path in paths]
    check_audio_length(paths, audio, tracks)
    speaking = (SpeakingActivity.load(args.assignment) if args.assignment
                else speaking_from_audio(audio, tracks, per_person=args.person_audio is not None))
    device = pick_device(args.device)
    model = CovOGModel.load(args.model, device, pick_dtype(args.dtype, device))
    conditions = build_conditions(model, tracks, reference, audio if args.person_audio else audio[0], speaking, size,
                                  reference_frame=args.reference_frame)
    from tqdm.auto import tqdm

    with tqdm(total=1, desc="generating", unit="step") as bar:
        video = generate(model, conditions, settings, progress=tqdm_progress(bar))
    frames = (video.permute(0, 2, 3, 1).numpy() * 255).round().astype(np.uint8)
    mixed = mixed_output_audio(paths, tracks)
    return media.write_video(args.out, frames, tracks.fps, audio=mixed, sample_rate=OUTPUT_AUDIO_RATE)


def read_reference(path: str, size: tuple[int, int]) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            image = image.convert("RGB")
            if abs(image.width / image.height - size[0] / size[1]) > 0.02:
                print(f"warning: the reference image is {image.width}x{image.height}; it is stretched to "
                      f"{size[0]}x{size[1]}", file=sys.stderr)
            return np.array(image.resize(size, Image.Resampling.BICUBIC))
    except FileNotFoundError:
        raise FileNotFoundError(f"reference image not found: {path}") from None
    except (UnidentifiedImageError, OSError) as error:
        raise ValueError(f"reference image {path} cannot be read as an image: {error}") from None


def check_audio_length(paths: list[str], audio: list[np.ndarray], tracks: VideoTracks):
    """The video lasts as long as the poses: audio that runs on past them would be cut, so it is refused; poses
    that run on more than a second past every audio track would animate silence (and a crafted frame count would
    plan unbounded work), so they are refused too."""
    pose_seconds = tracks.num_frames / tracks.fps
    for path, samples in zip(paths, audio):
        seconds = len(samples) / AUDIO_RATE
        if seconds > pose_seconds + 1 / tracks.fps:
            raise ValueError(f"the pose sequence ({tracks.num_frames} frames, {pose_seconds:.2f} s) is shorter than "
                             f"the audio {path} ({seconds:.2f} s): give poses for the whole audio or trim it")
    longest = max(len(samples) for samples in audio) / AUDIO_RATE
    if pose_seconds > longest + 1.0:
        raise ValueError(f"the pose sequence ({tracks.num_frames} frames, {pose_seconds:.2f} s) runs past the audio "
                         f"({longest:.2f} s): trim the poses to the audio")


def speaking_from_audio(audio: list[np.ndarray], tracks: VideoTracks, per_person: bool) -> SpeakingActivity:
    """Scores from where each person's own audio has speech (or, with one person, where the audio has speech)."""
    if not per_person and len(tracks.tracks) > 1:
        raise ValueError(f"{len(tracks.tracks)} people share one audio track: say who speaks when with "
                         "--assignment (python -m mit_annotator assign) or give --person-audio, one file each")
    from mit_annotator.speakers.assignment import speaking_in_order
    from mit_annotator.speakers.who_speaks import voice_tracks_diarization

    voices = [f"person_{k}" for k in range(len(audio))]
    diarization = voice_tracks_diarization(list(zip(voices, audio)))
    return speaking_in_order(diarization, voices, [t.track_id for t in tracks.tracks], tracks.fps, tracks.num_frames)


def mixed_output_audio(paths: list[str], tracks: VideoTracks) -> np.ndarray:
    """The audio to mux: the file, or the people's files summed, cut or padded to the video's length."""
    length = int(round(tracks.num_frames / tracks.fps * OUTPUT_AUDIO_RATE))
    mixed = np.zeros(length, np.float32)
    for path in paths:
        samples = media.read_audio(path, OUTPUT_AUDIO_RATE)[:length]
        mixed[:len(samples)] += samples
    peak = np.abs(mixed).max(initial=0.0)
    return mixed / peak if peak > 1 else mixed


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device {name}: no CUDA GPU is available here")
    return device


if __name__ == "__main__":
    sys.exit(main())
