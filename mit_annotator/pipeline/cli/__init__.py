"""Command line: `python -m mit_annotator COMMAND ...`. Each command is a thin layer over a library function; the
commands come in families (people in videos, who speaks, datasets), a module each."""

from __future__ import annotations

import argparse
import sys

from mit_annotator.pipeline.cli import dataset_commands, speaker_commands, vision_commands


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m mit_annotator", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    for family in (vision_commands, speaker_commands, dataset_commands):
        family.add(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except (ValueError, FileNotFoundError, RuntimeError) as error:  # bad input: one clear line, no traceback
        print(f"error: {error}", file=sys.stderr)
        return 2
    except OSError as error:  # the machine's: a file that cannot be written or read
        print(f"error: {error.filename or ''}: {error.strerror or error}", file=sys.stderr)
        return 2
