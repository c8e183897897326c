"""python -m covog.generate end to end on a tiny random CovOG and a short generated conversation."""

import re

import numpy as np
import pytest
import torch
from PIL import Image
from tiny_covog import perturb

from covog import generate as cli
from covog.models.encoders import audio_features
from covog.models.model import CovOGModel
from covog.pipeline.conditioning import PoseRenders, build_conditions
from covog.pipeline.sampler import generate
from mit_annotator.core import media
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


class Recorder:
    """Wraps the sampler the CLI calls: keeps the conditions and the video it made."""

    def __init__(self, monkeypatch):
        monkeypatch.setattr(cli, "generate", self)

    def __call__(self, model, conditions, settings, progress=None):
        self.conditions = conditions
        self.video = generate(model, conditions, settings, progress=progress)
        return self.video


def aligned(a, b, max_lag=800):
    """The best normalised correlation of two signals over lags up to `max_lag` samples (AAC's priming delay)."""
    n = min(len(a), len(b)) - max_lag
    a = a - a.mean()
    best = 0.0
    for lag in range(-max_lag, max_lag + 1, 4):
        x, y = (a[lag:lag + n], b[:n]) if lag >= 0 else (a[:n], b[-lag:-lag + n])
        best = max(best, float(x @ y / (np.linalg.norm(x) * np.linalg.norm(y) + 1e-12)))
    return best


def check_video_and_audio(out, recorder, c, expected_audio):
    """The mp4 holds the sampler's frames and `expected_audio` (16 kHz), as long as the video."""
    info = media.probe(out)
    assert (info.width, info.height, info.num_frames) == (128, 64, c.tracks.num_frames)
    assert info.has_audio and abs(info.fps - 25) < 0.01
    written = media.read_frames(out).astype(np.float32)
    made = recorder.video.permute(0, 2, 3, 1).numpy() * 255
    assert made.std() > 10  # the tiny model's frames are busy texture: H.264 keeps their gist, not every level
    same = np.corrcoef(written.reshape(len(written), -1), made.reshape(len(made), -1))[:len(made), len(made):]
    assert (np.diag(same) > 0.8).all(), np.diag(same)  # frame k of the file is the sampler's frame k
    heard = media.read_audio(out, 16000)
    assert abs(len(heard) - 16000 * c.tracks.num_frames / 25) < 16000 * 0.05  # cut to the video (1.2 s)
    assert aligned(heard, expected_audio[:len(heard)]) > 0.95


def test_mixed_audio_with_the_assignment(model_folder, conversation, tmp_path, monkeypatch):
    c, paths = conversation
    recorder = Recorder(monkeypatch)
    out = tmp_path / "out.mp4"
    code = run(["--model", model_folder, "--reference", paths["reference"], "--poses", paths["tracks"],
                "--audio", paths["video"], "--assignment", paths["speaking"], "--out", out, *FAST])
    assert code == 0
    check_video_and_audio(out, recorder, c, c.mix)
    for p, track in enumerate(c.tracks.tracks):  # the assignment's scores, person by person
        np.testing.assert_allclose(recorder.conditions.speaking_scores[:, p].numpy(),
                                   c.speaking.person(track.track_id).scores, atol=1e-4)


def test_one_audio_file_per_person(model_folder, conversation, tmp_path, monkeypatch):
    """Each file is its person's voice (tracks' order): person p's audio features are file p's, their speaking
    scores follow the speech in file p, and the mp4 carries the files summed."""
    c, paths = conversation
    recorder = Recorder(monkeypatch)
    out = tmp_path / "out.mp4"
    code = run(["--model", model_folder, "--reference", paths["reference"], "--poses", paths["tracks"],
                "--person-audio", paths["person_0_audio"], paths["person_1_audio"], "--out", out, *FAST])
    assert code == 0
    check_video_and_audio(out, recorder, c, c.person_audio[0] + c.person_audio[1])
    got = recorder.conditions
    model = CovOGModel.load(model_folder)
    for p in range(2):
        own = audio_features(model.audio_encoder, media.read_audio(paths[f"person_{p}_audio"]), c.tracks.num_frames,
                             c.tracks.fps)
        torch.testing.assert_close(got.audio_features[p], own)
        truth = c.speaking.person(c.tracks.tracks[p].track_id).scores > 0
        agree = float(((got.speaking_scores[:, p].numpy() > 0) == truth).mean())
        assert agree > 0.8, (p, agree)
    assert got.speaking_scores[:, 1].max() > 0 and got.speaking_scores[:, 0].max() < 0  # only person 1 speaks


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
