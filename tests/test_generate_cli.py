"""python -m covog.generate end to end on a tiny random CovOG and a short generated conversation."""

import re

import numpy as np
import pytest
import torch
from PIL import Image
from test_covog_model import perturb

from covog import generate as cli
from covog.conditioning import PoseRenders, build_conditions
from covog.model import CovOGModel
from mit_annotator import media
from mit_annotator.synthetic import ConversationSpec, synthesize_conversation

FAST = ["--steps", "1", "--window", "16", "--overlap", "4", "--width", "128", "--height", "64"]


@pytest.fixture(scope="module")
def model_folder(tmp_path_factory):
    return perturb(CovOGModel.random("tiny")).save(tmp_path_factory.mktemp("model") / "covog")


@pytest.fixture(scope="module")
def conversation(speech, tmp_path_factory):
    spec = ConversationSpec(num_people=2, seconds=1.2, width=256, height=128, seed=4)
    c = synthesize_conversation(spec, speech)
    folder = tmp_path_factory.mktemp("conversation")
    paths = c.save(folder)
    paths["reference"] = folder / "reference.png"
    Image.fromarray(next(iter(c.frames()))).save(paths["reference"])
    return c, paths


def run(args):
    return cli.main([str(a) for a in args])


def test_mixed_audio_with_the_assignment(model_folder, conversation, tmp_path):
    c, paths = conversation
    out = tmp_path / "out.mp4"
    code = run(["--model", model_folder, "--reference", paths["reference"], "--poses", paths["tracks"],
                "--audio", paths["video"], "--assignment", paths["speaking"], "--out", out, *FAST])
    assert code == 0
    info = media.probe(out)
    assert (info.width, info.height, info.num_frames) == (128, 64, c.tracks.num_frames)
    assert info.has_audio and abs(info.fps - 25) < 0.01


def test_one_audio_file_per_person(model_folder, conversation, tmp_path):
    _, paths = conversation
    out = tmp_path / "out.mp4"
    code = run(["--model", model_folder, "--reference", paths["reference"], "--poses", paths["tracks"],
                "--person-audio", paths["person_0_audio"], paths["person_1_audio"], "--out", out, *FAST])
    assert code == 0 and out.is_file()


@pytest.mark.parametrize("change, message", [
    (lambda p, tmp: ["--audio", p["video"]], "2 people share one audio track"),
    (lambda p, tmp: ["--person-audio", p["person_0_audio"]], "1 --person-audio files for 2 people"),
    (lambda p, tmp: ["--audio", long_audio(p, tmp), "--assignment", p["speaking"]],
     "pose sequence .* is shorter than the audio"),
    (lambda p, tmp: ["--audio", p["video"], "--assignment", p["speaking"], "--reference", p["tracks"]],
     "cannot be read as an image"),
    (lambda p, tmp: ["--audio", p["video"], "--assignment", p["speaking"], "--width", "100"], "multiples of 64"),
    (lambda p, tmp: ["--audio", p["video"], "--assignment", p["speaking"], "--model", tmp],
     "not a CovOG model folder"),
])
def test_bad_input_is_one_clear_line_and_no_file(model_folder, conversation, tmp_path, capsys, change, message):
    _, paths = conversation
    out = tmp_path / "out.mp4"
    args = ["--model", model_folder, "--reference", paths["reference"], "--poses", paths["tracks"], *FAST,
            "--out", out, *change(paths, tmp_path)]
    assert run(args) == 2
    err = capsys.readouterr().err
    assert err.strip().splitlines()[-1].startswith("error: ") and "Traceback" not in err
    assert re.search(message, err), err
    assert not list(tmp_path.glob("out*"))


def long_audio(paths, folder):
    samples = media.read_audio(paths["video"])
    return media.write_wav(folder / "long.wav", np.concatenate([samples, samples]), 16000)


def test_pose_renders_are_drawn_per_slice_and_masked_to_each_person(conversation):
    c, _ = conversation
    renders = PoseRenders(c.tracks, (128, 64))
    assert renders.shape == (c.tracks.num_frames, 2, 3, 64, 128)
    window = renders[2:5]
    assert window.shape == (3, 2, 3, 64, 128) and window.dtype == torch.uint8
    for p, track in enumerate(c.tracks.tracks):
        drawn = window[0, p].sum(dim=0).nonzero()
        x1, y1, x2, y2 = track.boxes[track.row_of(2)] * np.array([128 / 256, 64 / 128] * 2)
        assert len(drawn) > 20
        assert drawn[:, 1].min() >= int(x1) and drawn[:, 1].max() <= np.ceil(x2)  # nothing outside the box
        assert drawn[:, 0].min() >= int(y1) and drawn[:, 0].max() <= np.ceil(y2)


def test_build_conditions_from_the_annotators_records(model_folder, conversation):
    c, _ = conversation
    model = CovOGModel.load(model_folder)
    reference = np.zeros((64, 128, 3), np.uint8)
    conditions = build_conditions(model, c.tracks, reference, c.mix, c.speaking, (128, 64))
    conditions.check()
    frames = c.tracks.num_frames
    assert conditions.audio_features.shape[:1] == (frames,)
    per_person = build_conditions(model, c.tracks, reference, list(c.person_audio), c.speaking, (128, 64))
    assert per_person.audio_features.shape[:2] == (2, frames)
    with pytest.raises(ValueError, match="reference image must be 128x64"):
        build_conditions(model, c.tracks, np.zeros((10, 10, 3), np.uint8), c.mix, c.speaking, (128, 64))
