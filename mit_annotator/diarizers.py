"""The diarizers, by name: every one is called the same way (16 kHz mono samples, a DiarizationConfig, a uri, an
optional progress callback) and returns a Diarization.

- "overlap": pyannote's segmentation model with speaker embeddings (overlap_diarization.py): overlapping speech
  found, one voice kept one speaker. Needs the segmentation model's weights (models registry: pyannote_segmentation).
- "offline": silero-vad + resemblyzer + spectral clustering (diarization.py): nothing to download, one voice per
  instant.
- "pyannote": pyannote.audio's own pipeline, for those who have it and a Hugging Face token.
- "auto": "overlap" when its weights are found, else "offline" (a log line says which ran and why).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable

log = logging.getLogger("mit_annotator")


SEGMENTATION_MODEL = "pyannote_segmentation"


def _overlap(models_dir, device, download, model=SEGMENTATION_MODEL):
    from .overlap_diarization import OverlapAwareDiarizer
    from .speaker_segmentation import load_segmentation

    return OverlapAwareDiarizer(load_segmentation(model, models_dir, device, download))


def _offline(models_dir, device, download, model=None):
    from .diarization import Diarizer

    return Diarizer(device="cpu" if device == "auto" else device)


def _pyannote(models_dir, device, download, model=None):
    from .diarization import PyannoteDiarizer

    return PyannoteDiarizer(device="cpu" if device == "auto" else device)


DIARIZERS: dict[str, Callable] = {"overlap": _overlap, "offline": _offline, "pyannote": _pyannote}
DESCRIPTIONS = {"overlap": "overlap-aware (pyannote's segmentation model + resemblyzer embeddings)",
                "offline": "offline (silero-vad + resemblyzer, one voice per instant)",
                "pyannote": "pyannote.audio's pipeline"}
DIARIZER_CHOICES = ("auto", *DIARIZERS)


def make_diarizer(name: str = "auto", models_dir: str | os.PathLike | None = None, device: str = "auto",
                  download: bool = False, segmentation_model: str | os.PathLike = SEGMENTATION_MODEL):
    """The diarizer called `name` (see DIARIZER_CHOICES), its models loaded; `segmentation_model` (a path, a file
    name in the models folders, or a known name) for the overlap-aware one."""
    from .models import ModelNotFoundError

    if name not in DIARIZER_CHOICES:
        raise ValueError(f"diarizer must be one of {', '.join(DIARIZER_CHOICES)}, got {name!r}")
    if name == "auto":
        try:
            diarizer = _overlap(models_dir, device, download, segmentation_model)
        except ModelNotFoundError as error:
            log.warning("[mit_annotator] diarizing with the %s: the overlap-aware diarizer's model is not here (%s)",
                        DESCRIPTIONS["offline"], error)
            return _offline(models_dir, device, download)
        name = "overlap"
    else:
        diarizer = DIARIZERS[name](models_dir, device, download, segmentation_model)
    log.info("[mit_annotator] diarizing with the %s", DESCRIPTIONS[name])
    return diarizer
