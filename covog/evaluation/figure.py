"""The evaluation report as charts (matplotlib): per person who speaks when (intended, annotated) over their LR-ASD
score; whose voice plays against whose lips move; the sync curves; face identity drift; PSNR and SSIM against the
reference video when there is one."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mit_annotator.core.charts import COLOURS, figure_rgb, new_figure

WIDTH = 1000  # px
PERSON_HEIGHT, PANELS_HEIGHT, REFERENCE_HEIGHT = 150, 260, 190  # px


def report_chart(report: dict):
    """The report's charts as a matplotlib Figure, WIDTH px wide."""
    ids = report["inputs"]["reference_speaking_people"]
    attribution = report["attribution"]
    reference = report["reference"]
    heights = [PERSON_HEIGHT] * len(ids) + [PANELS_HEIGHT] + ([REFERENCE_HEIGHT] if reference else [])
    figure = new_figure(WIDTH, sum(heights) + 40)
    figure.suptitle(f"{Path(report['video']).name}: {report['frames']} frames; speaker attribution accuracy "
                    f"{attribution['frame_accuracy']:.3f} (chance {attribution['chance']:.3f}), "
                    f"F1 {attribution['f1']:.3f}, kappa {attribution['kappa']:.3f}", fontsize=10)
    grid = figure.add_gridspec(len(heights), 3, height_ratios=heights)
    for k, person in enumerate(ids):
        _person_panel(figure.add_subplot(grid[k, :]), report, k, person)
    row = len(ids)
    _confusion_panel(figure.add_subplot(grid[row, 0]), attribution["confusion"])
    _sync_panel(figure.add_subplot(grid[row, 1]), report["sync"]["per_person"])
    drift = figure.add_subplot(grid[row, 2])
    for k, entry in enumerate(report["temporal"]["identity"]["per_person"]):
        drift.plot(_values(entry["drift_curve"]), color=COLOURS[k % len(COLOURS)], lw=1,
                   label=f"person {entry.get('track_id', ids[k])}")
    drift.set(title="face identity drift", xlabel="frame", ylabel="1 - cosine to the first second", ylim=(0, 1))
    drift.legend(fontsize=7)
    if reference:
        _reference_panel(figure.add_subplot(grid[row + 1, :]), reference)
    return figure


def report_figure(report: dict) -> np.ndarray:
    """The charts as one RGB image (the Evaluate node's IMAGE)."""
    return figure_rgb(report_chart(report))


def _person_panel(axes, report: dict, k: int, person: int) -> None:
    series, entry = report["series"], report["attribution"]["per_person"][k]
    colour = COLOURS[k % len(COLOURS)]
    frames = np.arange(report["frames"])
    intended = np.asarray(series["intended"][str(person)], bool)
    annotated = np.asarray(series["annotated"][str(person)], bool)
    axes.fill_between(frames, 4.6, 5.4, where=intended, step="post", color="#999999", lw=0, label="meant to speak")
    axes.fill_between(frames, 5.8, 6.6, where=annotated, step="post", color=colour, lw=0, label="annotated speaking")
    axes.plot(frames, _values(series["active_speaker"][str(person)]), color=colour, lw=1, label="LR-ASD score")
    axes.axhline(0, color="#cccccc", lw=0.8)
    axes.set(xlim=(0, max(len(frames) - 1, 1)), ylim=(-4.5, 7), ylabel="score")
    axes.set_title(f"person {person}: accuracy {entry['accuracy']:.2f}, F1 {entry['f1']:.2f}", loc="left",
                   fontsize=9)
    axes.legend(loc="center right", fontsize=7, ncols=3)


def _confusion_panel(axes, confusion: dict) -> None:
    counts = np.asarray(confusion["frames"], float)
    labels = confusion["rows_whose_voice"]
    shares = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    axes.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    for (r, c), value in np.ndenumerate(counts):
        axes.text(c, r, f"{int(value)}", ha="center", va="center", fontsize=8,
                  color="white" if shares[r, c] > 0.6 else "black")
    axes.set_xticks(range(len(labels)), labels, fontsize=7)
    axes.set_yticks(range(len(labels)), labels, fontsize=7)
    axes.set(title="frames by voice x moving lips", xlabel="whose lips move", ylabel="whose voice")


def _sync_panel(axes, people: list[dict]) -> None:
    for k, entry in enumerate(people):
        if "curve" in entry:
            axes.plot(entry["offsets"], entry["curve"], color=COLOURS[k % len(COLOURS)], marker=".",
                      label=f"person {entry['track_id']}")
    axes.axvline(0, color="#cccccc", lw=0.8)
    axes.set(title="sync", xlabel="audio delay (frames)", ylabel="mean LR-ASD score")
    if any("curve" in entry for entry in people):
        axes.legend(fontsize=7)


def _reference_panel(axes, reference: dict) -> None:
    axes.plot(_values(reference["psnr_curve"]), color=COLOURS[0], lw=1, label=f"PSNR (mean {reference['psnr']} dB)")
    axes.set(xlabel="frame", ylabel="PSNR (dB)", ylim=(0, 50))
    ssim = axes.twinx()
    ssim.plot(_values(reference["ssim_curve"]), color=COLOURS[1], lw=1, label=f"SSIM (mean {reference['ssim']})")
    ssim.set(ylabel="SSIM", ylim=(0, 1))
    axes.set_title("against the reference video", loc="left", fontsize=9)
    axes.legend(handles=axes.lines + ssim.lines, fontsize=7, loc="lower right")


def _values(values: list) -> np.ndarray:
    """A JSON series (None where unknown) as floats, NaN where unknown (a gap in the line)."""
    return np.array([np.nan if v is None else v for v in values], float)
