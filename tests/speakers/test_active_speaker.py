"""LR-ASD: the network against the published arithmetic, the published preprocessing, scoring, and bad input."""

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import MODELS, PACK_ROOT, SHARED_DATA, shared_path

from mit_annotator.core import media
from mit_annotator.core.records import PersonTrack, VideoTracks
from mit_annotator.speakers.active_speaker import (
    ActiveSpeakerConfig,
    ActiveSpeakerError,
    ActiveSpeakerModel,
    active_speaker_scores,
    load_lr_asd,
)
from mit_annotator.speakers.asd_inputs import clip_mfcc, crop_face, face_clips, mfcc_features
from mit_annotator.speakers.lr_asd import LRASD

WEIGHTS = MODELS / "lr_asd" / "finetuning_TalkSet.model"
INTERACT = SHARED_DATA / "video" / "interact_11.mp4"


@pytest.fixture(scope="module")
def weights():
    return shared_path("models", "lr_asd", WEIGHTS.name)


@pytest.fixture(scope="module")
def model(weights):
    return ActiveSpeakerModel(weights, device="cpu", config=ActiveSpeakerConfig(precision="float32"))


def published_visual_block(x, block):
    """The published Visual_Block.forward with its 3-D convolutions, on (B, C, T, H, W)."""
    for conv, norm in ((block.s_1, block.s_norm_1), (block.s_2, block.s_norm_2), (block.t_1, block.t_norm_1),
                       (block.t_2, block.t_norm_2)):
        x = F.relu(norm(conv(x)))
    return x


def published_visual_frontend(network, faces):
    """forward_visual_frontend of the published ASD_Model, written out: (B, T, 112, 112) -> (B, T, 128)."""
    encoder = network.model.visualEncoder
    x = ((faces / 255 - 0.4161) / 0.1688).unsqueeze(1)
    x = F.max_pool3d(published_visual_block(x, encoder.block1), (1, 3, 3), (1, 2, 2), (0, 1, 1))
    x = F.max_pool3d(published_visual_block(x, encoder.block2), (1, 3, 3), (1, 2, 2), (0, 1, 1))
    x = published_visual_block(x, encoder.block3).transpose(1, 2)
    batch, frames, channels, height, width = x.shape
    return F.adaptive_max_pool2d(x.reshape(batch * frames, channels, height, width), 1).view(batch, frames, channels)


def test_the_released_weights_load_key_for_key(weights):
    network = load_lr_asd(weights)
    released = torch.load(weights, map_location="cpu", weights_only=True)
    assert set(network.state_dict()) == set(released) and len(released) == 168
    for key, value in released.items():
        assert torch.equal(network.state_dict()[key], value), key
    assert not network.training
    assert sum(p.numel() for n, p in network.named_parameters() if not n.startswith("lossV")) == 836_898  # 0.84 M


def test_frames_as_2d_convolutions_equal_the_published_3d_ones(weights):
    network = load_lr_asd(weights)
    faces = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (2, 9, 112, 112))).float()
    with torch.no_grad():
        np.testing.assert_allclose(network.encode_faces(faces), published_visual_frontend(network, faces),
                                   atol=1e-4, rtol=1e-4)


def _random_network(seed: int) -> LRASD:
    """LR-ASD with random weights and norm statistics (the released files' statistics are not random-like)."""
    torch.manual_seed(seed)
    network = LRASD().eval()
    with torch.no_grad():
        for module in network.modules():
            if isinstance(module, torch.nn.BatchNorm3d):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.2, 0.2)
    return network


def test_the_onnx_runtime_encoder_equals_the_network():
    """The ONNX graph the CPU runs: random weights and norm statistics, clips of 1 to 13 frames, odd batches."""
    network = _random_network(3)
    model = ActiveSpeakerModel.__new__(ActiveSpeakerModel)
    model.network, model.device, model.path = network, torch.device("cpu"), Path("random.model")
    model.config = ActiveSpeakerConfig(precision="float32")
    encode = model._face_encoder()
    assert encode != network.encode_faces  # the ONNX Runtime session
    rng = np.random.default_rng(3)
    for batch, frames in ((1, 1), (3, 2), (2, 13)):
        faces = torch.from_numpy(rng.integers(0, 256, (batch, frames, 112, 112))).float()
        with torch.no_grad():
            expected = published_visual_frontend(network, faces)
        assert expected.abs().max() > 0.1
        np.testing.assert_allclose(encode(faces), expected, atol=1e-4, rtol=1e-4)
    model.config = ActiveSpeakerConfig(onnx_runtime=False)
    assert model._face_encoder() == network.encode_faces


def test_scores_of_the_released_weights_equal_the_published_implementations(weights):
    """Values checked once against LR-ASD's own code (ASD_Model + lossAV, Columbia_test.py's loop) on these exact
    inputs, outside this repository (BENCHMARKS.md); they pin the network and its head."""
    rng = np.random.default_rng(7)
    faces = torch.from_numpy(rng.integers(0, 256, (1, 30, 112, 112))).float()
    mfcc = torch.from_numpy(rng.normal(0, 8, (1, 120, 13))).float()
    with torch.no_grad():
        scores = load_lr_asd(weights)(mfcc, faces)[0].numpy()
    np.testing.assert_allclose(scores[[0, 7, 15, 29]], [-1.45087, -2.21723, -1.97734, -0.79001], atol=2e-4)


def test_mfccs_are_python_speech_features_on_16_bit_values():
    from python_speech_features import mfcc

    samples = np.random.default_rng(1).normal(0, 0.1, 16000).astype(np.float32)
    expected = mfcc(np.clip(np.round(samples * 32768.0), -32768, 32767), 16000, numcep=13, winlen=0.025,
                    winstep=0.010)
    np.testing.assert_allclose(mfcc_features(samples), expected, rtol=1e-5, atol=1e-4)
    assert len(mfcc_features(samples)) == 99  # 1 s at 100 Hz (the last window does not fit)


def test_each_frame_gets_its_four_mfcc_frames():
    audio = np.random.default_rng(2).normal(0, 0.1, 16000 * 3).astype(np.float32)
    whole = mfcc_features(audio)
    clip = clip_mfcc(audio, start=10, frames=20)
    assert clip.shape == (80, 13)
    np.testing.assert_allclose(clip[1:], whole[41:120], rtol=1e-4, atol=1e-3)  # the same windows, 40 ms per frame
    at_end = clip_mfcc(audio, start=70, frames=5)  # the last frame's windows reach past the recording: silence
    assert at_end.shape == (20, 13) and np.isfinite(at_end).all()


def published_crop(frame_grey, x, y, s, crop_scale=0.40):
    """Columbia_test.py's crop_video for one frame, written out: pad the whole frame, cut, resize to 224, then
    evaluate_network's centre 112x112."""
    import cv2

    bsi = int(s * (1 + 2 * crop_scale))
    padded = np.pad(frame_grey, ((bsi, bsi), (bsi, bsi)), "constant", constant_values=(110, 110))
    my, mx = y + bsi, x + bsi
    face = padded[int(my - s):int(my + s * (1 + 2 * crop_scale)), int(mx - s * (1 + crop_scale)):
                  int(mx + s * (1 + crop_scale))]
    face = cv2.resize(face, (224, 224))
    return face[56:168, 56:168]


@pytest.mark.parametrize("x, y, s", [(160.3, 90.7, 30.2), (10.0, 5.0, 25.0), (310.0, 175.0, 40.0), (150.0, 100.0, 8.6)])
def test_crops_are_the_published_crops(x, y, s):
    grey = np.random.default_rng(3).integers(0, 256, (180, 320)).astype(np.uint8)
    np.testing.assert_array_equal(crop_face(grey, np.array([x, y]), s), published_crop(grey, x, y, s))


def tracks_with_faces(rows_by_track, num_frames=60, width=320, height=180):
    tracks = []
    for track_id, (frames, size) in rows_by_track.items():
        frames = np.asarray(frames)
        x = 60.0 + 120 * track_id + np.arange(len(frames))
        boxes = np.stack([x, np.full(len(frames), 40.0), x + size, np.full(len(frames), 40.0 + size)], axis=1)
        tracks.append(PersonTrack(track_id, frames, boxes, face_boxes=boxes))
    return VideoTracks(width, height, 25.0, num_frames, tracks, [(0, num_frames)])


def test_face_clips_bridge_short_gaps_split_long_ones_and_skip_tiny_faces():
    frames = list(range(0, 20)) + list(range(30, 40)) + list(range(51, 60))  # gaps of 10 and 11 missing frames
    clips = face_clips(tracks_with_faces({0: (frames, 30.0), 1: (range(5, 15), 12.0), 2: ([7], 40.0)}))
    spans = sorted((c.track_id, c.start, c.end) for c in clips)
    assert spans == [(0, 0, 40), (0, 51, 60), (2, 7, 8)]  # 10 missing frames bridged, 11 not; 12 px faces skipped
    bridged = next(c for c in clips if c.track_id == 0 and c.start == 0)
    assert np.allclose(bridged.sizes, 15.0)  # half the box side
    np.testing.assert_allclose(bridged.centres[19:31, 0], 75 + 19 + np.arange(12) / 11)  # filled in linearly


def test_the_encoders_run_in_chunks_as_one_pass(model):
    faces = np.random.default_rng(4).integers(0, 256, (70, 112, 112)).astype(np.uint8)
    config = ActiveSpeakerConfig(chunk_frames=25, precision="float32")
    chunked = ActiveSpeakerModel(model.path, device="cpu", config=config)
    with torch.no_grad():
        whole = model.network.encode_faces(torch.from_numpy(faces).float()[None])[0]
        start = model.network.encode_faces(torch.from_numpy(faces[:30]).float()[None])[0]
        pieces = chunked._encode_faces([faces, faces[:30]])
    assert chunked.config.chunk_frames - 18 == 7  # 7 frames kept per chunk: 10 chunks for the first clip
    np.testing.assert_allclose(pieces[0], whole, atol=1e-4, rtol=1e-4)
    np.testing.assert_allclose(pieces[1], start, atol=1e-4, rtol=1e-4)


def test_windows_of_each_duration_are_averaged(model):
    rng = np.random.default_rng(5)
    clip = (rng.integers(0, 256, (60, 112, 112)).astype(np.uint8), rng.normal(0, 8, (240, 13)).astype(np.float32))

    def scores(durations, exact):
        return ActiveSpeakerModel(model.path, device="cpu", config=ActiveSpeakerConfig(
            durations=durations, exact_windows=exact, precision="float32")).score_clips([clip])[0]

    np.testing.assert_allclose(scores((1, 2), True), (scores((1,), True) + scores((2,), True)) / 2, atol=1e-5)
    by_hand = []
    for lo in range(0, 60, 25):  # 1 s windows, the encoders run on each window alone
        faces = torch.from_numpy(clip[0][lo:lo + 25]).float()[None]
        with torch.no_grad():
            by_hand.append(model.network(torch.from_numpy(clip[1][4 * lo:4 * lo + 100])[None], faces)[0].numpy())
    np.testing.assert_allclose(scores((1,), True), np.concatenate(by_hand), atol=1e-5)
    shared, exact = scores((1, 2, 3), False), scores((1, 2, 3), True)
    assert not np.allclose(shared, exact, atol=1e-3)  # the shared encoders see past window edges
    assert np.abs(shared - exact).mean() < 0.1 * np.abs(exact).mean()


@pytest.fixture(scope="module")
def interact_faces():
    from mit_annotator.speakers.who_speaks import track_faces
    from mit_annotator.vision.faces import YuNetFaceDetector

    return track_faces(shared_path("video", INTERACT.name),
                       YuNetFaceDetector(shared_path("models", "face_detection_yunet.onnx")))


def test_the_speaker_scores_above_the_listener_on_real_footage(model, interact_faces):
    scores = active_speaker_scores(INTERACT, interact_faces, model)
    right, left = sorted(interact_faces.tracks, key=lambda t: -t.boxes[0, 0])
    first, second = slice(5, 95), slice(125, 205)  # the right person talks, then the left (interact_11.turns.json)
    assert np.nanmean(scores[right.track_id][first]) > np.nanmean(scores[left.track_id][first]) + 2
    assert np.nanmean(scores[left.track_id][second]) > np.nanmean(scores[right.track_id][second]) + 1
    assert np.nanmean(scores[right.track_id][first]) > 2 and np.nanmean(scores[left.track_id][first]) < 1


def test_bad_input_is_named(model, interact_faces, tmp_path):
    frames = media.read_frames(INTERACT, end=20, fps=25)
    silent = media.write_video(tmp_path / "silent.mp4", frames, 25.0)
    short = VideoTracks(interact_faces.width, interact_faces.height, 25.0, 20,
                        [PersonTrack(t.track_id, t.frames[:20], t.boxes[:20], face_boxes=t.face_boxes[:20])
                         for t in interact_faces.tracks], [(0, 20)])
    with pytest.raises(media.MediaError, match="silent.mp4: no audio stream"):
        active_speaker_scores(silent, short, model)
    at_24 = VideoTracks(832, 448, 24.0, 20, [], [(0, 20)])
    with pytest.raises(ActiveSpeakerError, match="at 24 fps; active-speaker scores need 25 fps"):
        active_speaker_scores(INTERACT, at_24, model)
    audio = media.read_audio(INTERACT, 16000)[:int(0.5 * 16000)]  # half a second for 20 frames
    scores = active_speaker_scores(INTERACT, short, model, audio=audio)
    for values in scores.values():
        assert np.isfinite(values[:12]).all() and np.isnan(values[12:]).all()
    one = VideoTracks(832, 448, 25.0, 20, [PersonTrack(0, [3], [[600, 70, 770, 280]], face_boxes=[[600, 70, 770,
                                                                                              280]])], [(0, 20)])
    assert np.isfinite(active_speaker_scores(INTERACT, one, model)[0][3])  # a single frame still gets a score
    with pytest.raises(ActiveSpeakerError, match="a face clip of 3 frames needs 12 MFCC frames, got 11"):
        model.score_clips([(np.zeros((3, 112, 112), np.uint8), np.zeros((11, 13), np.float32))])


def test_weights_files_that_are_not_lr_asd_are_refused(weights, tmp_path):
    truncated = tmp_path / "truncated.model"
    truncated.write_bytes(weights.read_bytes()[:100_000])
    with pytest.raises(ActiveSpeakerError, match="truncated.model: not a readable LR-ASD weights file"):
        load_lr_asd(truncated)
    other = tmp_path / "other.model"
    torch.save({"conv.weight": torch.zeros(3, 3)}, other)
    with pytest.raises(ActiveSpeakerError, match=r"other.model: not LR-ASD weights \(168 keys missing"):
        load_lr_asd(other)
    wrong_shape = tmp_path / "wrong_shape.safetensors"
    from safetensors.torch import save_file

    state = {k: v.clone() for k, v in LRASD().state_dict().items()}
    state["lossAV.FC.weight"] = torch.zeros(3, 128)
    save_file(state, wrong_shape)
    with pytest.raises(ActiveSpeakerError, match=r"1 of the wrong shape, e.g. \['lossAV.FC.weight'\]"):
        load_lr_asd(wrong_shape)

    class Payload:
        def __reduce__(self):
            return (print, ("this must never run",))

    pickled = tmp_path / "code.model"
    torch.save({"x": Payload()}, pickled)
    with pytest.raises(ActiveSpeakerError, match="code.model: not a readable LR-ASD weights file"):
        load_lr_asd(pickled)
    with pytest.raises(RuntimeError, match="no CUDA device") if not torch.cuda.is_available() else pytest.raises(
            ValueError):
        ActiveSpeakerModel(weights, device="cuda" if not torch.cuda.is_available() else "gpu")


def test_the_model_resolves_by_name(weights, monkeypatch, tmp_path):
    from mit_annotator.core.models import KNOWN_MODELS, ModelNotFoundError, resolve_model, sha256_of

    for name in ("lr_asd", "lr_asd_talkset"):
        path = resolve_model(name, weights.parent)
        assert path.parent == weights.parent and sha256_of(path) == KNOWN_MODELS[name].sha256
    assert resolve_model("lr_asd", weights.parent).name == "pretrain_AVA.model"  # the default
    monkeypatch.setenv("MIT_MODELS_DIR", str(tmp_path))
    with pytest.raises(ModelNotFoundError, match="pretrain_AVA.model.*github.com/Junhua-Liao/LR-ASD"):
        ActiveSpeakerModel("lr_asd")


@pytest.fixture(scope="module")
def calibration_clips():
    """The real face clips scripts/calibrate_lr_asd_int8.py calibrates on (from the shared data)."""
    import importlib.util

    shared_path("video", INTERACT.name)  # the shared data must be there (a failure under CI, else a skip)
    spec = importlib.util.spec_from_file_location("calibrate", PACK_ROOT / "scripts" /
                                                  "calibrate_lr_asd_int8.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    return script.calibration_clips(SHARED_DATA)


@pytest.mark.parametrize("name", ["lr_asd", "lr_asd_talkset"])
def test_int8_encoding_follows_the_float_network_within_its_steps(name, calibration_clips):
    """The released weights with their calibration: every convolution runs in integers, its weights in 7 bits
    (which no CPU's 16-bit sums overflow), and a real face clip is encoded within 2.7% of the float network
    (measured 2.1-2.4%; one weight scale per convolution instead of one per channel: 2.9-3.0%)."""
    import onnx
    import onnxruntime as ort
    from onnx import numpy_helper

    from mit_annotator.core.models import KNOWN_MODELS
    from mit_annotator.speakers.active_speaker import calibrate_int8
    from mit_annotator.speakers.lr_asd import ACTIVATIONS, visual_encoder_int8_onnx

    network = load_lr_asd(shared_path("models", "lr_asd", KNOWN_MODELS[name].filename))
    faces = calibration_clips[0][None].astype(np.float32)
    with torch.no_grad():
        expected = network.encode_faces(torch.from_numpy(faces)).numpy()
    maxima = calibrate_int8(network, calibration_clips[:1])
    assert len(maxima) == ACTIVATIONS and maxima[-1] == pytest.approx(expected.max(), rel=1e-5)
    graph = visual_encoder_int8_onnx(network, list(KNOWN_MODELS[name].int8_maxima))
    model = onnx.load_from_string(graph)
    ops = [node.op_type for node in model.graph.node]
    assert ops.count("QLinearConv") == ACTIVATIONS and "Conv" not in ops and "MaxPool" not in ops
    constants = {w.name: numpy_helper.to_array(w) for w in model.graph.initializer}
    output_steps = [float(constants[n.input[6]]) * 255 for n in model.graph.node if n.op_type == "QLinearConv"]
    assert output_steps == pytest.approx(KNOWN_MODELS[name].int8_maxima, rel=1e-6)  # each ReLU output its own range
    weights = [numpy_helper.to_array(w) for w in model.graph.initializer
               if w.data_type == onnx.TensorProto.INT8 and w.dims]
    assert len(weights) == 2 * ACTIVATIONS  # each convolution's weights and their zero points
    assert max(np.abs(w).max() for w in weights) == 63
    session = ort.InferenceSession(graph, providers=["CPUExecutionProvider"])
    encoded = session.run(None, {"faces": faces})[0]
    error = np.abs(encoded - expected).mean() / np.abs(expected).mean()
    assert 0.005 < error < 0.027
    with pytest.raises(ValueError, match="needs 12 positive maxima"):
        visual_encoder_int8_onnx(network, maxima[:-1])


def test_int8_needs_calibrated_weights_and_a_known_precision(tmp_path):
    from safetensors.torch import save_file

    with pytest.raises(ValueError, match="precision must be one of auto, float32, int8, got 'int4'"):
        ActiveSpeakerConfig(precision="int4")
    own = tmp_path / "own_finetune.safetensors"
    save_file({k: v.contiguous() for k, v in _random_network(1).state_dict().items()}, own)
    assert ActiveSpeakerModel(own, device="cpu").precision == "float32"  # auto: int8 where it can run
    with pytest.raises(ActiveSpeakerError, match=r"own_finetune.safetensors: no int8 calibration for these weights "
                                                 r"\(the released LR-ASD files have one: pretrain_AVA.model, "
                                                 r"finetuning_TalkSet.model\); use precision float32"):
        ActiveSpeakerModel(own, device="cpu", config=ActiveSpeakerConfig(precision="int8"))


def test_int8_runs_on_the_cpu_only_and_never_for_the_published_values(caplog):
    """Where int8 is asked for but cannot run, float32 does and the log says why; the calibration is not even
    looked up (the weights file here does not exist)."""
    model = ActiveSpeakerModel.__new__(ActiveSpeakerModel)
    model.network, model.path = _random_network(2), Path("missing.model")
    cases = [("cpu", dict(precision="int8", exact_windows=True), True), ("cuda", dict(precision="int8"), True),
             ("cuda", dict(precision="auto"), False), ("cpu", dict(precision="auto", onnx_runtime=False), False),
             ("cpu", dict(precision="float32"), False)]
    for device, settings, warned in cases:
        model.device, model.config = torch.device(device), ActiveSpeakerConfig(**settings)
        caplog.clear()
        assert model._int8_maxima() is None, (device, settings)
        assert ("int8 runs on the CPU and not with exact windows" in caplog.text) == warned, (device, settings)


def test_an_onnx_runtime_without_the_integer_operators_falls_back_to_float32(weights, monkeypatch, caplog):
    """auto: float32 and a warning saying why; int8 asked for: the error, naming the graph."""
    from mit_annotator.speakers import lr_asd

    monkeypatch.setattr(lr_asd, "visual_encoder_int8_onnx", lambda network, maxima: b"not an onnx graph")
    model = ActiveSpeakerModel(weights, device="cpu")
    assert model.precision == "float32" and "LR-ASD runs in float32: finetuning_TalkSet.model (visual encoder, " \
                                              "int8): not a usable ONNX model" in caplog.text
    faces = torch.zeros(1, 2, 112, 112)
    with torch.no_grad():
        np.testing.assert_allclose(model.encode_faces(faces), model.network.encode_faces(faces), atol=1e-4)
    with pytest.raises(ValueError, match=r"\(visual encoder, int8\): not a usable ONNX model"):
        ActiveSpeakerModel(weights, device="cpu", config=ActiveSpeakerConfig(precision="int8"))


def test_a_random_network_in_int8_runs_in_integers_close_to_float():
    """Without the shared data too: a random network calibrated on smooth random clips, then encoding others."""
    import onnxruntime as ort

    from mit_annotator.speakers.active_speaker import calibrate_int8
    from mit_annotator.speakers.lr_asd import visual_encoder_int8_onnx

    network = _random_network(5)
    rng = np.random.default_rng(5)
    smooth = np.cumsum(rng.normal(0, 6, (3, 12, 112, 112)), axis=1) + rng.integers(60, 200, (3, 1, 112, 112))
    faces = np.clip(smooth, 0, 255).astype(np.uint8)
    session = ort.InferenceSession(visual_encoder_int8_onnx(network, calibrate_int8(network, list(faces[:2]))),
                                   providers=["CPUExecutionProvider"])
    encoded = session.run(None, {"faces": faces[2:].astype(np.float32)})[0]
    with torch.no_grad():
        expected = network.encode_faces(torch.from_numpy(faces[2:]).float()).numpy()
    assert not np.array_equal(encoded, expected) and np.corrcoef(encoded.ravel(), expected.ravel())[0, 1] > 0.999


def test_the_registry_holds_the_calibration_the_script_measures(calibration_clips):
    """scripts/calibrate_lr_asd_int8.py on the shared real faces gives the maxima the registry ships."""
    from mit_annotator.core.models import KNOWN_MODELS
    from mit_annotator.speakers.active_speaker import calibrate_int8

    assert len(calibration_clips) >= 4 and sum(len(c) for c in calibration_clips) > 400
    for name in ("lr_asd", "lr_asd_talkset"):
        network = load_lr_asd(shared_path("models", "lr_asd", KNOWN_MODELS[name].filename))
        # within 1%: another CPU's face detector may move a crop by a pixel (measured here: within 0.2%)
        assert calibrate_int8(network, calibration_clips) == pytest.approx(KNOWN_MODELS[name].int8_maxima,
                                                                           rel=1e-2), name


def test_int8_scores_follow_float32_on_real_footage(model, interact_faces):
    """On the real two-person video, the released weights by default (auto) in int8: scores within 0.1 of
    float32's on average, of the same sign almost everywhere, and the speaker still above the listener."""
    int8 = ActiveSpeakerModel(model.path, device="cpu")
    assert int8.precision == "int8" and model.precision == "float32"
    assert ActiveSpeakerModel(model.path, device="cpu", config=ActiveSpeakerConfig(exact_windows=True)
                              ).precision == "float32"  # the published demo's values
    exact = active_speaker_scores(INTERACT, interact_faces, model)
    fast = active_speaker_scores(INTERACT, interact_faces, int8)
    for track_id, values in exact.items():
        seen = ~np.isnan(values)
        difference = np.abs(fast[track_id][seen] - values[seen])
        assert 0 < difference.mean() < 0.1 and difference.max() < 0.6
        assert np.mean(np.sign(fast[track_id][seen]) == np.sign(values[seen])) > 0.97
    right, left = sorted(interact_faces.tracks, key=lambda t: -t.boxes[0, 0])
    assert np.nanmean(fast[right.track_id][5:95]) > np.nanmean(fast[left.track_id][5:95]) + 2
    assert np.nanmean(fast[left.track_id][125:205]) > np.nanmean(fast[right.track_id][125:205]) + 1
