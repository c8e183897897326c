"""manifest.json: the dataset's index, one row per clip and per video, built from the annotate run's video records."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from mit_annotator.core.documents import FORMAT_VERSION, read_document

MANIFEST = "manifest.json"
MANIFEST_FORMAT = "mit_annotator.manifest"


class ManifestError(ValueError):
    """A dataset folder without a readable manifest."""


def manifest_document(records: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """The manifest of a dataset whose video records are `records`: every clip row, sorted by folder name, and one
    row per video with its rejected candidates counted by reason."""
    rows, videos = [], []
    for record in records:
        rows.extend(record.get("clips", []))
        rejected: dict[str, int] = {}
        for candidate in record.get("candidates", []):
            for reason in candidate.get("reasons", []):
                rejected[reason] = rejected.get(reason, 0) + 1
        videos.append({"key": record["key"], "input": record["input"], "status": record["status"],
                       "reason": record["reason"], "clips": len(record.get("clips", [])),
                       "seconds": (record.get("media") or {}).get("seconds"), "rejections": rejected})
    rows.sort(key=lambda row: row["folder"])
    return {"format": MANIFEST_FORMAT, "version": FORMAT_VERSION, "clips": rows, "videos": videos}


def read_manifest(out: str | os.PathLike) -> dict[str, Any]:
    path = Path(out) / MANIFEST
    if not path.is_file():
        raise ManifestError(f"{out}: no {MANIFEST} (not a dataset the annotate command wrote, or its run did not "
                            "finish: run annotate again)")
    return read_document(path, MANIFEST_FORMAT)
