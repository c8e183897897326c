"""What an annotated dataset holds: hours, clips per people count, clip lengths, speaking ratios, face sizes and why
candidates were rejected, from its manifest; as a dict (JSON) and as six bar charts (PNG and SVG)."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.ticker import MaxNLocator

from mit_annotator.core.charts import COLOURS, new_figure, save_figure
from mit_annotator.core.documents import save_json
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


def report_figure(report: dict[str, Any]):
    """Six bar charts: clips and minutes per people count, clip length, speaking ratio per person, face size,
    rejection reasons (a matplotlib Figure, 1440x640 px)."""
    panels = [
        ("clips per people count", list(report["clips_per_people"]), list(report["clips_per_people"].values()),
         "people in the clip", "clips"),
        ("minutes per people count", list(report["hours_per_people"]),
         [round(h * 60, 2) for h in report["hours_per_people"].values()], "people in the clip", "minutes"),
        ("clip length", report["clip_seconds"]["bins"], report["clip_seconds"]["counts"], "seconds", "clips"),
        ("speaking ratio per person", report["speaking_ratio_per_person"]["bins"],
         report["speaking_ratio_per_person"]["counts"], "share of the clip spoken", "people"),
        ("face size", report["face_px_1080p"]["bins"], report["face_px_1080p"]["counts"], "px at 1080p", "faces"),
        ("rejected candidates", list(report["rejections"]), list(report["rejections"].values()), "rule",
         "candidates"),
    ]
    figure = new_figure(1440, 640)
    figure.suptitle(f"{report['clips']} clips, {report['hours'] * 60:.1f} min of video; {report['videos']['done']} "
                    f"videos done, {report['videos']['failed']} failed")
    for axes, (title, labels, values, xlabel, ylabel) in zip(figure.subplots(2, 3).flat, panels):
        axes.set_title(title)
        axes.set_xlabel(xlabel)
        axes.set_ylabel(ylabel)
        if not values:
            axes.text(0.5, 0.5, "nothing", transform=axes.transAxes, ha="center", color="grey")
            continue
        bars = axes.bar(range(len(values)), values, color=COLOURS[0])
        axes.bar_label(bars, labels=[f"{v:g}" for v in values], fontsize=8)
        axes.set_xticks(range(len(labels)), [str(label) for label in labels], fontsize=8,
                        rotation=30 if len(labels) > 4 else 0, ha="right" if len(labels) > 4 else "center")
        axes.margins(y=0.15)
        if ylabel != "minutes":
            axes.yaxis.set_major_locator(MaxNLocator(integer=True))
    return figure


def write_report(dataset: str | os.PathLike, out: str | os.PathLike | None = None) -> tuple[dict[str, Any], Path, Path]:
    """report.json, report.png and report.svg in `out` (default: the dataset folder)."""
    report = dataset_report(dataset)
    folder = Path(out) if out is not None else Path(dataset)
    json_path = save_json(report, folder / "report.json")
    png_path, _ = save_figure(report_figure(report), folder / "report.png")
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
