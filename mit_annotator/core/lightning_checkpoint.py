"""Read a PyTorch (Lightning) checkpoint's tensors and plain settings without running any of its pickled code.

A Lightning checkpoint pickles its trainer's and framework's objects (pyannote's task specifications, omegaconf
containers) around a plain `state_dict`, so `torch.load(weights_only=True)` refuses it, and a full `torch.load` would
import and run whatever classes the file names. Here the pickle is read with an unpickler that calls nothing but a
short list of known-harmless constructors (dict, list, OrderedDict, and the rebuild of a tensor from its bytes, done
in numpy); every other class the file names becomes an inert `Foreign` record of its name, arguments and state.
"""

from __future__ import annotations

import collections
import io
import os
import pickle
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np


class CheckpointError(ValueError):
    """A checkpoint file that cannot be read as one."""


@dataclass
class Foreign:
    """An object of a class the checkpoint names, never instantiated: its name, arguments and pickled state."""

    name: str
    args: tuple = ()
    state: Any = None
    items: list = field(default_factory=list)  # appended or set items, for list- or dict-like classes

    def plain(self) -> Any:
        """Its content as plain data: the state (or the arguments) with foreign objects inside made plain too."""
        content = self.state if self.state is not None else (self.args[0] if len(self.args) == 1 else self.args)
        return plain(content)


def plain(value: Any) -> Any:
    """`value` with every Foreign record replaced by its plain content and arrays left as they are."""
    if isinstance(value, Foreign):
        return value.plain()
    if isinstance(value, dict):
        return {plain(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(plain(v) for v in value)
    return value


_STORAGE_DTYPES = {"FloatStorage": np.float32, "DoubleStorage": np.float64, "HalfStorage": np.float16,
                   "BFloat16Storage": None, "LongStorage": np.int64, "IntStorage": np.int32,
                   "ShortStorage": np.int16, "CharStorage": np.int8, "ByteStorage": np.uint8, "BoolStorage": np.bool_}
_HARMLESS = {("collections", "OrderedDict"): collections.OrderedDict, ("builtins", "dict"): dict,
             ("__builtin__", "dict"): dict, ("builtins", "list"): list, ("__builtin__", "list"): list,
             ("builtins", "set"): set, ("builtins", "tuple"): tuple, ("__builtin__", "long"): int,
             ("builtins", "int"): int, ("builtins", "float"): float, ("builtins", "complex"): complex}


def _rebuild_tensor(storage: np.ndarray, offset: int, size, stride, *_ignored) -> np.ndarray:
    if any(s < 0 for s in stride) or offset < 0:
        raise CheckpointError("a tensor with a negative offset or stride")
    needed = offset + sum((n - 1) * s for n, s in zip(size, stride)) + 1 if all(size) else 0
    if needed > len(storage):
        raise CheckpointError(f"a tensor reaches past its storage ({needed} > {len(storage)} values)")
    view = np.lib.stride_tricks.as_strided(storage[offset:], tuple(size),
                                           tuple(s * storage.itemsize for s in stride), writeable=False)
    return np.array(view)


class _InertUnpickler(pickle.Unpickler):
    def __init__(self, data: bytes, archive: zipfile.ZipFile, prefix: str, origin: str):
        super().__init__(io.BytesIO(data))
        self.archive, self.prefix, self.origin = archive, prefix, origin
        self._foreign: dict[tuple[str, str], type] = {}

    def find_class(self, module: str, name: str):
        if (module, name) in _HARMLESS:
            return _HARMLESS[(module, name)]
        if module == "torch._utils" and name == "_rebuild_tensor_v2":
            return _rebuild_tensor
        if module == "torch" and name in _STORAGE_DTYPES:
            return name
        return self._foreign.setdefault((module, name), _inert_class(f"{module}.{name}"))

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage"):
            raise CheckpointError(f"{self.origin}: an unknown persistent object {str(pid)[:60]}")
        storage_type, key = pid[1], pid[2]
        dtype = _STORAGE_DTYPES.get(storage_type) if isinstance(storage_type, str) else None
        if dtype is None:
            raise CheckpointError(f"{self.origin}: tensors stored as {storage_type} are not supported")
        try:
            data = self.archive.read(f"{self.prefix}data/{key}")
        except KeyError:
            raise CheckpointError(f"{self.origin}: a tensor's data ({key}) is missing from the file") from None
        return np.frombuffer(data, dtype=dtype)


def _inert_class(qualified_name: str) -> type:
    """A stand-in for a class the checkpoint names: building it records what it was given and runs nothing."""

    def new(cls, *args, **kwargs):
        return Foreign(qualified_name, args)

    return type(qualified_name.rsplit(".", 1)[-1], (), {"__new__": new})


def _setstate(self: Foreign, state) -> None:
    self.state = state


def _append(self: Foreign, item) -> None:
    self.items.append(item)


def _setitem(self: Foreign, key, value) -> None:
    self.items.append((key, value))


Foreign.__setstate__ = _setstate
Foreign.append = _append
Foreign.__setitem__ = _setitem


def read_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """The checkpoint's top-level dictionary: tensors as numpy arrays, foreign objects as `Foreign` records."""
    path = Path(path)
    if path.is_dir():
        raise CheckpointError(f"{path}: is a folder, not a checkpoint file")
    try:
        archive = zipfile.ZipFile(path)
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no such file") from None
    except (zipfile.BadZipFile, OSError) as error:
        raise CheckpointError(f"{path}: not a PyTorch checkpoint (a zip archive was expected: {error})") from None
    with archive:
        pickles = [n for n in archive.namelist() if n.endswith("/data.pkl") or n == "data.pkl"]
        if len(pickles) != 1:
            raise CheckpointError(f"{path}: not a PyTorch checkpoint (no single data.pkl inside)")
        prefix = pickles[0][:-len("data.pkl")]
        try:
            content = _InertUnpickler(archive.read(pickles[0]), archive, prefix, str(path)).load()
        except CheckpointError:
            raise
        except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError,
                zipfile.BadZipFile) as error:
            raise CheckpointError(f"{path}: damaged checkpoint ({type(error).__name__}: {error})") from None
    if not isinstance(content, dict):
        raise CheckpointError(f"{path}: the checkpoint holds a {type(content).__name__}, not a dictionary")
    return content


def state_dict(content: dict[str, Any], origin: str) -> dict[str, np.ndarray]:
    """The checkpoint's weights: its `state_dict` of arrays."""
    weights = content.get("state_dict")
    if not isinstance(weights, dict) or not all(isinstance(v, np.ndarray) for v in weights.values()):
        raise CheckpointError(f"{origin}: no state_dict of tensors in the checkpoint")
    return dict(weights)
