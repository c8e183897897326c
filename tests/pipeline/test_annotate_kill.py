"""The annotate batch killed (SIGKILL) at random moments, again and again, then run to the end: the dataset is the one
an uninterrupted run writes, file for file and byte for byte; after every kill no file under a final name is partial
and every committed video has all its clips. Two worker processes write that same dataset too."""

import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import pytest
from annotate_inputs import conversation, save_video, without_audio
from conftest import MODELS, PACK_ROOT, shared_path

from mit_annotator.core import media
from mit_annotator.core.records import Diarization
from mit_annotator.pipeline.batch import TEMPORARY

KILLS = 10
CLIP_FILES = {"video.mp4", "speaker_info.json", "speaker_info_merged.json", "speaker_info_with_instance_bbox.json",
              "meta.json", "tracks.json", "speaking.json", "diarization.rttm", "clip.json", "pose", "pose_frame"}


@pytest.fixture(scope="module")
def videos(speech, tmp_path_factory):
    folder = tmp_path_factory.mktemp("videos")
    for seed in (41, 42):  # 2.4 s of two people each: two clips of 1.2 s with the settings below
        talk = conversation(speech, 2, 2.4, seed, size=(256, 144))
        save_video(folder / f"talk{seed}.mp4", talk.frames(), talk.mix)
    without_audio(speech, folder / "silent.mp4")
    return folder


def command(videos, out):
    return [sys.executable, "-m", "mit_annotator", "annotate", str(videos), "--out", str(out), "--source", "kill",
            "--det-model", str(shared_path("models", "yolox_nano.onnx")), "--pose-model", "none", "--models",
            str(MODELS), "--speakers", "lips", "--min-seconds", "1", "--max-seconds", "2"]


def files(out):
    """Every file of the dataset by relative path (the timings log left out: it says how long each run took)."""
    return {p.relative_to(out).as_posix(): p for p in sorted(out.rglob("*"))
            if p.is_file() and "timings" not in p.relative_to(out).parts}


def assert_nothing_partial(out):
    for name, path in files(out).items():
        if TEMPORARY.match(path.name):
            continue  # a temporary file: the next run removes it
        if path.suffix == ".json":
            json.loads(path.read_text())
        elif path.suffix == ".mp4":
            info = media.probe(path)
            assert info.has_audio and len(media.read_frames(path)) == info.num_frames, name
        elif path.suffix == ".png":
            assert cv2.imread(str(path)) is not None, name
        elif path.suffix == ".rttm":
            Diarization.load_rttm(path)
    for record in (out / ".annotate" / "videos").glob("*.json") if (out / ".annotate" / "videos").is_dir() else []:
        for row in json.loads(record.read_text())["clips"]:  # a committed video has every clip, whole
            folder = out / row["folder"]
            assert {p.name for p in folder.iterdir()} >= CLIP_FILES, folder
            assert len(list((folder / "pose").glob("*.json"))) == row["frames"]


@pytest.fixture(scope="module")
def reference(videos, tmp_path_factory):
    """The uninterrupted run, and how long it took."""
    out = tmp_path_factory.mktemp("reference") / "dataset"
    started = time.monotonic()
    done = subprocess.run(command(videos, out), capture_output=True, text=True, cwd=PACK_ROOT, timeout=600)
    whole = time.monotonic() - started
    assert done.returncode == 1, done.stderr[-2000:]
    assert "2 videos annotated, 1 failed" in done.stdout and "4 clips" in done.stdout
    return out, whole


def assert_same_dataset(found_in, expected_in, note=None):
    expected, found = files(expected_in), files(found_in)
    assert sorted(found) == sorted(expected), note  # same clips, same files, nothing left over or twice
    for name, path in expected.items():
        assert found[name].read_bytes() == path.read_bytes(), name


def test_two_worker_processes_write_the_dataset_one_writes(videos, reference, tmp_path):
    expected, _ = reference
    out = tmp_path / "pool"
    done = subprocess.run([*command(videos, out), "--workers", "2"], capture_output=True, text=True, cwd=PACK_ROOT,
                          timeout=600)
    assert done.returncode == 1, done.stderr[-2000:]
    assert "2 videos annotated, 1 failed" in done.stdout and "4 clips" in done.stdout
    assert_same_dataset(out, expected)


def test_what_a_killed_run_leaves_is_cleaned_up_and_redone(videos, reference, tmp_path):
    """The states a kill can leave, made on purpose: a commit cut short (clips moved, no record), a video half
    written in staging, temporary files beside the manifest and the records."""
    expected, _ = reference
    out = shutil.copytree(expected, tmp_path / "dataset", symlinks=True)
    record = out / ".annotate" / "videos" / "kill_talk42.json"
    clips = [row["folder"] for row in json.loads(record.read_text())["clips"]]
    record.unlink()  # killed between moving the clips into place and writing the record
    (out / "manifest.json").unlink()
    staging = out / ".annotate" / "staging" / "kill_talk41"
    shutil.copytree(out / clips[0], staging / clips[0])  # killed while writing another video's clips
    (staging / clips[0] / "meta.json").write_text('{"source": "ki')
    for folder in (out, out / ".annotate" / "videos"):
        (folder / ".manifest.x1y2.partial.json").write_text("{")  # atomic_path's names, cut short
    (out / clips[1] / "video.mp4").write_bytes(b"")  # a clip folder of the uncommitted video is not trusted
    old = time.time() - 60
    for path in out.rglob("*"):
        os.utime(path, (old, old), follow_symlinks=False)  # all of it from before the next run
    done = subprocess.run(command(videos, out), capture_output=True, text=True, cwd=PACK_ROOT, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "1 videos annotated, 0 failed, 2 already done" in done.stdout
    assert_same_dataset(out, expected)
    assert not [p for p in out.rglob("*") if TEMPORARY.match(p.name)]


def test_killed_at_random_moments_the_dataset_ends_as_an_uninterrupted_run_makes_it(videos, reference, tmp_path):
    expected, whole = reference

    out, rng, kills, moments = tmp_path / "killed", random.Random(7), 0, []
    for _ in range(40):
        if kills == KILLS:
            break
        moment = rng.uniform(0.1, 0.8) * whole
        process = subprocess.Popen(command(videos, out), cwd=PACK_ROOT, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL)
        try:
            process.wait(timeout=moment)
            shutil.rmtree(out)  # it finished first: start again from nothing, so the next kill interrupts work
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
            process.wait()
            kills += 1
            moments.append(round(moment, 2))
            if out.exists():
                assert_nothing_partial(out)
    assert kills == KILLS, moments

    finished = subprocess.run(command(videos, out), capture_output=True, text=True, cwd=PACK_ROOT, timeout=600)
    assert finished.returncode in (0, 1), finished.stderr[-2000:]  # 1 if the silent video failed in this run
    assert_same_dataset(out, expected, moments)
    assert not [p for p in out.rglob("*") if TEMPORARY.match(p.name)], moments


class Stopped(BaseException):
    """The batch stopped dead at a step of its commit protocol (a BaseException: no `except Exception` catches it)."""


BATCH_MODULES = {"mit_annotator.pipeline.batch", "mit_annotator.pipeline.video_job"}


class StopAtStep:
    """Counts the batch's file-system steps (the os.replace and shutil.rmtree calls made in batch.py and
    video_job.py, and batch.py's save_json writes) and stops the batch before, or just after, step `stop_at`."""

    def __init__(self, monkeypatch, stop_at=None, after=False):
        self.steps, self.stop_at, self.after = [], stop_at, after
        from mit_annotator.pipeline import batch

        for owner, name in ((os, "replace"), (shutil, "rmtree"), (batch, "save_json")):
            monkeypatch.setattr(owner, name, self.wrap(getattr(owner, name), name))

    def wrap(self, real, name):
        def step(*args, **kwargs):
            if sys._getframe(1).f_globals.get("__name__") not in BATCH_MODULES:
                return real(*args, **kwargs)  # not a step of the batch (a file written inside a clip, say)
            target = args[1] if name in ("replace", "save_json") else args[0]
            self.steps.append(f"{name} {Path(target).name}")
            if len(self.steps) == self.stop_at and not self.after:
                raise Stopped(self.steps[-1])
            done = real(*args, **kwargs)
            if len(self.steps) == self.stop_at:
                raise Stopped(self.steps[-1])
            return done
        return step


@pytest.fixture(scope="module")
def annotations_once(videos):
    """annotate_video's result (or failure) per video, computed once: the runs below differ only in where they stop,
    so each one reuses the annotation and runs the rest (clip export, commit, manifest) for real."""
    from mit_annotator.pipeline import video_job

    real, cache = video_job.annotate_video, {}

    def cached(path, annotator, report=None):
        if path not in cache:
            try:
                cache[path] = real(path, annotator, report)
            except Exception as error:  # noqa: BLE001 -- replayed as it was raised
                cache[path] = error
        if isinstance(cache[path], Exception):
            raise cache[path]
        return cache[path]
    return cached


def annotate_in_process(videos, out, monkeypatch, annotations_once):
    from mit_annotator.pipeline import cli, video_job

    monkeypatch.setattr(video_job, "annotate_video", annotations_once)
    return cli.main([str(a) for a in command(videos, out)[3:]])


def test_stopped_before_or_after_each_commit_step_a_rerun_ends_with_the_dataset(videos, reference, tmp_path,
                                                                                  monkeypatch, annotations_once):
    """Deterministic fault injection: the batch stops at each step of its commit protocol in turn (before it, then just
    after it); every time, nothing under a final name is partial, and one more run ends with the uninterrupted run's
    dataset, byte for byte."""
    expected, _ = reference
    with monkeypatch.context() as patch:
        counter = StopAtStep(patch)
        assert annotate_in_process(videos, tmp_path / "counted", patch, annotations_once) == 1
    steps = counter.steps
    assert sum(s.startswith("replace ") for s in steps) == 4 and "save_json manifest.json" in steps  # 4 clips moved
    assert_same_dataset(tmp_path / "counted", expected)
    for stop_at in range(1, len(steps) + 1):
        for after in (False, True):
            out = tmp_path / f"stopped{stop_at}{'after' if after else 'before'}"
            with monkeypatch.context() as patch:
                StopAtStep(patch, stop_at, after)
                with pytest.raises(Stopped, match=re.escape(steps[stop_at - 1].split(" ", 1)[1])):
                    annotate_in_process(videos, out, patch, annotations_once)
            assert_nothing_partial(out)
            with monkeypatch.context() as patch:
                assert annotate_in_process(videos, out, patch, annotations_once) in (0, 1)
            assert_same_dataset(out, expected, (stop_at, after, steps[stop_at - 1]))
            shutil.rmtree(out)


# ---------------------------------------------------------------------------------------------------------------------
# One writer per dataset, and a full disk


def test_a_second_run_on_a_dataset_being_written_stops_and_names_the_first(videos, reference, tmp_path, capsys,
                                                                          monkeypatch, annotations_once):
    """Two runs into one --out once lost clips silently (the second's clean-up deleted the first's staging). While a
    run holds the dataset, another stops before touching it, naming the holder; the lock goes with the holder."""
    from mit_annotator.pipeline.batch import dataset_lock

    expected, _ = reference
    out = tmp_path / "dataset"
    with dataset_lock(out):
        assert annotate_in_process(videos, out, monkeypatch, annotations_once) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"error: {out}: another annotate run (pid {os.getpid()} on ") and err.count("\n") == 1
        assert "is writing this dataset: wait for it to end, or choose another --out" in err
        other_process = subprocess.run(command(videos, out), capture_output=True, text=True, cwd=PACK_ROOT,
                                       timeout=600)
        assert other_process.returncode == 2 and f"(pid {os.getpid()} on " in other_process.stderr
        assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*")) == [
            ".annotate", ".annotate/lock", ".annotate/lock.owner"]  # nothing else was written
    assert annotate_in_process(videos, out, monkeypatch, annotations_once) == 1
    assert_same_dataset(out, expected)
    assert not (out / ".annotate" / "lock.owner").exists()


def test_two_runs_started_together_write_the_dataset_one_run_writes(videos, reference, tmp_path):
    expected, _ = reference
    out = tmp_path / "dataset"
    runs = [subprocess.Popen(command(videos, out), cwd=PACK_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True) for _ in range(2)]
    done = [(run.pid, run.returncode, *run.communicate(timeout=600)) for run in runs]
    done = [(pid, run.returncode, stdout, stderr) for run, (pid, _, stdout, stderr) in zip(runs, done)]
    winner, loser = sorted(done, key=lambda d: d[1])  # exit 1: the one that ran (the silent video fails), 2: stopped
    assert (winner[1], loser[1]) == (1, 2), [d[3][-1000:] for d in done]
    assert "2 videos annotated, 1 failed" in winner[2]
    assert f"another annotate run (pid {winner[0]} on " in loser[3] and "Traceback" not in loser[3]
    assert_same_dataset(out, expected)


class FullDisk:
    """The disk fills after `room` of the batch's renames into place (atomic_path's and the commit's): every later
    one fails with ENOSPC, as a write on a full disk does, until `free()`."""

    def __init__(self, monkeypatch, room):
        self.room, self.used, self.full = room, 0, True
        real = os.replace

        def replace(source, target, *args, **kwargs):
            self.used += 1
            if self.full and self.used > self.room:
                raise OSError(28, "No space left on device", str(target))
            return real(source, target, *args, **kwargs)
        monkeypatch.setattr(os, "replace", replace)


def test_a_full_disk_stops_the_batch_and_once_freed_a_rerun_completes_the_dataset(videos, reference, tmp_path,
                                                                                  capsys, monkeypatch,
                                                                                  annotations_once):
    """A full disk once became a permanent "failed" verdict for every video (and exit 0): a rerun after space
    returned printed "0 failed, 4 already done" with no clips. Now the batch stops, records nothing unfinished, and
    the plain rerun completes the dataset, wherever the disk filled."""
    expected, _ = reference
    with monkeypatch.context() as patch:
        counter = FullDisk(patch, room=10**9)
        assert annotate_in_process(videos, tmp_path / "counted", patch, annotations_once) == 1
    renames = counter.used
    assert renames > 20
    for room in sorted({0, 1, renames // 5, renames // 2, renames - 3, renames - 1}):
        out = tmp_path / f"full{room}"
        with monkeypatch.context() as patch:
            FullDisk(patch, room)
            code = annotate_in_process(videos, out, patch, annotations_once)
        err = capsys.readouterr().err
        last = err.splitlines()[-1]  # after the progress bar's lines
        assert code == 2 and "Traceback" not in err, (room, err)
        assert last.startswith("error: stopped: No space left on device (") and "run the same command again" in last
        videos_recorded = out / ".annotate" / "videos"
        for record in videos_recorded.glob("*.json") if videos_recorded.is_dir() else []:
            found = json.loads(record.read_text())
            assert found["status"] == "done" or "no audio stream" in found["reason"], (room, found)
        assert_nothing_partial(out)
        with monkeypatch.context() as patch:
            assert annotate_in_process(videos, out, patch, annotations_once) in (0, 1)
        assert_same_dataset(out, expected, room)
        shutil.rmtree(out)


def mount_tmpfs(folder, size, options=""):
    folder.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}{options}", "tmpfs", str(folder)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({mounted.stderr.strip() or 'mount failed'}); the injected full disk "
                    "above covers the same protocol")


def test_a_real_full_disk_that_frees_ends_with_the_dataset(videos, reference, tmp_path):
    """A 3 MB tmpfs, filled by another file so the run hits the real ENOSPC part way; the file removed, the same
    command completes the dataset."""
    expected, _ = reference
    size = sum(p.stat().st_size for p in files(expected).values())
    disk = tmp_path / "disk"
    mount_tmpfs(disk, "3m")
    try:
        free = shutil.disk_usage(disk).free
        assert size < free, f"the dataset ({size} bytes) must fit the 3 MB disk"
        ballast = disk / "other.bin"
        ballast.write_bytes(b"\0" * (free - size // 3))  # room for a third of the dataset
        out = disk / "dataset"
        stopped = subprocess.run(command(videos, out), capture_output=True, text=True, cwd=PACK_ROOT, timeout=600)
        assert stopped.returncode == 2 and "Traceback" not in stopped.stderr, stopped.stderr[-2000:]
        assert "No space left on device" in stopped.stderr
        ballast.unlink()
        rerun = subprocess.run(command(videos, out), capture_output=True, text=True, cwd=PACK_ROOT, timeout=600)
        assert rerun.returncode in (0, 1), rerun.stderr[-2000:]
        assert_same_dataset(out, expected)
    finally:
        subprocess.run(["umount", str(disk)], check=False)


def test_a_read_only_output_is_refused_before_any_work(videos, tmp_path):
    """A read-only --out once failed with a traceback after all the videos were annotated."""
    disk = tmp_path / "read-only"
    mount_tmpfs(disk, "1m", ",ro")
    try:
        started = time.monotonic()
        done = subprocess.run(command(videos, disk / "dataset"), capture_output=True, text=True, cwd=PACK_ROOT,
                              timeout=600)
        assert done.returncode == 2 and "Traceback" not in done.stderr
        assert done.stderr.strip().splitlines()[-1].endswith(
            f"argument --out: {disk / 'dataset'}: nothing can be written in {disk} (read-only or no permission)")
        assert time.monotonic() - started < 30  # refused at the start, not after the annotation
    finally:
        subprocess.run(["umount", str(disk)], check=False)
