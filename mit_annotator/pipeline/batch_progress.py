"""The annotate batch's progress on the terminal: one bar over the videos, naming those in work and their stage."""

from __future__ import annotations

import sys
import time

from mit_annotator.pipeline.video_job import VideoJob


class BatchProgress:
    """One tqdm bar over the batch's videos; its postfix names the videos in work and their stage."""

    def __init__(self, total: int, enabled: bool):
        self.total, self.enabled = total, enabled
        self.current: dict[str, str] = {}
        self.last = 0.0

    def __enter__(self):
        from tqdm import tqdm

        self.bar = tqdm(total=self.total, unit="video", desc="annotate", disable=not self.enabled, file=sys.stderr)
        return self

    def __exit__(self, *exc):
        self.bar.close()

    def start(self, job: VideoJob) -> None:
        self.stage(job.key, "start", 0, 1)

    def finish(self, job: VideoJob) -> None:
        self.current.pop(job.key, None)
        self.bar.update(1)
        self._show(force=True)

    def stage(self, key: str, stage: str, done: int, total: int) -> None:
        self.current[key] = stage if stage in ("start", "probe", "select", "diarize") else f"{stage} {done}/{total}"
        self._show()

    def reporter(self, job: VideoJob):
        return lambda stage, done, total: self.stage(job.key, stage, done, total)

    def _show(self, force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self.last > 0.2:
            self.bar.set_postfix_str("; ".join(f"{k}: {v}" for k, v in self.current.items()), refresh=True)
            self.last = now
