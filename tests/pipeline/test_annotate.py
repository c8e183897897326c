"""`python -m mit_annotator annotate` on a folder of real and synthetic conversations (4 people; 2 then 3 people
across a shot cut; interact_11.mp4; a corrupt file; one without audio): every clip follows the selection rules, checked on the written
files; who speaks matches the ground truth; the report; reruns; covog reads the dataset through its reader."""

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from annotate_inputs import conversation, corrupt, link, panning, save_video, shot_cut, without_audio
from conftest import MODELS, PACK_ROOT, shared_path
from tiny_covog import perturb

import covog.train as train
from covog.models.model import CovOGModel
from covog.training.dataset import ConversationClips
from mit_annotator.core import media
from mit_annotator.core.records import SpeakingActivity, VideoTracks
from mit_annotator.core.segments import MERGE_SHORTER_THAN_S, speak_listen_segments
from mit_annotator.dataset.clips import RULES, clip_camera_motion
from mit_annotator.dataset.reader import open_clip
from mit_annotator.pipeline.batch import find_videos, in_shard
from mit_annotator.vision.motion import BackgroundFlow, background_motion
from mit_annotator.vision.tracking import box_iou

TALKS = {"talk4": (4, 13)}  # name: (people, seed), 10 s; cut.mp4 is 10 s of 2 people (seed 11) then 10 s of 3 (12)
MIN_FRAMES, MAX_FRAMES, FACE_1080P, MAX_MOTION = 125, 375, 64.0, 0.02  # the defaults: the paper's and ours


def annotate(*args, code=0):
    """The annotate command; its exit code must be `code` (0: every video annotated, 1: some failed) unless None."""
    done = subprocess.run([sys.executable, "-m", "mit_annotator", "annotate", *map(str, args)], capture_output=True,
                          text=True, cwd=PACK_ROOT, timeout=900)
    if code is not None:
        assert done.returncode == code, done.stderr[-3000:]
    return done


def fast_models(*extra):
    return ["--det-model", shared_path("models", "yolox_nano.onnx"), "--pose-model", "none", "--models", MODELS,
            *extra]


@pytest.fixture(scope="module")
def inputs(speech, tmp_path_factory):
    folder = tmp_path_factory.mktemp("videos")
    truths = {}
    for name, (people, seed) in TALKS.items():
        talk = conversation(speech, people, 10.0, seed)
        save_video(folder / f"{name}.mp4", talk.frames(), talk.mix)
        truths[name] = talk
    first, second, cut = shot_cut(speech, folder / "cut.mp4")
    truths["cut"] = (first, second, cut)
    corrupt(folder / "talk4.mp4", folder / "broken.mp4")
    without_audio(speech, folder / "silent.mp4")
    link(shared_path("video", "interact_11.mp4"), folder / "interact_11.mp4")
    return folder, truths


@pytest.fixture(scope="module")
def dataset(inputs, tmp_path_factory):
    folder, _ = inputs
    out = tmp_path_factory.mktemp("dataset") / "mit"
    done = annotate(folder, "--out", out, "--source", "test", *fast_models("--speakers", "lips"), code=1)
    return out, done.stdout


def records(out):
    return {path.stem: json.loads(path.read_text()) for path in (out / ".annotate" / "videos").glob("*.json")}


def test_the_folder_becomes_clips_and_recorded_failures(dataset, inputs):
    out, stdout = dataset
    assert "3 videos annotated, 2 failed, 0 already done" in stdout
    manifest = json.loads((out / "manifest.json").read_text())
    folders = sorted(p.name for p in out.iterdir() if p.is_dir() and not p.name.startswith("."))
    assert [row["folder"] for row in manifest["clips"]] == folders  # one row per clip, nothing else
    by_video = {}
    for row in manifest["clips"]:
        by_video.setdefault(row["video"], []).append(row)
    for name, (people, _) in TALKS.items():
        assert [row["people"] for row in by_video[name]] == [people], name
    assert [row["people"] for row in by_video["interact_11"]] == [2]
    cut = inputs[1]["cut"][2]
    assert sorted((row["people"], row["start"] >= cut) for row in by_video["cut"]) == [(2, False), (3, True)]
    found = records(out)
    assert found["test_broken"]["status"] == "failed" and "truncated" in found["test_broken"]["reason"]
    assert found["test_silent"]["status"] == "failed" and "no audio stream" in found["test_silent"]["reason"]
    for record in found.values():  # every candidate is a clip or a rejection with its reasons
        clips = {(c["start"], c["end"]) for c in record["clips"]}
        for candidate in record.get("candidates", []):
            assert set(candidate["reasons"]) <= set(RULES) and len(candidate["details"]) == len(candidate["reasons"])
            assert ((candidate["start"], candidate["end"]) in clips) == (not candidate["reasons"])
    assert not list(out.rglob("*.partial*"))
    staging = out / ".annotate" / "staging"
    assert not staging.exists() or not any(staging.iterdir())


def test_the_dataset_is_readable_by_others_as_any_file_written_there(dataset, tmp_path):
    """Files are written under temporary names (mkstemp: mode 0600) and renamed: each must end with the mode a plain
    open() gives under the same umask, or a dataset shared with a team is unreadable to them."""
    out, _ = dataset
    umask = os.umask(0)
    os.umask(umask)
    plain = tmp_path / "plain"
    plain.write_text("")
    expected = stat.S_IMODE(plain.stat().st_mode)
    assert expected == 0o666 & ~umask
    written = [p for p in out.rglob("*") if p.is_file()]
    assert len(written) > 20
    modes = {p.relative_to(out).as_posix(): oct(stat.S_IMODE(p.stat().st_mode)) for p in written}
    assert {name: mode for name, mode in modes.items() if mode != oct(expected)} == {}


def clip_folders(out):
    manifest = json.loads((out / "manifest.json").read_text())
    return [(out / row["folder"], row) for row in manifest["clips"]]


def test_every_clip_follows_the_selection_rules_in_its_files(dataset, inputs):
    out, _ = dataset
    found = records(out)
    for folder, row in clip_folders(out):
        meta = json.loads((folder / "meta.json").read_text())
        info = json.loads((folder / "speaker_info.json").read_text())
        with_box = json.loads((folder / "speaker_info_with_instance_bbox.json").read_text())
        merged = json.loads((folder / "speaker_info_merged.json").read_text())
        frames = len(info[0]["speaking_score"])
        start, end = row["start"], row["end"]
        # the name, the period and the counts agree
        assert folder.name == f"test_{row['video']}_{start:06d}to{end:06d}" and frames == end - start
        assert meta["period"] == [start / 25, end / 25] and meta["num_speaker"] == len(info) == len(merged)
        assert meta["source"] == "test" and meta["video"] == row["video"]
        # exactly 2, 3 or 4 people; 5 s at least, 15 s at most
        assert len(info) in (2, 3, 4) and MIN_FRAMES <= frames <= MAX_FRAMES
        video = media.probe(folder / "video.mp4")
        assert video.num_frames == frames and video.fps == pytest.approx(25.0) and video.has_audio
        assert len(list((folder / "pose").glob("*.json"))) == frames == len(list((folder / "pose_frame").glob("*")))
        # faces: each on average at least 64x64 px at 1080p, the smallest over half the largest; hidden <= 20%
        height = meta["height"]
        areas = []
        for entry in info:
            boxes = np.array([b for b in entry["face_track"] if b is not None])
            areas.append(np.mean((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])))
            assert sum(b is None for b in entry["face_track"]) <= 0.2 * frames
        assert min(areas) >= (FACE_1080P * height / 1080) ** 2 and min(areas) / max(areas) > 0.5
        # one shot: within one of the shots found, and on one side of the cut the test video was made with
        shots = found[f"test_{row['video']}"]["media"]["shots"]
        assert any(a <= start and end <= b for a, b in shots), (folder.name, shots)
        if row["video"] == "cut":
            assert end <= inputs[1]["cut"][2] or start >= inputs[1]["cut"][2], folder.name
        # the background stays still, measured again on the clip's own video
        tracks = VideoTracks.load(folder / "tracks.json")
        flow = BackgroundFlow()
        for frame in media.iter_frames(folder / "video.mp4", fps=25.0):
            flow.add(frame)
        motion = clip_camera_motion(background_motion(flow.flows, flow.points, tracks), 0, frames, 25.0,
                                    meta["width"])
        assert motion is None or motion <= MAX_MOTION
        # the speaker files say the same, with the person's box over the clip and the 1-based clip range
        for plain, boxed, track in zip(info, with_box, tracks.tracks):
            assert {k: v for k, v in boxed.items() if k not in ("instance_bbox", "clip_range")} == plain
            assert boxed["clip_range"] == [1, frames]
            assert boxed["instance_bbox"] == pytest.approx([*track.boxes[:, :2].min(0), *track.boxes[:, 2:].max(0)],
                                                           abs=0.01)
            assert plain["period_num"] == len(plain["speak"]) + len(plain["listen"])
        # the clip's audio is the source's, cut to the clip
        source = media.read_audio(found[f"test_{row['video']}"]["input"], 16000)[start * 640:end * 640]
        clip_audio = media.read_audio(folder / "video.mp4", 16000)[:len(source)]
        assert np.corrcoef(source[:len(clip_audio)], clip_audio)[0, 1] > 0.9


def truth_for(inputs, row):
    truths = inputs[1]
    if row["video"] in TALKS:
        return truths[row["video"]], row["start"]
    if row["video"] == "cut":
        first, second, cut = truths["cut"]
        return (first, row["start"]) if row["start"] < cut else (second, row["start"] - cut)
    return None, None


def segment_frames(segments, frames):
    inside = np.zeros(frames, bool)
    for start, end in segments:
        inside[start:end] = True
    return inside


def test_who_speaks_matches_the_ground_truth(dataset, inputs):
    """Frame-level F1 of 'speaking' over every person of every synthetic clip, as the scores say (speaking_score > 0)
    and as the written speak segments say: speaker_info.json's against the truth, the merged file's against the truth
    merged the same way (pieces under 1 s folded into their neighbours); people are matched to the truth by their
    boxes. Speak and listen segments cover every frame once."""
    out, _ = dataset
    counts = {"scores": [0, 0, 0], "speak": [0, 0, 0], "merged speak": [0, 0, 0]}
    for folder, row in clip_folders(out):
        talk, offset = truth_for(inputs, row)
        if talk is None:
            continue
        tracks = VideoTracks.load(folder / "tracks.json")
        info = json.loads((folder / "speaker_info.json").read_text())
        merged = json.loads((folder / "speaker_info_merged.json").read_text())
        for entry, folded, track in zip(info, merged, tracks.tracks):
            overlap = [np.mean([box_iou(track.boxes[r], t.boxes[offset + f]) for r, f in enumerate(track.frames)])
                       for t in talk.tracks.tracks]
            assert max(overlap) > 0.6
            scores = talk.speaking.people[int(np.argmax(overlap))].scores[offset:offset + row["frames"]]
            truth = scores > 0
            folded_truth = segment_frames(speak_listen_segments(scores, 25.0, MERGE_SHORTER_THAN_S)[0], row["frames"])
            for written in (entry, folded):
                covered = segment_frames(written["speak"], row["frames"]).astype(int) + segment_frames(
                    written["listen"], row["frames"])
                assert (covered == 1).all(), folder.name
            for name, said, expected in (("scores", np.asarray(entry["speaking_score"]) > 0, truth),
                                         ("speak", segment_frames(entry["speak"], row["frames"]), truth),
                                         ("merged speak", segment_frames(folded["speak"], row["frames"]),
                                          folded_truth)):
                tally = counts[name]
                tally[0] += (said & expected).sum()
                tally[1] += (said & ~expected).sum()
                tally[2] += (~said & expected).sum()
    f1 = {name: 2 * tp / (2 * tp + fp + fn) for name, (tp, fp, fn) in counts.items()}
    assert min(f1.values()) >= 0.9, f1


def test_our_records_beside_the_mit_files_say_the_same(dataset):
    out, _ = dataset
    for folder, row in clip_folders(out):
        clip = open_clip(folder)
        assert clip.layout == "mit" and clip.num_frames == row["frames"]
        ours, read = VideoTracks.load(folder / "tracks.json"), clip.tracks()
        speaking = SpeakingActivity.load(folder / "speaking.json")
        for track, again, person, said in zip(ours.tracks, read.tracks, speaking.people, clip.speaking().people):
            np.testing.assert_allclose(again.boxes, track.boxes, atol=0.01)
            np.testing.assert_allclose(again.face_boxes, track.face_boxes, atol=0.01)  # no keypoints: face_track
            assert not again.keypoint_scores.any()  # annotated without a pose model: nothing seen
            np.testing.assert_allclose(said.scores, person.scores, atol=1e-4)
            assert [tuple(s) for s in person.speak] == said.speak or person.speak  # merged in ours, not in the file
        assert (folder / "pose_frame" / "output_0001.png").is_file()


def test_report(dataset):
    out, _ = dataset
    done = subprocess.run([sys.executable, "-m", "mit_annotator", "report", str(out)], capture_output=True, text=True,
                          cwd=PACK_ROOT, timeout=300)
    assert done.returncode == 0, done.stderr
    report = json.loads((out / "report.json").read_text())
    manifest = json.loads((out / "manifest.json").read_text())
    assert report["clips"] == len(manifest["clips"]) == 4
    assert report["clips_per_people"] == {"2": 2, "3": 1, "4": 1}
    assert report["hours"] == pytest.approx(sum(r["seconds"] for r in manifest["clips"]) / 3600, abs=1e-4)
    assert report["videos"] == {"done": 3, "failed": 2, "hours_annotated": pytest.approx(report["videos"]
                                                                                          ["hours_annotated"])}
    assert sum(report["speaking_ratio_per_person"]["counts"]) == sum(r["people"] for r in manifest["clips"])
    assert report["rejections"] == {rule: sum(v["rejections"].get(rule, 0) for v in manifest["videos"])
                                    for rule in RULES}
    assert {f["video"] for f in report["failed"]} == {"test_broken", "test_silent"}
    image = cv2.imread(str(out / "report.png"))
    assert image.shape == (640, 1440, 3) and (image < 128).any()
    assert (out / "report.svg").read_text().count("<svg") == 1
    assert "4 clips" in done.stdout and "failed: test_silent" in done.stdout


def test_a_rerun_skips_what_is_done_and_retries_failures_when_asked(dataset, inputs):
    out, _ = dataset
    folder, _ = inputs
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file() and "timings" not in p.parts}
    again = annotate(folder, "--out", out, "--source", "test", *fast_models("--speakers", "lips"))
    assert "0 videos annotated, 0 failed, 5 already done" in again.stdout
    assert "2 recorded as failed by an earlier run (annotate them again with --retry-failed)" in again.stdout
    retried = annotate(folder, "--out", out, "--source", "test", "--retry-failed", *fast_models("--speakers", "lips"),
                       code=1)
    assert "0 videos annotated, 2 failed, 3 already done" in retried.stdout
    after = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file() and "timings" not in p.parts}
    changed = {p.relative_to(out).as_posix() for p in before if after.get(p) != before[p]}
    assert changed <= {"manifest.json", ".annotate/videos/test_broken.json", ".annotate/videos/test_silent.json",
                       "report.json", "report.png", "report.svg", ".annotate/lock"}, changed  # every run takes the lock
    other = annotate(folder, "--out", out, "--source", "test", *fast_models("--speakers", "asd"), code=None)
    assert other.returncode == 2 and "was annotated with other settings (speakers differ)" in other.stderr


def test_covog_trains_on_the_dataset_through_its_reader(dataset, tmp_path, capsys):
    out, _ = dataset
    items = ConversationClips(out, (128, 64), stage=1)
    assert len(items) == 4 and sorted(items.people_counts) == [2, 3, 4]
    item = items[(0, 1)]
    assert item["target_poses"].shape[0] == items.clips[0].people and not item["target_poses"].any()  # no poses
    model = perturb(CovOGModel.random("tiny")).save(tmp_path / "covog")
    code = train.main(["--stage", "2", "--data", str(out), "--model", str(model), "--out", str(tmp_path / "run"),
                       "--steps", "1", "--clip-frames", "4", "--width", "128", "--height", "64", "--workers", "0"])
    assert code == 0, capsys.readouterr().err
    assert (tmp_path / "run" / "checkpoint-1").is_dir()
    assert all((folder / "audio_features.safetensors").is_file() for folder, _ in clip_folders(out))


# ---------------------------------------------------------------------------------------------------------------------
# Smaller cases


def test_a_panning_camera_is_rejected(speech, tmp_path):
    panning(speech, tmp_path / "videos" / "pan.mp4")
    out = tmp_path / "dataset"
    annotate(tmp_path / "videos", "--out", out, *fast_models("--speakers", "lips"))
    [record] = records(out).values()
    assert record["status"] == "done" and record["clips"] == []
    long_enough = [c for c in record["candidates"] if c["end"] - c["start"] >= MIN_FRAMES and len(c["track_ids"]) == 2]
    assert long_enough and all("camera_motion" in c["reasons"] for c in long_enough)
    # 0.4 px per frame at 25 fps across 320 px: 0.031 frame widths per second
    assert [c["measures"]["camera_motion"] for c in long_enough] == [pytest.approx(0.031, abs=0.004)] * len(
        long_enough)


def test_shards_split_the_inputs_the_same_way_everywhere(inputs, tmp_path):
    folder, _ = inputs
    jobs = find_videos(folder, "test")
    assert [j.video for j in jobs] == ["broken", "cut", "interact_11", "silent", "talk4"]
    for count in (2, 3):
        parts = [[j.key for j in jobs if in_shard(j, (i, count))] for i in range(count)]
        assert sorted(sum(parts, [])) == sorted(j.key for j in jobs)  # each video in exactly one shard
        reversed_list = [[j.key for j in reversed(jobs) if in_shard(j, (i, count))] for i in range(count)]
        assert [sorted(p) for p in parts] == [sorted(p) for p in reversed_list]  # the list's order does not matter
    listed = tmp_path / "list.txt"
    listed.write_text(f"# two videos\n{folder / 'talk4.mp4'}\n\nmissing.mp4\n")
    assert [(j.video, Path(j.path).name) for j in find_videos(listed)] == [("talk4", "talk4.mp4"),
                                                                          ("missing", "missing.mp4")]


@pytest.mark.parametrize("args, message", [
    (lambda tmp: [tmp / "nothing", "--out", tmp / "out"], "nothing: no such file or folder"),
    (lambda tmp: [tmp, "--out", tmp / "out"], ": no videos in this folder"),
    (lambda tmp: [tmp / "list.txt", "--out", tmp / "out", "--shard", "2/2"], "--shard '2/2': expected i/n"),
])
def test_bad_input_is_one_clear_line(tmp_path, args, message):
    (tmp_path / "list.txt").write_text("a.mp4\n")
    done = annotate(*args(tmp_path), code=None)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith("error: ") and message in done.stderr
    assert not (tmp_path / "out").exists()


def test_a_listed_video_that_is_missing_is_recorded_and_the_batch_goes_on(tmp_path):
    (tmp_path / "list.txt").write_text("gone.mp4\n")
    done = annotate(tmp_path / "list.txt", "--out", tmp_path / "out", *fast_models("--speakers", "lips"), code=1)
    assert "0 videos annotated, 1 failed" in done.stdout and "gone.mp4: no such file" in done.stdout
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["clips"] == [] and manifest["videos"][0]["status"] == "failed"


def test_active_speaker_scores_on_real_footage(tmp_path):
    """interact_11 with LR-ASD (found in the models folder's lr_asd/): the right person speaks first, then the
    left one, as its turns file says; the scores rest on the active-speaker model."""
    shared_path("models", "lr_asd", "finetuning_TalkSet.model")
    videos = tmp_path / "videos"
    videos.mkdir()
    link(shared_path("video", "interact_11.mp4"), videos / "interact_11.mp4")
    annotate(videos, "--out", tmp_path / "out", *fast_models())
    [folder] = [p for p in (tmp_path / "out").iterdir() if p.name.endswith("to000213")]
    speaking = SpeakingActivity.load(folder / "speaking.json")
    tracks = VideoTracks.load(folder / "tracks.json")
    assert {p.evidence for p in speaking.people} == {"active_speaker"}
    turns = json.loads(shared_path("video", "interact_11.turns.json").read_text())["speaking_seconds"]
    right = max(tracks.tracks, key=lambda t: t.boxes[:, 0].mean())
    left = min(tracks.tracks, key=lambda t: t.boxes[:, 0].mean())
    frames = np.arange(213) / 25.0
    for side, track in (("left", left), ("right", right)):
        truth = np.zeros(213, bool)
        for start, end in turns[side]:
            truth |= (frames >= start) & (frames < end)
        said = speaking.person(track.track_id).scores > 0
        assert (said == truth).mean() > 0.85, side
