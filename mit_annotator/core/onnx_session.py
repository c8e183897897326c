"""ONNX Runtime sessions with the execution provider chosen at run time, and one log line saying which."""

from __future__ import annotations

import logging
import os
from pathlib import Path

log = logging.getLogger("mit_annotator")

DEVICES = ("auto", "cpu", "cuda", "tensorrt")


def choose_providers(device: str = "auto") -> list[str]:
    """Providers in order of preference for `device`; CPU is always the last resort."""
    import onnxruntime as ort

    if device not in DEVICES:
        raise ValueError(f"device must be one of {', '.join(DEVICES)}, got {device!r}")
    available = ort.get_available_providers()
    wanted = {"auto": ["CUDAExecutionProvider"], "cpu": [], "cuda": ["CUDAExecutionProvider"],
              "tensorrt": ["TensorrtExecutionProvider", "CUDAExecutionProvider"]}[device]
    chosen = [p for p in wanted if p in available]
    if device in ("cuda", "tensorrt") and not chosen:
        raise RuntimeError(f"device {device!r} asked for, but this onnxruntime offers only {available} "
                           "(install onnxruntime-gpu in place of onnxruntime)")
    return chosen + ["CPUExecutionProvider"]


def open_session(path: str | os.PathLike | bytes, device: str = "auto", name: str | None = None,
                 threads: int | None = None):
    """An InferenceSession on the best provider for `device`, from a file or a serialised model (`name` then names
    it in the log), on `threads` CPU threads (default: ONNX Runtime's, one per core); a bad file gives an error
    naming it."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    # The annotator alternates between sessions (detector, pose, ...): threads that spin after a run would only
    # take the cores from the next session.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if threads:
        options.intra_op_num_threads = threads
    try:
        session = ort.InferenceSession(path if isinstance(path, bytes) else str(path), sess_options=options,
                                       providers=choose_providers(device))
    except Exception as error:  # onnxruntime raises its own types for unreadable or invalid models
        raise ValueError(f"{name or path}: not a usable ONNX model ({str(error).splitlines()[0]})") from None
    log.info("[mit_annotator] %s runs on %s", name or Path(path).name, session.get_providers()[0])
    return session
