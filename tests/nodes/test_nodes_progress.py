"""The long nodes inside ComfyUI: each drives ComfyUI's progress bar step by step and stops within one step of the
user's Cancel (ComfyUI's own InterruptProcessingException, so ComfyUI reports an interruption, not an error).
ComfyUI's comfy.utils and comfy.model_management are stood in for by recorders. And each node's bad input (no people,
audio shorter than the video, more voices than people, a person the tracks do not hold) gives a ValueError whose
message names the input and says what to do: ComfyUI shows that message on the node."""

import sys
import types

import numpy as np
import pytest
import torch
from conftest import MODELS, PACK_ROOT, shared_path
from test_covog_nodes import SETTINGS, conversation, inputs, model  # noqa: F401  (fixtures)

sys.path.insert(0, str(PACK_ROOT))
from nodes.comfy_bridge import audio_to_comfy, frames_to_image  # noqa: E402


class Interrupted(Exception):
    """Stands in for comfy.model_management.InterruptProcessingException."""


class Host:
    """ComfyUI's progress bar and Cancel button: the bar records (value, total); once `stop_at` updates were made,
    the next interrupt check raises, as ComfyUI's does after the user pressed Cancel."""

    def __init__(self, stop_at=None):
        self.updates, self.stop_at, self.checks = [], stop_at, 0
        host = self

        class ProgressBar:
            def __init__(self, total):
                self.total = total

            def update_absolute(self, value, total=None):
                host.updates.append((value, total or self.total))

        def throw_exception_if_processing_interrupted():
            host.checks += 1
            if host.stop_at is not None and len(host.updates) >= host.stop_at:
                raise Interrupted("interrupted")

        self.utils = types.SimpleNamespace(ProgressBar=ProgressBar)
        self.model_management = types.SimpleNamespace(
            throw_exception_if_processing_interrupted=throw_exception_if_processing_interrupted,
            processing_interrupted=lambda: host.stop_at is not None and len(host.updates) >= host.stop_at,
            get_torch_device=lambda: torch.device("cpu"), unet_offload_device=lambda: torch.device("cpu"),
            soft_empty_cache=lambda: None, free_memory=lambda *a: None,
            InterruptProcessingException=Interrupted)


@pytest.fixture
def comfy(monkeypatch):
    def install(stop_at=None):
        host = Host(stop_at)
        package = types.ModuleType("comfy")
        package.utils, package.model_management = host.utils, host.model_management
        monkeypatch.setitem(sys.modules, "comfy", package)
        monkeypatch.setitem(sys.modules, "comfy.utils", host.utils)
        monkeypatch.setitem(sys.modules, "comfy.model_management", host.model_management)
        return host
    return install


@pytest.fixture(scope="module")
def small(speech):
    from mit_annotator.synthetic import ConversationSpec, synthesize_conversation

    c = synthesize_conversation(ConversationSpec(num_people=2, seconds=1.2, width=256, height=128, seed=4), speech)
    return c, frames_to_image(np.stack(list(c.frames())))


def calls(small, tiny_models, model, name):
    """(name, the node call, the progress total it announces): each long node on a 30-frame, two-person input."""
    from nodes.conversation_nodes import SyntheticConversation
    from nodes.covog_nodes import GenerateConversation
    from nodes.covog_stage_nodes import CovOGDecode, CovOGSampler, EncodeAudio, EncodeReference, RenderPoses
    from nodes.export_nodes import ExportClip
    from nodes.speaker_nodes import ActiveSpeakers, AssignSpeakers, Diarize
    from nodes.vision_nodes import DetectFaces, DetectPeople, TrackPeople, WholeBodyPoseNode

    c, images = small
    audio = audio_to_comfy(c.mix, 16000)
    yunet, asd = MODELS / "face_detection_yunet.onnx", MODELS / "lr_asd" / "pretrain_AVA.model"

    if name in ("covog sampler", "covog decode"):  # their inputs are made before ComfyUI's stand-ins are in place
        reference, = EncodeReference.execute(model, inputs(c)["reference"], width=128, height=64)
        poses, _ = RenderPoses.execute(c.tracks, reference, 64)
        features, = EncodeAudio.execute(model, c.tracks, audio=audio)
    if name == "covog decode":
        latent, = CovOGSampler.execute(model, reference, poses, features, c.speaking, steps=1, cfg=2.0, seed=0,
                                        window=16, overlap=4)
    if name == "whole-body pose":
        detections, = DetectPeople.execute(images, 25.0, str(tiny_models["detector"]), 0.5, "cpu", False)

    def sampler():
        return CovOGSampler.execute(model, reference, poses, features, c.speaking, steps=3, cfg=2.0, seed=0,
                                     window=16, overlap=4)

    return [
        ("synthetic conversation", lambda: SyntheticConversation.execute(2, 1.2, 4, 256, 128, 25.0, 0.0, False), 30),
        ("detect people", lambda: DetectPeople.execute(images, 25.0, str(tiny_models["detector"]), 0.5, "cpu",
                                                        False), 30),
        ("whole-body pose", lambda: WholeBodyPoseNode.execute(images, detections, str(tiny_models["pose"]), "cpu",
                                                                 False), 30),
        ("track people + DWPose", lambda: TrackPeople.execute(images, 25.0, str(tiny_models["detector"]),
                                                              str(tiny_models["pose"]), 0.5, "cpu", False), 30),
        ("detect faces", lambda: DetectFaces.execute(images, 25.0, str(yunet), 0.6), 30),
        ("diarize", lambda: Diarize.execute(audio, 0, 1, 4, "offline"), 4),  # voice activity, embeddings, ...
        ("assign speakers", lambda: AssignSpeakers.execute(c.tracks, audio, 0, "offline", images, "lips"), 35),
        ("active speakers", lambda: ActiveSpeakers.execute(c.tracks, images, audio, str(asd)), 30),
        ("render poses", lambda: RenderPoses.execute(c.tracks, EncodeReference.execute(
            model, inputs(c)["reference"], width=128, height=64)[0], 64), 30),
        ("encode audio, per person", lambda: EncodeAudio.execute(model, c.tracks, person_1_audio=audio,
                                                                  person_2_audio=audio), 2),
        ("covog sampler", sampler, 9),  # 3 windows x 3 steps
        ("covog decode", lambda: CovOGDecode.execute(model, latent, 8), 3),  # a step per window
        ("generate", lambda: GenerateConversation.execute(model, **inputs(c), **{**SETTINGS, "steps": 3}), 9),
        ("export clip", lambda: ExportClip.execute(images, audio, c.tracks, c.speaking, "progress-test", "test",
                                                    "clip", False), 30),
    ]


NAMES = ["synthetic conversation", "detect people", "whole-body pose", "track people + DWPose", "detect faces",
         "diarize", "assign speakers", "active speakers", "render poses", "encode audio, per person", "covog sampler",
         "covog decode", "generate", "export clip"]


@pytest.mark.parametrize("name", NAMES)
def test_a_long_node_shows_progress_and_stops_within_a_step(name, comfy, small, tiny_models, model, tmp_path,
                                                            monkeypatch):
    monkeypatch.chdir(tmp_path)  # Export Clip writes under ./output outside ComfyUI
    shared_path("models", "lr_asd", "pretrain_AVA.model")
    shared_path("models", "face_detection_yunet.onnx")
    call, total = {n: (f, t) for n, f, t in calls(small, tiny_models, model, name)}[name]
    host = comfy()
    call()
    values = [v for v, _ in host.updates]
    assert host.updates and {t for _, t in host.updates} == {total}, host.updates
    assert values == sorted(values) and values[-1] == total  # forward, to the end
    steps = len(host.updates)
    stop_at = max(1, steps // 3)
    host = comfy(stop_at=stop_at)
    with pytest.raises(Interrupted):
        call()
    assert len(host.updates) == stop_at  # not one more step after Cancel


# ---------------------------------------------------------------------------------------------------------------------
# Bad input: a ValueError that names the input (ComfyUI shows its message in the node's error dialog), never a
# traceback from deep inside (an IndexError, a shape mismatch, a KeyError)


def bad_inputs(small, model):
    """(node, bad input, the call, the message it must give): every node that takes the input in question."""
    import dataclasses

    from mit_annotator.core.records import VideoTracks
    from nodes.binding_nodes import SpeakerMasks, SplitVoices
    from nodes.covog_nodes import GenerateConversation
    from nodes.covog_stage_nodes import CovOGSampler, EncodeAudio, EncodeReference, RenderPoses
    from nodes.export_nodes import ExportClip
    from nodes.speaker_nodes import ActiveSpeakers, AssignSpeakers, SpeakingTimeline

    c, images = small
    tracks, speaking = c.tracks, c.speaking
    audio = audio_to_comfy(c.mix, 16000)
    short = audio_to_comfy(c.mix[:8000], 16000)  # 0.5 s of a 1.2 s video
    nobody = VideoTracks(tracks.width, tracks.height, tracks.fps, tracks.num_frames, [], list(tracks.shots))
    stranger = dataclasses.replace(speaking, people=[dataclasses.replace(p, track_id=p.track_id + 7)
                                                     for p in speaking.people])
    asd = str(MODELS / "lr_asd" / "pretrain_AVA.model")
    masks = dict(region="face", mode="static", reference_frame=0, order="first_to_speak", grow=0, feather=0)
    generate = dict(model=model, reference=inputs(c)["reference"], tracks=tracks, audio=audio, speaking=speaking,
                    **{**SETTINGS, "steps": 1})
    voice = {"person_1_audio": audio, "person_2_audio": audio}

    def sampler(**change):
        reference, = EncodeReference.execute(model, inputs(c)["reference"], width=128, height=64)
        poses, _ = RenderPoses.execute(tracks, reference, 64)
        features, = EncodeAudio.execute(model, tracks, audio=audio)
        return CovOGSampler.execute(**{**dict(model=model, reference=reference, poses=poses,
                                               audio_features=features, speaking=speaking, steps=1, cfg=2.0, seed=0,
                                               window=16, overlap=4), **change})

    no_people = (r"^no people in the tracks \(\d+ frames of \d+x\d+\): nobody was found, so there is no one to "
                 r"annotate or animate\. Check the detector's threshold and that people are in view$")
    too_short = r"the audio lasts 0\.50 s but the video 1\.20 s"
    not_in_tracks = "names person 7, 8, whom the tracks do not hold"
    return [
        ("Assign Speakers", "no people", lambda: AssignSpeakers.execute(nobody, audio, 0, "offline", images, "lips"),
         no_people),
        ("Active Speakers", "no people", lambda: ActiveSpeakers.execute(nobody, images, audio, asd), no_people),
        ("Speaking Timeline", "no people", lambda: SpeakingTimeline.execute(speaking, nobody, images,
                                                                          "first_to_speak", 1000), no_people),
        ("Speaker Masks", "no people", lambda: SpeakerMasks.execute(nobody, speaking, **masks), no_people),
        ("Split Voices", "no people", lambda: SplitVoices.execute(audio, speaking, "left_to_right", 20,
                                                                  tracks=nobody), no_people),
        ("Render Poses", "no people", lambda: RenderPoses.execute(nobody, inputs(c)["reference"], 64), no_people),
        ("Encode Audio", "no people", lambda: EncodeAudio.execute(model, nobody, audio=audio), no_people),
        ("Generate", "no people", lambda: GenerateConversation.execute(**{**generate, "tracks": nobody}), no_people),
        ("Export Clip", "no people", lambda: ExportClip.execute(images, audio, nobody, speaking, "bad", "test",
                                                                 "clip", False), no_people),

        ("Assign Speakers", "short audio", lambda: AssignSpeakers.execute(tracks, short, 0, "offline", images,
                                                                           "lips"), too_short),
        ("Active Speakers", "short audio", lambda: ActiveSpeakers.execute(tracks, images, short, asd), too_short),
        ("Split Voices", "short audio", lambda: SplitVoices.execute(short, speaking, "first_to_speak", 20),
         too_short),
        ("Encode Audio", "short audio", lambda: EncodeAudio.execute(model, tracks, audio=short), too_short),
        ("Encode Audio", "short per-person audio", lambda: EncodeAudio.execute(
            model, tracks, person_1_audio=audio, person_2_audio=short), too_short),
        ("Generate", "short audio", lambda: GenerateConversation.execute(**{**generate, "audio": short}), too_short),
        ("Export Clip", "short audio", lambda: ExportClip.execute(images, short, tracks, speaking, "bad", "test",
                                                                   "clip", False), too_short),

        ("Split Voices", "more voices than people", lambda: SplitVoices.execute(
            audio, speaking, "first_to_speak", 20, voice_3=audio), "voice_3 is given but the assignment has 2 people"),
        ("Encode Audio", "more voices than people", lambda: EncodeAudio.execute(
            model, tracks, **voice, person_3_audio=audio), r"per-person audio given for people \[1, 2, 3\]; the "
         "tracks hold 2 people"),
        ("Generate", "more voices than people", lambda: GenerateConversation.execute(
            **generate, **voice, person_3_audio=audio), r"per-person audio given for people \[1, 2, 3\]; the tracks "
         "hold 2 people"),

        ("Speaker Masks", "a person not in the tracks", lambda: SpeakerMasks.execute(tracks, stranger, **masks),
         not_in_tracks),
        ("Speaking Timeline", "a person not in the tracks", lambda: SpeakingTimeline.execute(
            stranger, tracks, images, "first_to_speak", 1000), not_in_tracks),
        ("Split Voices", "a person not in the tracks", lambda: SplitVoices.execute(
            audio, stranger, "left_to_right", 20, tracks=tracks), not_in_tracks),
        ("Generate", "a person not in the tracks", lambda: GenerateConversation.execute(
            **{**generate, "speaking": stranger}), not_in_tracks),
        ("CovOG Sampler", "a person not in the tracks", lambda: sampler(speaking=stranger), not_in_tracks),
        ("Export Clip", "a person not in the tracks", lambda: ExportClip.execute(
            images, audio, tracks, stranger, "bad", "test", "clip", False), not_in_tracks),
    ]


BAD_INPUTS = [f"{node}: {what}" for node, what in (
    *((n, "no people") for n in ("Assign Speakers", "Active Speakers", "Speaking Timeline", "Speaker Masks",
                                 "Split Voices", "Render Poses", "Encode Audio", "Generate", "Export Clip")),
    *((n, "short audio") for n in ("Assign Speakers", "Active Speakers", "Split Voices", "Encode Audio")),
    ("Encode Audio", "short per-person audio"), ("Generate", "short audio"), ("Export Clip", "short audio"),
    *((n, "more voices than people") for n in ("Split Voices", "Encode Audio", "Generate")),
    *((n, "a person not in the tracks") for n in ("Speaker Masks", "Speaking Timeline", "Split Voices", "Generate",
                                                  "CovOG Sampler", "Export Clip")))]


@pytest.mark.parametrize("case", range(len(BAD_INPUTS)), ids=BAD_INPUTS)
def test_bad_input_gives_a_clear_message_naming_it(case, small, model, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    shared_path("models", "lr_asd", "pretrain_AVA.model")
    node, what, call, message = bad_inputs(small, model)[case]
    assert f"{node}: {what}" == BAD_INPUTS[case]
    with pytest.raises(ValueError, match=message) as raised:
        call()
    print(f"{node}, {what}: {raised.value}")
    assert type(raised.value).__name__ in ("ValueError", "BindingError"), f"{node}, {what}: {raised.value!r}"
