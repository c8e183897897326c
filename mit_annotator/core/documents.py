"""Versioned JSON documents: {"format": NAME, "version": N, ...}, written whole (a reader never finds a partial file)
and read back with a FormatError naming the file when they are not the document expected; their arrays are
checked on load and rounded on save."""

from __future__ import annotations

import json
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from mit_annotator.core.files import atomic_path

FORMAT_VERSION = 1


class FormatError(ValueError):
    """A file or dict is not the document it should be (wrong format name, newer version, bad field)."""



def save_json(data: dict[str, Any], path: str | os.PathLike) -> Path:
    """Write JSON atomically: a reader never sees a half-written file under the final name."""
    return write_text_atomic(path, json.dumps(data, separators=(",", ":"), allow_nan=False))


def load_json(path: str | os.PathLike) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: {'is a folder, not a JSON file' if path.is_dir() else 'no such file'}")
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise FormatError(f"{path}: not valid JSON ({error})") from None


def read_document(path: str | os.PathLike, format_name: str) -> dict[str, Any]:
    """A JSON document of `format_name` (a dict with its format and a version this code reads), or a FormatError
    naming the file."""
    return open_envelope(load_json(path), format_name, str(path))


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def envelope(format_name: str, body: dict[str, Any]) -> dict[str, Any]:
    return {"format": format_name, "version": FORMAT_VERSION, **body}


def open_envelope(data: Any, format_name: str, origin: str) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise FormatError(f"{origin}: expected a JSON object holding {format_name!r}, got {type(data).__name__}")
    found = data.get("format")
    if found != format_name:
        raise FormatError(f"{origin}: expected format {format_name!r}, found {found!r}")
    version = data.get("version")
    if not isinstance(version, int) or version < 1:
        raise FormatError(f"{origin}: missing or bad version {version!r}")
    if version > FORMAT_VERSION:
        raise FormatError(f"{origin}: version {version} is newer than this mit_annotator reads "
                          f"({FORMAT_VERSION}); update the pack")
    return data


@contextmanager
def field_errors(origin: str):
    """Turn a missing key or a malformed value while reading a document into a FormatError naming its origin."""
    try:
        yield
    except FormatError:
        raise
    except (KeyError, TypeError, ValueError) as error:
        raise FormatError(f"{origin}: malformed document ({type(error).__name__}: {error})") from error


# Arrays in documents: checked on load, rounded on save

def checked_array(value: Any, shape: tuple[int, ...], name: str, finite: bool = False) -> np.ndarray:
    """`value` as float32 of `shape`; never inf, and NaN (an unknown value) only where `finite` is not asked."""
    array = np.asarray(value, dtype=np.float32)
    if array.shape != shape:
        raise ValueError(f"{name} must have shape {shape}, got {array.shape}")
    if np.isinf(array).any() or (finite and np.isnan(array).any()):
        raise ValueError(f"{name} hold values that are not finite numbers")
    return array


def optional_checked_array(value: Any, shape: tuple[int, ...], name: str) -> np.ndarray | None:
    return None if value is None else checked_array(value, shape, name)


def json_numbers(array: np.ndarray, decimals: int) -> list:
    """Nested lists for JSON; NaN (an unknown value) becomes null."""
    rounded = np.round(np.asarray(array, dtype=np.float64), decimals)
    return np.where(np.isnan(rounded), None, rounded).tolist() if np.isnan(rounded).any() else rounded.tolist()


def array_from_json(value: Any, shape: tuple[int, ...]) -> np.ndarray | None:
    if value is None:
        return None
    array = np.array(value, dtype=np.float32)  # null -> nan
    return array.reshape(shape) if array.size == 0 else array
