"""What an annotated dataset holds: hours, clips per people count, clip lengths, speaking ratios, face sizes and why
candidates were rejected, from its manifest; as a dict (JSON) and as a picture of six bar charts (PNG)."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from mit_annotator.dataset.clips import RULES
from mit_annotator.dataset.manifest import read_manifest

REPORT_FORMAT = "mit_annotator.dataset_report"
LENGTH_BINS = (5, 7.5, 10, 12.5, 15, 20, 30, 60)  # seconds
RATIO_BINS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
FACE_BINS = (64, 96, 128, 192, 256, 384, 512)  # px at 1080p


def dataset_report(dataset: str | os.PathLike) -> dict[str, Any]:
    manifest = read_manifest(dataset)
    clips, videos = manifest["clips"], manifest["videos"]
    seconds = [c["seconds"] for c in clips]
    ratios = [r for c in clips for r in c["speaking_ratios"]]
    faces = [f for c in clips for f in (c.get("face_px_1080p") or [])]
    rejections = Counter()
    for video in videos:
        rejections.update(video.get("rejections", {}))
    failed = [{"video": v["key"], "reason": v["reason"]} for v in videos if v["status"] == "failed"]
    annotated = sum(v["seconds"] or 0.0 for v in videos if v["status"] == "done")
    return {
        "format": REPORT_FORMAT, "version": 1, "dataset": str(dataset),
        "clips": len(clips), "hours": round(sum(seconds) / 3600, 4),
        "videos": {"done": sum(v["status"] == "done" for v in videos), "failed": len(failed),
                   "hours_annotated": round(annotated / 3600, 4)},
        "clips_per_people": {str(n): c for n, c in sorted(Counter(c["people"] for c in clips).items())},
        "hours_per_people": {str(n): round(sum(c["seconds"] for c in clips if c["people"] == n) / 3600, 4)
                             for n in sorted({c["people"] for c in clips})},
        "clip_seconds": _histogram(seconds, LENGTH_BINS) | _stats(seconds),
        "speaking_ratio_per_person": _histogram(ratios, RATIO_BINS) | _stats(ratios),
        "face_px_1080p": _histogram(faces, FACE_BINS) | _stats(faces),
        "rejections": {rule: rejections.get(rule, 0) for rule in RULES},
        "failed": failed,
    }


def report_lines(report: dict[str, Any]) -> list[str]:
    people = ", ".join(f"{n} people: {c}" for n, c in report["clips_per_people"].items()) or "none"
    lines = [f"{report['clips']} clips, {report['hours'] * 60:.1f} min ({people}) from {report['videos']['done']} "
             f"videos ({report['videos']['hours_annotated'] * 60:.1f} min annotated); {report['videos']['failed']} "
             "videos failed"]
    for name, unit in (("clip_seconds", "s"), ("speaking_ratio_per_person", ""), ("face_px_1080p", "px at 1080p")):
        part = report[name]
        if part["count"]:
            lines.append(f"  {name.replace('_', ' ')}: mean {part['mean']:.2f}{unit}, min {part['min']:.2f}, "
                         f"max {part['max']:.2f}")
    lines.append("  rejected candidates: " + (", ".join(f"{k} {v}" for k, v in report["rejections"].items() if v)
                                             or "none"))
    lines.extend(f"  failed: {f['video']}: {f['reason']}" for f in report["failed"])
    return lines


def report_image(report: dict[str, Any]) -> np.ndarray:
    """RGB: six bar charts (clips per people count, hours per people count, clip length, speaking ratio per
    person, face size, rejection reasons)."""
    panels = [
        ("clips per people count", list(report["clips_per_people"]), list(report["clips_per_people"].values())),
        ("minutes per people count", list(report["hours_per_people"]),
         [round(h * 60, 2) for h in report["hours_per_people"].values()]),
        ("clip length (s)", report["clip_seconds"]["bins"], report["clip_seconds"]["counts"]),
        ("speaking ratio per person", report["speaking_ratio_per_person"]["bins"],
         report["speaking_ratio_per_person"]["counts"]),
        ("face size (px at 1080p)", report["face_px_1080p"]["bins"], report["face_px_1080p"]["counts"]),
        ("rejected candidates by reason", list(report["rejections"]), list(report["rejections"].values())),
    ]
    width, height = 480, 300
    canvas = np.full((2 * height + 40, 3 * width, 3), 255, np.uint8)
    title = (f"{report['clips']} clips, {report['hours'] * 60:.1f} min of video; "
             f"{report['videos']['done']} videos done, {report['videos']['failed']} failed")
    cv2.putText(canvas, title, (10, 26), cv2.FONT_HERSHEY_SIMPLEX, 0.65, (0, 0, 0), 1, cv2.LINE_AA)
    for k, (name, labels, values) in enumerate(panels):
        x, y = (k % 3) * width, 40 + (k // 3) * height
        _bar_chart(canvas[y:y + height, x:x + width], name, [str(v) for v in labels], values)
    return canvas


def write_report(dataset: str | os.PathLike, out: str | os.PathLike | None = None) -> tuple[dict[str, Any], Path, Path]:
    """report.json and report.png in `out` (default: the dataset folder)."""
    from mit_annotator.core.documents import save_json
    from mit_annotator.core.files import atomic_path

    report = dataset_report(dataset)
    folder = Path(out) if out is not None else Path(dataset)
    json_path = save_json(report, folder / "report.json")
    png_path = folder / "report.png"
    with atomic_path(png_path) as tmp:
        if not cv2.imwrite(str(tmp), cv2.cvtColor(report_image(report), cv2.COLOR_RGB2BGR)):
            raise RuntimeError(f"could not write {png_path}")
    return report, json_path, png_path


def _histogram(values: list[float], edges: tuple[float, ...]) -> dict[str, Any]:
    """Counts per bin: below the first edge, between edges, and at or above the last."""
    bins = [f"<{edges[0]:g}"] + [f"{a:g}-{b:g}" for a, b in zip(edges[:-1], edges[1:])] + [f">={edges[-1]:g}"]
    counts = np.bincount(np.searchsorted(edges, values, side="right"), minlength=len(bins)) if values else \
        np.zeros(len(bins), int)
    return {"bins": bins, "counts": [int(c) for c in counts]}


def _stats(values: list[float]) -> dict[str, Any]:
    if not values:
        return {"count": 0, "mean": None, "min": None, "max": None}
    return {"count": len(values), "mean": round(float(np.mean(values)), 4), "min": round(float(np.min(values)), 4),
            "max": round(float(np.max(values)), 4)}


def _bar_chart(panel: np.ndarray, title: str, labels: list[str], values: list[float]) -> None:
    height, width = panel.shape[:2]
    cv2.putText(panel, title, (12, 22), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (0, 0, 0), 1, cv2.LINE_AA)
    left, right, top, bottom = 40, width - 12, 40, height - 60
    cv2.line(panel, (left, bottom), (right, bottom), (0, 0, 0), 1)
    if not values:
        cv2.putText(panel, "nothing", (left + 10, (top + bottom) // 2), cv2.FONT_HERSHEY_SIMPLEX, 0.5,
                    (120, 120, 120), 1, cv2.LINE_AA)
        return
    most = max(max(values), 1e-9)
    slot = (right - left) / len(values)
    for k, (label, value) in enumerate(zip(labels, values)):
        x1, x2 = int(left + k * slot + 0.15 * slot), int(left + (k + 1) * slot - 0.15 * slot)
        y = int(bottom - (bottom - top) * value / most)
        cv2.rectangle(panel, (x1, y), (x2, bottom), (60, 110, 190), -1)
        cv2.putText(panel, f"{value:g}", (x1, max(y - 4, top - 4)), cv2.FONT_HERSHEY_SIMPLEX, 0.38, (0, 0, 0), 1,
                    cv2.LINE_AA)
        text = label[:14]
        origin = (int(left + k * slot + 2), bottom + 16 + (k % 2) * 16)
        cv2.putText(panel, text, origin, cv2.FONT_HERSHEY_SIMPLEX, 0.36, (0, 0, 0), 1, cv2.LINE_AA)
