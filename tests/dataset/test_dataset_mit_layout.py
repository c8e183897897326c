"""The released MIT dataset's layout, written here by hand file by file as the authors' pipeline writes it and their
training code reads it, loaded through the one reader that covog.train uses; and the errors a broken clip gives."""

import json
import shutil

import cv2
import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from tiny_covog import perturb

import covog.train as train
from covog.models.model import CovOGModel
from covog.pipeline.conditioning import PoseRenders, face_masks
from covog.training.dataset import AUDIO_FEATURES_FILE, ConversationClips
from mit_annotator.core import media
from mit_annotator.core.keypoints import face_box_from_keypoints
from mit_annotator.core.segments import speak_listen_segments
from mit_annotator.dataset.reader import open_clip
from mit_annotator.synthetic import ConversationSpec, synthesize_conversation

SIZE = (128, 64)
START = 100  # the clip's first frame in its source video


@pytest.fixture(scope="module")
def conversation(speech):
    return synthesize_conversation(ConversationSpec(num_people=2, seconds=1.6, width=256, height=128, seed=4), speech)


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    folder = perturb(CovOGModel.random("tiny")).save(tmp_path_factory.mktemp("model") / "covog")
    return folder, CovOGModel.load(folder)


def released_clip(root, conversation, audio_shape=None, frames_as="png"):
    """A clip folder exactly as the published pipeline lays it out: frames/output_%04d.png (ffmpeg's numbering),
    pose/ (mmpose's instance_info, people in no particular order, no track ids), pose_frame/, speaker_info.json,
    speaker_info_merged.json, speaker_info_with_instance_bbox.json, meta.json and audio_embeding.pt."""
    count = conversation.spec.num_frames
    folder = root / f"test_0_{START:06d}to{START + count:06d}"
    for sub in ("frames", "pose", "pose_frame"):
        (folder / sub).mkdir(parents=True)
    tracks = conversation.tracks.tracks
    for k in range(count):
        name = f"output_{k + 1:04d}"
        if frames_as == "png":
            cv2.imwrite(str(folder / "frames" / f"{name}.png"), cv2.cvtColor(conversation.render_frame(k),
                                                                            cv2.COLOR_RGB2BGR))
        order = tracks if k % 2 == 0 else tracks[::-1]  # the detector lists people in any order
        instances = [{"keypoints": t.keypoints[k].tolist(), "keypoint_scores": t.keypoint_scores[k].tolist(),
                      "bbox": [t.boxes[k].tolist()], "bbox_score": 0.97} for t in order]
        (folder / "pose" / f"{name}.json").write_text(json.dumps({"instance_info": instances}))
        cv2.imwrite(str(folder / "pose_frame" / f"{name}.png"), np.zeros((128, 256, 3), np.uint8))
    if frames_as == "mp4":
        shutil.rmtree(folder / "frames")
        media.write_video(folder / "video.mp4", conversation.frames(), 25.0, conversation.mix, 16000)
    for merged, name in ((False, "speaker_info.json"), (True, "speaker_info_merged.json")):
        entries = []
        for person in conversation.speaking.people:
            speak, listen = speak_listen_segments(person.scores, 25.0, 1.0 if merged else None)
            entries.append({"face_track": conversation.tracks.track(person.track_id).face_boxes.tolist(),
                            "speak": [list(s) for s in speak], "listen": [list(s) for s in listen],
                            "period_num": len(speak) + len(listen), "speaking_score": person.scores.tolist()})
        (folder / name).write_text(json.dumps(entries, indent=4))
        if not merged:
            for entry, track in zip(entries, tracks):
                entry["instance_bbox"] = [*track.boxes[:, :2].min(axis=0).tolist(),
                                          *track.boxes[:, 2:].max(axis=0).tolist()]
                entry["clip_range"] = [1, count]
            (folder / "speaker_info_with_instance_bbox.json").write_text(json.dumps(entries, indent=4))
    (folder / "meta.json").write_text(json.dumps({"source": "test", "video": "0", "period": [START / 25,
                                                  (START + count) / 25], "num_speaker": 2,
                                                  "url": "https://example.org/0"}, indent=4))
    if audio_shape is not None:
        generator = torch.Generator().manual_seed(0)
        torch.save(torch.randn(count, *audio_shape, generator=generator), folder / "audio_embeding.pt")
    return folder


def test_released_clips_read_as_the_records_they_were_made_from(conversation, tmp_path):
    folder = released_clip(tmp_path, conversation)
    clip = open_clip(folder)
    assert (clip.layout, clip.num_frames, clip.people, clip.size, clip.fps) == ("mit", 40, 2, (256, 128), 25.0)
    tracks = clip.tracks()
    for person, truth in zip(tracks.tracks, conversation.tracks.tracks):  # found by instance_bbox, not list order
        assert np.array_equal(person.frames, np.arange(40))
        np.testing.assert_allclose(person.keypoints, truth.keypoints, atol=1e-4)
        np.testing.assert_allclose(person.boxes, truth.boxes, atol=1e-4)
        expected = np.stack([face_box_from_keypoints(k, s) for k, s in zip(truth.keypoints, truth.keypoint_scores)])
        np.testing.assert_allclose(person.face_boxes, expected, atol=1e-3)  # as the published training code does
    speaking = clip.speaking()
    for person, truth in zip(speaking.people, conversation.speaking.people):
        np.testing.assert_allclose(person.scores, truth.scores, atol=1e-6)
        assert person.speak == speak_listen_segments(truth.scores, 25.0)[0]
    frames = clip.read_frames(5, 8, (256, 128))
    assert np.array_equal(frames[1], conversation.render_frame(6))  # PNG is lossless
    # only the frames asked for are read
    partial = clip.tracks([3, 30])
    assert [list(t.frames) for t in partial.tracks] == [[3, 30], [3, 30]] and partial.num_frames == 40


def test_covog_training_items_from_a_released_clip(conversation, model, tmp_path):
    _, covog_model = model
    layers, dim = covog_model.audio_encoder.config.num_hidden_layers, covog_model.audio_encoder.config.hidden_size
    folder = released_clip(tmp_path, conversation, audio_shape=(layers, dim))
    truth = conversation.tracks
    stage1 = ConversationClips(tmp_path, SIZE, stage=1)
    item = stage1[(0, 7)]
    assert torch.equal(item["target_poses"], PoseRenders(truth, SIZE)[item["target_frame"]])
    expected = cv2.resize(conversation.render_frame(item["target_frame"]), SIZE, interpolation=cv2.INTER_AREA)
    assert torch.equal(item["target"], torch.from_numpy(expected).permute(2, 0, 1).float() / 255)
    stage2 = ConversationClips(tmp_path, SIZE, stage=2, clip_length=8)  # features from audio_embeding.pt
    released = torch.load(folder / "audio_embeding.pt", weights_only=True)
    assert torch.equal(load_file(folder / AUDIO_FEATURES_FILE)["audio_features"], released)
    item = stage2[(0, 3)]
    frames = item["frame_indices"]
    assert torch.equal(item["audio_features"], released[frames])
    scores = np.stack([p.scores for p in conversation.speaking.people], axis=1)[frames.numpy()]
    assert torch.equal(item["speaking_scores"], torch.from_numpy(scores))
    for factor, mask in face_masks(truth, range(frames[0], frames[-1] + 1, int(frames[1] - frames[0])),
                                   SIZE).items():
        assert torch.equal(item["face_masks"][factor], mask)
    # given the model's encoder too, the released features of its shape are used, not computed again
    (folder / AUDIO_FEATURES_FILE).unlink()
    ConversationClips(tmp_path, SIZE, stage=2, clip_length=8, audio_encoder=covog_model.audio_encoder)
    assert torch.equal(load_file(folder / AUDIO_FEATURES_FILE)["audio_features"], released)


def test_a_released_clip_with_video_mp4_instead_of_frames(conversation, model, tmp_path):
    _, covog_model = model
    released_clip(tmp_path, conversation, frames_as="mp4")
    dataset = ConversationClips(tmp_path, SIZE, stage=2, clip_length=8, audio_encoder=covog_model.audio_encoder)
    item = dataset[(0, 1)]
    assert item["frames"].shape == (8, 3, 64, 128) and item["audio_features"].shape[0] == 8


def one_clear_error(tmp_path, capsys, model_folder, stage="1", extra=()):
    code = train.main(["--stage", stage, "--data", str(tmp_path), "--model", str(model_folder), "--out",
                       str(tmp_path / "out"), "--width", "128", "--height", "64", "--workers", "0", *extra])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err and err.strip().splitlines()[-1].startswith("error: ")
    return err


def test_a_missing_pose_frame_names_the_clip_and_the_file(conversation, model, tmp_path, capsys):
    folder = released_clip(tmp_path, conversation)
    (folder / "pose" / "output_0007.json").unlink()
    err = one_clear_error(tmp_path, capsys, model[0])
    assert f"{folder}: pose/output_0007.json is missing (frame 7 of the 40" in err
    (folder / "pose" / "output_0040.json").rename(folder / "pose" / "output_0007.json")  # no gap, one too few
    err = one_clear_error(tmp_path, capsys, model[0])
    assert f"{folder}: pose/output_0040.json is missing" in err


@pytest.mark.parametrize("breakage, message", [
    (lambda text: text[:-20], "speaker_info_with_instance_bbox.json is not valid JSON"),
    (lambda text: json.dumps([{**e, "speaking_score": "high"} for e in json.loads(text)]),
     "speaker_info_with_instance_bbox.json, person 0: speaking_score must be a non-empty list of numbers"),
    (lambda text: json.dumps([{k: v for k, v in e.items() if k != "speak"} for e in json.loads(text)]),
     "speaker_info_with_instance_bbox.json, person 0: missing speak"),
    (lambda text: json.dumps([e if k == 0 else {**e, "face_track": e["face_track"][:-1]}
                              for k, e in enumerate(json.loads(text))]),
     "speaker_info_with_instance_bbox.json, person 1: face_track must hold one box per frame (40, as speaking_score)"
     ),
    (lambda text: json.dumps({"people": json.loads(text)}),
     "speaker_info_with_instance_bbox.json must be a non-empty list with one entry per person"),
])
def test_a_malformed_speaker_info_names_the_clip(conversation, model, tmp_path, capsys, breakage, message):
    folder = released_clip(tmp_path, conversation)
    path = folder / "speaker_info_with_instance_bbox.json"
    path.write_text(breakage(path.read_text()))
    err = one_clear_error(tmp_path, capsys, model[0])
    assert f"{folder}: {message}" in err, err


@pytest.mark.parametrize("breakage, message", [
    (lambda text: text[:-20], "speaker_info.json is not valid JSON"),
    (lambda text: json.dumps([{**e, "listen": [[0, 1000]]} for e in json.loads(text)]),
     "speaker_info.json, person 0: listen must be a list of [start, end] frame ranges within 0..40"),
    (lambda text: json.dumps([json.loads(text)[0], json.loads(text)[1]["speaking_score"]]),
     "speaker_info.json, person 1: expected an object, got list"),
])
def test_a_malformed_speaker_info_names_the_clip_when_it_is_the_only_speaker_file(conversation, model, tmp_path,
                                                                                   capsys, breakage, message):
    """Without speaker_info_with_instance_bbox.json the reader takes speaker_info.json (people found in pose/ by
    their face_track, whatever order pose/ lists them in): whole, it reads as the conversation it was made from;
    broken, the error names the clip."""
    folder = released_clip(tmp_path, conversation)
    (folder / "speaker_info_with_instance_bbox.json").unlink()
    clip = open_clip(folder)
    assert clip.info_file.name == "speaker_info.json" and clip.people == 2
    for person, truth in zip(clip.tracks([0, 21]).tracks, conversation.tracks.tracks):
        np.testing.assert_allclose(person.boxes, truth.boxes[[0, 21]], atol=1e-4)
    path = folder / "speaker_info.json"
    path.write_text(breakage(path.read_text()))
    err = one_clear_error(tmp_path, capsys, model[0])
    assert f"{folder}: {message}" in err, err


def test_a_clip_shorter_than_the_training_window_names_the_clip(speech, model, tmp_path, capsys):
    short = synthesize_conversation(ConversationSpec(num_people=2, seconds=1.0, width=256, height=128, seed=4), speech)
    folder = released_clip(tmp_path, short)
    err = one_clear_error(tmp_path, capsys, model[0], stage="2", extra=["--clip-frames", "32"])
    assert f"{folder}: 25 frames; stage 2 needs at least 32" in err


def test_stage2_without_audio_names_the_clip(conversation, model, tmp_path, capsys):
    folder = released_clip(tmp_path, conversation)  # frames/ and no audio_embeding.pt
    err = one_clear_error(tmp_path, capsys, model[0], stage="2", extra=["--clip-frames", "8"])
    assert f"{folder}: no audio to compute its features from: neither video.mp4 nor a audio_embeding.pt" in err


def test_an_incomplete_released_clip_names_what_is_missing(conversation, model, tmp_path, capsys):
    folder = released_clip(tmp_path, conversation)
    shutil.rmtree(folder / "pose")
    err = one_clear_error(tmp_path, capsys, model[0])
    assert f"{folder}: incomplete clip folder, missing pose/" in err


def test_the_frame_size_is_read_from_meta_as_width_then_height(conversation, tmp_path):
    """Our exported clips' meta.json states the frame size (256 wide, 128 high here); the reader takes it as
    (width, height), and the tracks it builds have that frame."""
    folder = released_clip(tmp_path, conversation, frames_as="mp4")
    meta = json.loads((folder / "meta.json").read_text())
    (folder / "meta.json").write_text(json.dumps({**meta, "width": 256, "height": 128}))
    clip = open_clip(folder)
    tracks = clip.tracks([0])
    assert clip.size == (256, 128) and (tracks.width, tracks.height) == (256, 128)
