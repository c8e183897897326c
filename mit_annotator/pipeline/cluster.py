"""The annotate batch on a Ray cluster (`pip install "mit-covog[cluster]"`): the same per-video function
(`video_job.process_video`) as Ray tasks, one video per task, a GPU per task when the cluster has GPUs.

Workers write a video's clips into the dataset's staging folder, so the dataset folder must be one that every node
sees (a shared file system); the driver (this process) commits each video as its task finishes, exactly as the
local loop does. Each worker process loads the models once and keeps them for the tasks it runs next.
Without a running cluster (no `ray_address`, no RAY_ADDRESS), Ray starts a local one with `workers` CPUs.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from mit_annotator.pipeline.annotate import AnnotateSettings, Annotator
from mit_annotator.pipeline.video_job import process_video


def _ray():
    try:
        import ray
    except ImportError:
        raise RuntimeError('the Ray backend needs ray: pip install "mit-covog[cluster]" (or pip install ray)'
                           ) from None
    return ray


def run_on_ray(todo, out: Path, options, commit, bar) -> None:
    ray = _ray()
    started_here = not ray.is_initialized()
    if started_here:
        address = options.ray_address or os.environ.get("RAY_ADDRESS")
        if address:
            ray.init(address=address, log_to_driver=False)
        else:
            ray.init(num_cpus=options.workers, include_dashboard=False, log_to_driver=False)
    try:
        gpus = 1 if ray.cluster_resources().get("GPU", 0) >= 1 else 0
        task = ray.remote(_annotate_task).options(num_cpus=1, num_gpus=gpus, max_retries=0)
        pending = {task.remote(job, str(out), options.settings, options.frames): job for job in todo}
        for job in todo:
            bar.stage(job.key, "queued", 0, 1)
        while pending:
            finished, _ = ray.wait(list(pending), num_returns=1)
            job = pending.pop(finished[0])
            commit(job, ray.get(finished[0]))
            bar.finish(job)
    finally:
        if started_here:
            ray.shutdown()


_ANNOTATORS: dict[AnnotateSettings, Annotator] = {}


def _annotate_task(job, out: str, settings: AnnotateSettings, frames: bool) -> dict[str, Any]:
    if settings not in _ANNOTATORS:  # a worker process keeps its models for its next tasks
        _ANNOTATORS.clear()
        _ANNOTATORS[settings] = Annotator(settings)
    return process_video(job, Path(out), _ANNOTATORS[settings], frames)
