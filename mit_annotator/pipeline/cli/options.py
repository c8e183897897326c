"""Options and helpers the command families share."""

from __future__ import annotations

import argparse
from pathlib import Path

from mit_annotator.audio.diarizers import AUTO, DIARIZERS, FALLBACK, diarizer_choices
from mit_annotator.speakers.active_speaker import PRECISIONS
from mit_annotator.speakers.who_speaks import SPEAKER_EVIDENCE


def in_range(kind, low, high, also=()):
    """An argparse type: a number of `kind` in [low, high] (or one of `also`), else one clear line."""
    def parse(text: str):
        value = kind(text)
        if value in also or low <= value <= high:
            return value
        raise argparse.ArgumentTypeError(f"{text} is outside {low:g}..{high:g}")
    parse.__name__ = kind.__name__  # argparse names the type in its "invalid value" message
    return parse


def write_png(path: Path, rgb) -> None:
    """An RGB image as PNG, atomically."""
    import cv2

    from mit_annotator.core.files import atomic_path

    with atomic_path(path) as tmp:
        if not cv2.imwrite(str(tmp), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)):
            raise RuntimeError(f"could not write {path}")


def add_diarizer_options(p, *flags: str) -> None:
    named = "; ".join(f"{name}: the {backend.description}" for name, backend in DIARIZERS.items())
    p.add_argument(*(flags or ("--diarizer",)), dest="diarizer", choices=list(diarizer_choices()), default="auto",
                   help=f"{named}; default auto: {AUTO['diarize']} (diarize) or {AUTO['assign']} (assign, annotate) "
                        f"when the segmentation model's weights are found (see --models), else {FALLBACK}")
    if not any(a.dest == "models" for a in p._actions):
        p.add_argument("--models", type=Path, default=None, help="models directory (a model is also looked for in "
                                                                 "the subfolder it ships in, e.g. lr_asd/)")
    if not any(a.dest == "download" for a in p._actions):
        p.add_argument("--download", action="store_true", help="download missing known models")


def add_speaker_model_options(p, evidence_choice: bool = True) -> None:
    if evidence_choice:
        p.add_argument("--speakers", choices=list(SPEAKER_EVIDENCE), default="auto",
                       help="the visual evidence: asd = the active-speaker model LR-ASD (its weights must be "
                            "found), lips = lip activity; both with the mouth's synchrony with the audio (default "
                            "auto: asd when its weights are found)")
    p.add_argument("--asd-model", default="lr_asd", help="LR-ASD weights: a path or a known name (lr_asd: "
                                                         "AVA-trained, lr_asd_talkset: TalkSet fine-tuned)")
    p.add_argument("--models", type=Path, default=None, help="models directory (YuNet, LR-ASD)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    add_asd_precision(p)


def add_asd_precision(p) -> None:
    p.add_argument("--asd-precision", choices=list(PRECISIONS), default="auto",
                   help="LR-ASD's face encoder on the CPU: int8 (all the scoring 1.6-2.1x as fast as float32, "
                        "scores within 0.01-0.03 of float32's on average on real faces; the released weights only) "
                        "or float32; default auto: int8 where it can run")


def add_poses_option(p) -> None:
    p.add_argument("--poses", type=Path, default=None, help="tracks JSON from `poses` (default: find and track "
                                                             "faces here with YuNet)")


def tracks_or_faces(args):
    """The tracks of `--poses`, else the faces of `args.video` found and tracked with YuNet (from `--models`)."""
    if args.poses:
        return tracks_of(args.video, args.poses)
    from mit_annotator.speakers.who_speaks import track_faces
    from mit_annotator.vision.faces import YuNetFaceDetector

    return track_faces(args.video, YuNetFaceDetector(models_dir=args.models))


def tracks_of(video: Path, path: Path):
    """Tracks read from `path`, checked to be of `video` (its size, no frame past its end)."""
    from mit_annotator.core import media
    from mit_annotator.core.records import VideoTracks, check_same_video

    tracks = VideoTracks.load(path)
    info = media.probe(video)
    check_same_video(tracks, info.width, info.height, info.duration, str(video))
    return tracks
