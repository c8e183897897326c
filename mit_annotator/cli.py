"""Command line: `python -m mit_annotator COMMAND ...`. Each command is a thin layer over a library function."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mit_annotator", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    _add_make_conversation(commands)
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except (ValueError, FileNotFoundError) as error:  # bad input: one clear line, no traceback
        print(f"error: {error}", file=sys.stderr)
        return 2


def _add_make_conversation(commands) -> None:
    p = commands.add_parser("make-conversation", help="build a synthetic conversation with exact ground truth",
                            description="Build a video of 2-4 drawn people talking in turns with real speech, "
                                        "with its ground truth (tracks, speaking scores, RTTM) and a preview.")
    p.add_argument("--out", required=True, type=Path, help="folder to write into")
    p.add_argument("--people", type=int, default=2, help="people on screen, 2-4 (default 2)")
    p.add_argument("--seconds", type=float, default=8.0, help="length (default 8)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--fps", type=float, default=25.0)
    p.add_argument("--width", type=int, default=640)
    p.add_argument("--height", type=int, default=384)
    p.add_argument("--overlap", type=float, default=0.0, metavar="P",
                   help="chance that a turn starts before the previous one ends (default 0)")
    p.add_argument("--offscreen", action="store_true", help="add a voice with no one on screen")
    p.add_argument("--speech", default=None, metavar="DIR|espeak",
                   help="a LibriSpeech-style folder, or 'espeak' (default: $MIT_SPEECH_DIR, the shared sample "
                        "beside a checkout, else espeak-ng)")
    p.set_defaults(run=_make_conversation)


def _make_conversation(args) -> int:
    import cv2
    from tqdm import tqdm

    from .files import atomic_path
    from .synthetic import ConversationSpec, default_speech_source, synthesize_conversation
    from .synthetic.preview import contact_sheet

    spec = ConversationSpec(num_people=args.people, seconds=args.seconds, seed=args.seed, fps=args.fps,
                            width=args.width, height=args.height, overlap_probability=args.overlap,
                            offscreen_voice=args.offscreen)
    conversation = synthesize_conversation(spec, default_speech_source(args.speech))
    with tqdm(total=spec.num_frames, unit="frame", desc="rendering") as bar:
        paths = conversation.save(args.out, progress=lambda done, total: bar.update(done - bar.n))
    with atomic_path(args.out / "preview.png") as tmp:
        cv2.imwrite(str(tmp.with_suffix(".png")), cv2.cvtColor(contact_sheet(conversation), cv2.COLOR_RGB2BGR))
    paths["preview"] = args.out / "preview.png"
    print(conversation.describe())
    print(f"files in {args.out}:")
    for name, path in paths.items():
        print(f"  {path.name:<20} {name}")
    return 0
