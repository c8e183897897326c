"""One video of the batch: annotated, its clips written into the dataset's staging folder, its record returned.

The same function runs in the batch's own process, in its worker processes and as a Ray task (`cluster`); the batch
commits what it returns (`batch.commit_video`).
"""

from __future__ import annotations

import errno
import logging
import shutil
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mit_annotator.core import media
from mit_annotator.core.documents import FORMAT_VERSION
from mit_annotator.core.progress import StageProgress
from mit_annotator.dataset.export import write_clip
from mit_annotator.dataset.layout import clip_folder_name
from mit_annotator.pipeline.annotate import Annotator, VideoAnnotation, VideoFailed, annotate_video

log = logging.getLogger("mit_annotator")

BOOKKEEPING = ".annotate"
VIDEO_RECORD_FORMAT = "mit_annotator.video_record"
DONE, FAILED = "done", "failed"
# errors of the machine, not of a video: recording the video as failed would make a rerun skip it for good
TRANSIENT = {errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EPERM, errno.EROFS}


def is_transient(error: BaseException) -> bool:
    return isinstance(error, OSError) and error.errno in TRANSIENT


@dataclass(frozen=True)
class VideoJob:
    path: str
    source: str
    video: str  # the name in clip folders

    @property
    def key(self) -> str:
        return f"{self.source}_{self.video}"


def process_video(job: VideoJob, out: Path, annotator: Annotator, frames: bool = False,
                  report: StageProgress | None = None) -> dict[str, Any]:
    """Annotate one video and write its clips into the staging folder; returns its record (done or failed)."""
    staging = staging_folder(out, job.key)
    shutil.rmtree(staging, ignore_errors=True)
    try:
        result = annotate_video(job.path, annotator, report)
        clips = []
        started = time.perf_counter()
        for k, clip in enumerate(result.clips):
            if report:
                report("export", k, len(result.clips))
            name = clip_folder_name(job.source, job.video, clip.candidate.start, clip.candidate.end)
            write_clip(staging / name, job.path, clip, job.source, job.video, frames=frames,
                       provenance={"input": job.path}, preset=annotator.settings.encode_preset)
            clips.append(_clip_row(name, job, clip))
        result.seconds["export"] = time.perf_counter() - started
        return _record(job, DONE, None, result, clips)
    except (VideoFailed, media.MediaError) as error:
        return _record(job, FAILED, str(error))
    except Exception as error:  # a bug or an unforeseen input: recorded, and the batch goes on
        if is_transient(error):
            shutil.rmtree(staging, ignore_errors=True)
            raise  # the machine's, not the video's: stops the batch, nothing recorded
        log.error("[mit_annotator] %s failed:\n%s", job.path, traceback.format_exc())
        return _record(job, FAILED, f"{type(error).__name__}: {error}")


def staging_folder(out: Path, key: str) -> Path:
    return out / BOOKKEEPING / "staging" / key


def _record(job: VideoJob, status: str, reason: str | None, result: VideoAnnotation | None = None,
            clips: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    record = {"format": VIDEO_RECORD_FORMAT, "version": FORMAT_VERSION, "key": job.key, "source": job.source,
              "video": job.video, "input": job.path, "status": status, "reason": reason, "clips": clips or []}
    if result is not None:
        info = result.info
        record["media"] = {"seconds": round(result.duration, 3), "width": info.width, "height": info.height,
                           "source_fps": round(info.fps, 3), "frames": result.tracks.num_frames,
                           "shots": [list(s) for s in result.tracks.shots], "people": len(result.tracks.tracks)}
        record["candidates"] = [c.to_dict() for c in result.candidates]
        record["seconds"] = {k: round(v, 4) for k, v in result.seconds.items()}
    return record


def _clip_row(folder: str, job: VideoJob, clip) -> dict[str, Any]:
    fps, count = clip.tracks.fps, clip.tracks.num_frames
    ratios = [round(sum(e - s for s, e in p.speak) / count, 4) for p in clip.speaking.people]
    return {"folder": folder, "source": job.source, "video": job.video, "start": clip.candidate.start,
            "end": clip.candidate.end, "people": len(clip.candidate.track_ids), "frames": count,
            "seconds": round(count / fps, 3), "speaking_ratio": round(sum(ratios) / len(ratios), 4),
            "speaking_ratios": ratios, "face_px_1080p": clip.candidate.measures.get("face_px_1080p"),
            "camera_motion": clip.candidate.measures.get("camera_motion")}
