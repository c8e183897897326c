"""Writing files so that a reader never finds a partial one under the final name."""

from __future__ import annotations

import argparse
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success it becomes `path`, on failure it is removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".partial{path.suffix}", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~current_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def current_umask() -> int:
    """The process's umask (read by setting it and putting it back: there is no other way to read it)."""
    umask = os.umask(0)
    os.umask(umask)
    return umask


def output_file(text: str) -> Path:
    """An argparse type for a file to write: refused before any work when it cannot be one (a folder, or inside a
    file, or where nothing may be written)."""
    path = Path(text)
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{path} is a folder: name the file to write")
    _check_writable_under(path.parent, path)
    return path


def output_folder(text: str) -> Path:
    """An argparse type for a folder to write into (made if missing); refused before any work when it is a file or
    lies where nothing may be written."""
    path = Path(text)
    if path.exists() and not path.is_dir():
        raise argparse.ArgumentTypeError(f"{path} is a file: name a folder to write into")
    _check_writable_under(path if path.is_dir() else path.parent, path)
    return path


def _check_writable_under(folder: Path, path: Path) -> None:
    existing = folder.absolute()
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise argparse.ArgumentTypeError(f"{path}: {existing} is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise argparse.ArgumentTypeError(f"{path}: nothing can be written in {existing} (read-only or no permission)")
