"""The annotate batch on Ray (a local cluster of 2 CPUs): the same per-video function as Ray tasks; the dataset is the
one the plain loop writes, byte for byte."""

import pytest
from annotate_inputs import conversation, save_video, without_audio
from conftest import IN_CI, MODELS, shared_path

from mit_annotator.dataset.clips import SelectionConfig
from mit_annotator.pipeline.annotate import AnnotateSettings
from mit_annotator.pipeline.batch import BatchOptions, find_videos, run_batch

try:
    import ray
except ImportError:
    if IN_CI:  # CI installs the cluster extra (scripts/setup.sh): a missing ray must not pass as a skip
        pytest.fail("ray is not installed: scripts/setup.sh installs it with the cluster extra", pytrace=False)
    pytest.skip("ray is not installed (pip install mit-covog[cluster])", allow_module_level=True)


@pytest.fixture(scope="module")
def videos(speech, tmp_path_factory):
    folder = tmp_path_factory.mktemp("videos")
    for seed in (51, 52):
        talk = conversation(speech, 2, 3.2, seed, size=(256, 144))
        save_video(folder / f"talk{seed}.mp4", talk.frames(), talk.mix)
    without_audio(speech, folder / "silent.mp4")
    return folder


def files(out):
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*"))
            if p.is_file() and "timings" not in p.relative_to(out).parts}


def test_ray_tasks_write_the_dataset_the_plain_loop_writes(videos, tmp_path):
    settings = AnnotateSettings(models_dir=str(MODELS), det_model=str(shared_path("models", "yolox_nano.onnx")),
                                pose_model="none", speakers="lips",
                                selection=SelectionConfig(min_seconds=1.2, max_seconds=2.4))
    jobs = find_videos(videos, "ray")
    plain = run_batch(jobs, tmp_path / "plain", BatchOptions(settings=settings, progress=False))
    assert (len(plain.done), len(plain.failed), plain.clips) == (2, 1, 4)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        on_ray = run_batch(jobs, tmp_path / "ray", BatchOptions(settings=settings, backend="ray", workers=2,
                                                                progress=False))
        assert ray.is_initialized()  # a cluster started by the caller is left running
    finally:
        ray.shutdown()
    assert (sorted(on_ray.done), on_ray.failed, on_ray.clips) == (sorted(plain.done), plain.failed, 4)
    expected, found = files(tmp_path / "plain"), files(tmp_path / "ray")
    assert sorted(found) == sorted(expected)
    assert [name for name in expected if found[name] != expected[name]] == []
