"""The diarizers, by name (DIARIZERS): each makes a `SpeakerDiarizer`, called on 16 kHz mono samples with a
DiarizationConfig, a uri and an optional progress hook, returning a Diarization. A new backend is one module with a
`make(options)` function and one line in DIARIZERS. docs/who-speaks.md describes each one and what "auto" picks.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from mit_annotator.core.backends import Backend
from mit_annotator.core.records import Diarization

log = logging.getLogger("mit_annotator")

SEGMENTATION_MODEL = "pyannote_segmentation"


class SpeakerDiarizer(Protocol):
    def __call__(self, samples: np.ndarray, config=None, uri: str = "recording",
                 progress: Callable[[int, int], None] | None = None) -> Diarization:
        """`samples`: 16 kHz mono float32; `config`: a DiarizationConfig (speaker counts); `progress(done, total)`
        between stages, which may raise to stop (ComfyUI's Cancel)."""


@dataclass(frozen=True)
class BackendOptions:
    models_dir: str | os.PathLike | None = None
    device: str = "auto"  # "auto", "cpu" or "cuda"
    download: bool = False  # fetch missing weights from their hub (never implied)
    segmentation_model: str | os.PathLike = SEGMENTATION_MODEL  # a path, a file in the models folders, a known name


DIARIZERS: dict[str, Backend] = {
    "overlap": Backend("mit_annotator.audio.overlap_diarization:make_network_identity",
                       "overlap-aware diarizer (pyannote's segmentation model; voices told apart by its local speakers "
                       "and their d-vectors)"),
    "overlap-embeddings": Backend("mit_annotator.audio.overlap_diarization:make_embeddings_identity",
                                  "overlap-aware diarizer (pyannote's segmentation model for overlaps; voices told "
                                  "apart by the offline d-vector clustering)"),
    "offline": Backend("mit_annotator.audio.diarization:make_offline",
                       "offline diarizer (silero-vad + resemblyzer, one voice per instant)"),
    "pyannote": Backend("mit_annotator.audio.diarization:make_pyannote", "pipeline of pyannote.audio"),
}
# What "auto" means, by use: a diarization to read counts its voices best with the network's local speakers; one
# that voices are assigned to people from tells voices apart best by d-vectors (a voice split in two is given to
# one person by the assignment; two voices merged into one cannot be; BENCHMARKS.md, "Who speaks").
AUTO = {"diarize": "overlap", "assign": "overlap-embeddings"}
FALLBACK = "offline"  # what "auto" runs when the overlap-aware diarizer's model is not found


def diarizer_choices() -> tuple[str, ...]:
    return ("auto", *DIARIZERS)


def make_diarizer(name: str = "auto", models_dir: str | os.PathLike | None = None, device: str = "auto",
                  download: bool = False, segmentation_model: str | os.PathLike = SEGMENTATION_MODEL,
                  use: str = "diarize") -> SpeakerDiarizer:
    """The diarizer called `name` (see diarizer_choices()), its models loaded; `segmentation_model` for the
    overlap-aware ones; `use` ("diarize" or "assign": see AUTO) picks what "auto" means."""
    from mit_annotator.core.models import ModelNotFoundError

    if name not in diarizer_choices():
        raise ValueError(f"diarizer must be one of {', '.join(diarizer_choices())}, got {name!r}")
    options = BackendOptions(models_dir, device, download, segmentation_model)
    if name == "auto":
        name = AUTO[use]
        try:
            diarizer = DIARIZERS[name].load(options)
        except ModelNotFoundError as error:
            log.warning("[mit_annotator] diarizing with the %s: the overlap-aware diarizer's model is not here (%s)",
                        DIARIZERS[FALLBACK].description, error)
            return DIARIZERS[FALLBACK].load(options)
    else:
        diarizer = DIARIZERS[name].load(options)
    log.info("[mit_annotator] diarizing with the %s", DIARIZERS[name].description)
    return diarizer
