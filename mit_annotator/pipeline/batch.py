"""A folder of videos into a dataset, losing nothing: the annotate command's loop, shards, resuming and workers.

The details: docs/annotate-batch.md.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import time
import zlib
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mit_annotator.core.documents import FORMAT_VERSION, FormatError, read_document, save_json
from mit_annotator.dataset.layout import CLIP_NAME
from mit_annotator.dataset.manifest import MANIFEST, manifest_document
from mit_annotator.pipeline.annotate import AnnotateSettings, Annotator
from mit_annotator.pipeline.batch_progress import BatchProgress
from mit_annotator.pipeline.video_job import (
    BOOKKEEPING,
    DONE,
    FAILED,
    VIDEO_RECORD_FORMAT,
    VideoJob,
    is_transient,
    process_video,
    staging_folder,
)

log = logging.getLogger("mit_annotator")

VIDEO_SUFFIXES = {".mp4", ".mkv", ".mov", ".avi", ".webm", ".m4v", ".flv", ".mpg", ".mpeg", ".ts", ".mts"}
SETTINGS_FORMAT = "mit_annotator.annotate_settings"
# what a dataset folder made before a setting existed was annotated with (0.2.0: every frame, faces in whole frames,
# clips encoded with x264's medium preset; before 0.4: faces on every frame, the detector's square input)
SETTINGS_BEFORE_THEY_WERE_RECORDED = {"detect_every": 1, "face_search": "frame", "encode_preset": "medium",
                                      "faces_every": 1, "detector_input": "square"}
TEMPORARY = re.compile(r"^\..*\.partial(\.[A-Za-z0-9]+)?$")  # files.atomic_path's temporary names


LOCK, LOCK_OWNER = "lock", "lock.owner"


class BatchError(ValueError):
    """Input or a dataset folder the batch cannot work with, named in the message."""


class BatchStopped(RuntimeError):
    """The batch stopped on an error of the machine (disk full, no permission); nothing unfinished was recorded."""


@dataclass
class BatchOptions:
    settings: AnnotateSettings = field(default_factory=AnnotateSettings)
    workers: int = 1
    shard: tuple[int, int] = (0, 1)  # (i, n): this run takes the videos whose name hashes to i modulo n
    retry_failed: bool = False
    frames: bool = False  # also write frames/*.png in each clip
    backend: str = "local"  # or "ray"
    ray_address: str | None = None
    progress: bool = True


@dataclass
class BatchSummary:
    done: list[str] = field(default_factory=list)  # video keys annotated in this run
    failed: list[tuple[str, str]] = field(default_factory=list)  # (key, reason) in this run
    skipped: list[str] = field(default_factory=list)  # already recorded
    failed_before: list[str] = field(default_factory=list)  # recorded as failed by an earlier run, not retried
    clips: int = 0  # clips written in this run
    other_shards: int = 0
    seconds: float = 0.0
    video_seconds: float = 0.0  # seconds of video annotated in this run
    manifest: Path | None = None


# ---------------------------------------------------------------------------------------------------------------------
# Inputs


def find_videos(source: str | os.PathLike, name: str | None = None) -> list[VideoJob]:
    """The videos of INPUT: a video file, a folder (searched recursively) or a text file listing paths (one a line,
    relative to the list's folder; # comments). Each gets a name for its clip folders, unique within the source."""
    source_path = Path(source)
    if not source_path.exists():
        raise BatchError(f"{source}: no such file or folder")
    if source_path.is_dir():
        paths = sorted(p for p in source_path.rglob("*") if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES
                       and not any(part.startswith(".") for part in p.relative_to(source_path).parts))
        if not paths:
            raise BatchError(f"{source}: no videos in this folder (looked for {', '.join(sorted(VIDEO_SUFFIXES))})")
        names = [safe_name("-".join(p.relative_to(source_path).with_suffix("").parts), "_") for p in paths]
        default_source = source_path.resolve().name
    elif source_path.suffix.lower() in VIDEO_SUFFIXES:
        paths, names = [source_path], [safe_name(source_path.stem, "_")]
        default_source = source_path.resolve().parent.name
    else:
        paths = _listed(source_path)
        names = [safe_name(p.stem, "_") for p in paths]
        default_source = source_path.stem
    source_name = safe_name(name or default_source or "video", "")
    seen: dict[str, Path] = {}
    for path, video in zip(paths, names):
        if video in seen:
            raise BatchError(f"{seen[video]} and {path} would both name their clips {source_name}_{video}_...: "
                             "rename one, or annotate them with different --source names")
        seen[video] = path
    return [VideoJob(str(path), source_name, video) for path, video in zip(paths, names)]


def _listed(list_file: Path) -> list[Path]:
    try:
        lines = list_file.read_text().splitlines()
    except UnicodeDecodeError:
        raise BatchError(f"{list_file}: neither a video (by its suffix) nor a text file listing videos") from None
    paths = []
    for line in lines:
        line = line.strip()
        if line and not line.startswith("#"):
            path = Path(line)
            paths.append(path if path.is_absolute() else list_file.parent / path)
    if not paths:
        raise BatchError(f"{list_file}: lists no videos")
    return paths


def safe_name(text: str, keep: str) -> str:
    """Letters, digits, '-' and the characters of `keep`; anything else becomes '-'."""
    return re.sub(rf"[^A-Za-z0-9{re.escape(keep)}-]+", "-", text).strip("-") or "video"


def parse_shard(text: str) -> tuple[int, int]:
    """'i/n' with 0 <= i < n."""
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
    if not match or not 0 <= int(match.group(1)) < int(match.group(2)):
        raise BatchError(f"--shard {text!r}: expected i/n with 0 <= i < n, e.g. 0/4 ... 3/4")
    return int(match.group(1)), int(match.group(2))


def in_shard(job: VideoJob, shard: tuple[int, int]) -> bool:
    """Deterministic on every machine: the name's CRC-32 modulo n (no dependence on the list's order)."""
    index, count = shard
    return zlib.crc32(job.key.encode()) % count == index


# ---------------------------------------------------------------------------------------------------------------------
# The batch


def run_batch(inputs: list[VideoJob], out: str | os.PathLike, options: BatchOptions) -> BatchSummary:
    """Annotate `inputs` into the dataset folder `out` (see the module's doc)."""
    started = time.time()
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise BatchError(f"{out}: exists and is not a folder")
    if options.workers < 1:
        raise BatchError(f"--workers must be at least 1, got {options.workers}")
    keys = [job.key for job in inputs]
    if len(set(keys)) != len(keys):
        raise BatchError(f"two inputs have the same name: {sorted({k for k in keys if keys.count(k) > 1})}")
    with dataset_lock(out):
        try:
            return _run_locked(inputs, out, options, started)
        except OSError as error:
            if not is_transient(error):
                raise
            raise BatchStopped(f"stopped: {error.strerror} ({error.filename or out}); the videos in progress were not "
                               "recorded: free space or fix the permission, then run the same command again") from error


def _run_locked(inputs: list[VideoJob], out: Path, options: BatchOptions, started: float) -> BatchSummary:
    _check_settings(out / BOOKKEEPING, options.settings)
    summary = BatchSummary()
    mine = [job for job in inputs if in_shard(job, options.shard)]
    summary.other_shards = len(inputs) - len(mine)
    _recover(out, mine, started)
    todo = []
    for job in mine:
        record = read_video_record(out, job.key)
        if record is None or (record["status"] == FAILED and options.retry_failed):
            todo.append(job)
        else:
            summary.skipped.append(job.key)
            if record["status"] == FAILED:
                summary.failed_before.append(job.key)

    def commit(job: VideoJob, result: dict[str, Any]) -> None:
        commit_video(out, job, result)
        if result["status"] == DONE:
            summary.done.append(job.key)
            summary.clips += len(result["clips"])
        else:
            summary.failed.append((job.key, result["reason"]))
        summary.video_seconds += (result.get("media") or {}).get("seconds", 0.0)

    if todo:
        with BatchProgress(len(todo), options.progress) as bar:
            if options.backend == "ray":
                from mit_annotator.pipeline.cluster import run_on_ray

                run_on_ray(todo, out, options, commit, bar)
            elif options.workers == 1:
                annotator = Annotator(options.settings)
                for job in todo:
                    bar.start(job)
                    commit(job, process_video(job, out, annotator, options.frames, bar.reporter(job)))
                    bar.finish(job)
            else:
                _run_pool(todo, out, options, commit, bar)
    summary.manifest = write_manifest(out, started)
    summary.seconds = time.time() - started
    return summary


@contextmanager
def dataset_lock(out: Path) -> Iterator[None]:
    """Hold the dataset's lock (`.annotate/lock`) for the whole run; a second run gets a BatchError naming the first.
    The lock is the OS's (flock, or Windows' LockFileEx): it goes with the process, so a killed run leaves none."""
    from filelock import FileLock, Timeout

    book = out / BOOKKEEPING
    owner = book / LOCK_OWNER
    lock = FileLock(book / LOCK, timeout=0)
    try:
        book.mkdir(parents=True, exist_ok=True)
        lock.acquire()
    except Timeout:
        raise BatchError(f"{out}: another annotate run ({_read_owner(owner)}) is writing this dataset: wait for it to "
                         "end, or choose another --out") from None
    except OSError as error:
        raise BatchError(f"{out}: cannot write the dataset there ({error.strerror}): choose a folder you can "
                         "write to") from None
    try:
        try:
            started = time.strftime("%Y-%m-%d %H:%M:%S")
            owner.write_text(json.dumps({"pid": os.getpid(), "host": _host(), "started": started}))
        except OSError as error:
            raise BatchError(f"{out}: cannot write the dataset there ({error.strerror}): free space or choose a "
                             "folder you can write to") from None
        yield
    finally:
        owner.unlink(missing_ok=True)
        lock.release()


def _read_owner(path: Path, wait: float = 2.0) -> str:
    """Who holds the lock, from the file the holder writes just after taking it (waited for a moment: a run that
    has only just taken the lock may not have written it yet)."""
    deadline = time.monotonic() + wait
    while True:
        try:
            owner = json.loads(path.read_text())
            return f"pid {owner['pid']} on {owner['host']}, since {owner['started']}"
        except (OSError, ValueError, KeyError, TypeError):
            if time.monotonic() > deadline:
                return "its process is not named"
            time.sleep(0.05)


def _host() -> str:
    import socket

    return socket.gethostname()


def commit_video(out: Path, job: VideoJob, result: dict[str, Any]) -> None:
    """Move the video's staged clips into place, then write its record (the commit), then its timings."""
    staging = staging_folder(out, job.key)
    for row in result.get("clips", []):
        final = out / row["folder"]
        if final.exists():
            shutil.rmtree(final)
        os.replace(staging / row["folder"], final)
    seconds = result.pop("seconds", None)
    save_json(result, video_record_path(out, job.key))
    if seconds is not None:
        save_json({"format": "mit_annotator.timings", "version": FORMAT_VERSION, "seconds": seconds},
                  out / BOOKKEEPING / "timings" / f"{job.key}.json")
    shutil.rmtree(staging, ignore_errors=True)


def video_record_path(out: Path, key: str) -> Path:
    return out / BOOKKEEPING / "videos" / f"{key}.json"


def read_video_record(out: Path, key: str) -> dict[str, Any] | None:
    path = video_record_path(out, key)
    if not path.is_file():
        return None
    record = _read_record_file(path)
    missing = [row["folder"] for row in record.get("clips", []) if not (out / row["folder"]).is_dir()]
    if missing:  # someone removed clips by hand: the video is annotated again
        log.warning("[mit_annotator] %s: clips %s are missing; annotating the video again", path, missing)
        return None
    return record


def _read_record_file(path: Path) -> dict[str, Any]:
    try:
        record = read_document(path, VIDEO_RECORD_FORMAT)
        if not isinstance(record.get("clips", []), list) or record.get("status") not in (DONE, FAILED):
            raise FormatError(f"{path}: no status or clip list")
        return record
    except FormatError as error:
        raise BatchError(f"{error}: not a video record this annotate command reads; delete the file to annotate its "
                         "video again") from None


def write_manifest(out: Path, started: float) -> Path:
    """manifest.json from every video record in the dataset."""
    _remove_temporary(out, started)
    folder = out / BOOKKEEPING / "videos"
    paths = sorted(folder.glob("*.json")) if folder.is_dir() else []
    return save_json(manifest_document(_read_record_file(path) for path in paths), out / MANIFEST)


def _check_settings(book: Path, settings: AnnotateSettings) -> None:
    path = book / "settings.json"
    wanted = {"format": SETTINGS_FORMAT, "version": FORMAT_VERSION, "settings": settings.to_dict()}
    if path.is_file():
        found = read_document(path, SETTINGS_FORMAT)
        if not isinstance(found.get("settings"), dict):
            raise FormatError(f"{path}: no settings in it")
        made_with = {**SETTINGS_BEFORE_THEY_WERE_RECORDED, **found["settings"]}
        if made_with != wanted["settings"]:
            differ = sorted(k for k in wanted["settings"] if made_with.get(k) != wanted["settings"][k])
            raise BatchError(f"{book.parent} was annotated with other settings ({', '.join(differ)} differ): "
                             "choose another --out, or the settings it was made with (in "
                             f"{path})")
        return
    save_json(wanted, path)


def _recover(out: Path, jobs: list[VideoJob], started: float) -> None:
    """Undo what a killed run left of this run's videos: their staging folders, the clip folders of a commit that
    did not finish (no record), and temporary files."""
    _remove_temporary(out, started)
    by_video = {(job.source, job.video): job for job in jobs}
    pending = {job.key for job in jobs if not video_record_path(out, job.key).is_file()}
    for job in jobs:
        shutil.rmtree(staging_folder(out, job.key), ignore_errors=True)
    for folder in out.iterdir() if out.is_dir() else []:
        match = CLIP_NAME.match(folder.name)
        if match and folder.is_dir():
            job = by_video.get((match.group("source"), match.group("video")))
            if job is not None and job.key in pending:
                shutil.rmtree(folder)


def _remove_temporary(out: Path, started: float) -> None:
    """Temporary files (atomic_path's) older than this run: left by a killed one."""
    for folder in (out, out / BOOKKEEPING, out / BOOKKEEPING / "videos", out / BOOKKEEPING / "timings"):
        for path in folder.iterdir() if folder.is_dir() else []:
            if path.is_file() and TEMPORARY.match(path.name) and path.stat().st_mtime < started:
                path.unlink(missing_ok=True)


# ---------------------------------------------------------------------------------------------------------------------
# Workers and progress


def _run_pool(todo: list[VideoJob], out: Path, options: BatchOptions, commit, bar) -> None:
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    context = multiprocessing.get_context("spawn")  # torch and ONNX Runtime threads do not survive a fork
    messages = context.Queue()
    with ProcessPoolExecutor(options.workers, mp_context=context, initializer=_start_worker,
                             initargs=(options.settings, messages, options.workers)) as pool:
        running = {pool.submit(_worker_process, job, str(out), options.frames): job for job in todo}
        try:
            while running:
                finished, _ = wait(running, timeout=0.25, return_when=FIRST_COMPLETED)
                _drain(messages, bar)
                for future in finished:
                    job = running.pop(future)
                    commit(job, future.result())
                    bar.finish(job)
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)  # the videos not started stay unrecorded
            raise


_WORKER: dict[str, Any] = {}


def _start_worker(settings: AnnotateSettings, messages, workers: int) -> None:
    import torch

    torch.set_num_threads(max(1, (os.cpu_count() or 1) // workers))
    _WORKER["annotator"] = Annotator(settings)
    _WORKER["messages"] = messages


def _worker_process(job: VideoJob, out: str, frames: bool) -> dict[str, Any]:
    messages = _WORKER["messages"]

    def report(stage: str, done: int, total: int) -> None:
        messages.put((job.key, stage, done, total))

    messages.put((job.key, "start", 0, 1))
    return process_video(job, Path(out), _WORKER["annotator"], frames, report)


def _drain(messages, bar) -> None:
    import queue

    while True:
        try:
            key, stage, done, total = messages.get_nowait()
        except queue.Empty:
            return
        bar.stage(key, stage, done, total)


def summary_lines(summary: BatchSummary, out: Path) -> Iterable[str]:
    yield (f"{len(summary.done)} videos annotated, {len(summary.failed)} failed, {len(summary.skipped)} already "
           f"done{f', {summary.other_shards} in other shards' if summary.other_shards else ''}; {summary.clips} clips "
           f"-> {out}")
    for key, reason in summary.failed:
        yield f"  failed: {key}: {reason}"
    if summary.failed_before:
        yield (f"  {len(summary.failed_before)} recorded as failed by an earlier run (annotate them again with "
               "--retry-failed)")
    if summary.seconds > 0 and summary.video_seconds > 0:
        yield (f"  {summary.video_seconds:.1f} s of video in {summary.seconds:.1f} s "
               f"({summary.video_seconds / summary.seconds:.2f} video-seconds per second)")
