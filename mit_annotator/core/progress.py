"""The one progress and cancel hook of long work: the pipeline's stages, CovOG's sampler and trainer, and the nodes.

Long work takes `progress: Progress | None` and calls it as `progress(done, total)` after each unit of work (a
frame, a window, a denoising or training step; the sampler and the trainer also before their first). The caller's
hook shows it (a tqdm bar on the command line, ComfyUI's progress bar in a node) and cancels by raising: `Cancelled`,
or the host's own interrupt (ComfyUI's), which then travels up unchanged. Work that holds files or memory cleans up
on the way out; the trainer saves its state first.
"""

from __future__ import annotations

from collections.abc import Callable

Progress = Callable[[int, int], None]  # progress(done, total); may raise to cancel the work
StageProgress = Callable[[str, int, int], None]  # report(stage, done, total): a pipeline of named stages


class Cancelled(Exception):
    """The work was cancelled through its progress hook."""


def report(progress: Progress | None, done: int, total: int) -> None:
    if progress is not None:
        progress(done, total)


def within(progress: Progress | None, before: int, total: int) -> Progress | None:
    """A hook for one part of a larger piece of work: its (done, _) lands at before + done of `total`."""
    if progress is None:
        return None
    return lambda done, _part_total: progress(before + done, total)


def stage_hook(report_stage: StageProgress | None, name: str) -> Progress | None:
    """A (done, total) hook for one named stage of a staged report."""
    if report_stage is None:
        return None
    return lambda done, total: report_stage(name, done, total)


def tqdm_progress(bar) -> Progress:
    """A hook that moves a tqdm bar (its total follows the work's)."""
    def progress(done: int, total: int) -> None:
        bar.total = total
        bar.update(done - bar.n)

    return progress
