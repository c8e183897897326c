"""The diarizers, by name: every one is called the same way (16 kHz mono samples, a DiarizationConfig, a uri, an
optional progress callback) and returns a Diarization.

- "overlap": pyannote's segmentation model with speaker embeddings (overlap_diarization.py): overlapping speech
  found, one voice kept one speaker. Needs the segmentation model's weights (models registry: pyannote_segmentation).
- "offline": silero-vad + resemblyzer + spectral clustering (diarization.py): nothing to download, one voice per
  instant.
- "pyannote": pyannote.audio's own pipeline, for those who have it and a Hugging Face token.
- "overlap-embeddings": the same network for speech and overlaps, voices told apart by the offline pipeline's
  d-vector clustering: what voices are assigned to people from.
- "auto": "overlap" (for a diarization to read) or "overlap-embeddings" (to assign voices to people) when the
  segmentation model's weights are found, else "offline" (a log line says which ran and why).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable

log = logging.getLogger("mit_annotator")


SEGMENTATION_MODEL = "pyannote_segmentation"


def _overlap(models_dir, device, download, model=SEGMENTATION_MODEL, identity="network"):
    from mit_annotator.audio.local_speakers import OverlapSettings
    from mit_annotator.audio.overlap_diarization import OverlapAwareDiarizer
    from mit_annotator.audio.speaker_segmentation import load_segmentation

    return OverlapAwareDiarizer(load_segmentation(model, models_dir, device, download),
                                OverlapSettings(identity=identity))


def _overlap_embeddings(models_dir, device, download, model=SEGMENTATION_MODEL):
    return _overlap(models_dir, device, download, model, identity="embeddings")


def _offline(models_dir, device, download, model=None):
    from mit_annotator.audio.diarization import Diarizer

    return Diarizer(device="cpu" if device == "auto" else device)


def _pyannote(models_dir, device, download, model=None):
    from mit_annotator.audio.diarization import PyannoteDiarizer

    return PyannoteDiarizer(device="cpu" if device == "auto" else device)


DIARIZERS: dict[str, Callable] = {"overlap": _overlap, "overlap-embeddings": _overlap_embeddings,
                                  "offline": _offline, "pyannote": _pyannote}
DESCRIPTIONS = {"overlap": "overlap-aware diarizer (pyannote's segmentation model; voices told apart by its local "
                           "speakers and their d-vectors)",
                "overlap-embeddings": "overlap-aware diarizer (pyannote's segmentation model for overlaps; voices "
                                      "told apart by the offline d-vector clustering)",
                "offline": "offline diarizer (silero-vad + resemblyzer, one voice per instant)",
                "pyannote": "pyannote.audio's pipeline"}
DIARIZER_CHOICES = ("auto", *DIARIZERS)
# What "auto" means, by use: a diarization to read counts its voices best with the network's local speakers; one
# that voices are assigned to people from tells voices apart best by d-vectors (a voice split in two is given to
# one person by the assignment; two voices merged into one cannot be; BENCHMARKS.md, "Who speaks").
AUTO = {"diarize": "overlap", "assign": "overlap-embeddings"}


def make_diarizer(name: str = "auto", models_dir: str | os.PathLike | None = None, device: str = "auto",
                  download: bool = False, segmentation_model: str | os.PathLike = SEGMENTATION_MODEL,
                  use: str = "diarize"):
    """The diarizer called `name` (see DIARIZER_CHOICES), its models loaded; `segmentation_model` (a path, a file
    name in the models folders, or a known name) for the overlap-aware ones; `use` ("diarize" or "assign": see
    AUTO) picks what "auto" means."""
    from mit_annotator.core.models import ModelNotFoundError

    if name not in DIARIZER_CHOICES:
        raise ValueError(f"diarizer must be one of {', '.join(DIARIZER_CHOICES)}, got {name!r}")
    if name == "auto":
        name = AUTO[use]
        try:
            diarizer = DIARIZERS[name](models_dir, device, download, segmentation_model)
        except ModelNotFoundError as error:
            log.warning("[mit_annotator] diarizing with the %s: the overlap-aware diarizer's model is not here (%s)",
                        DESCRIPTIONS["offline"], error)
            return _offline(models_dir, device, download)
    else:
        diarizer = DIARIZERS[name](models_dir, device, download, segmentation_model)
    log.info("[mit_annotator] diarizing with the %s", DESCRIPTIONS[name])
    return diarizer
