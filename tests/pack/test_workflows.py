"""Every workflow in workflows/ as ComfyUI's editor and executor read it: the editor's schema rules, the API-format
prompt by widget position with the nodes' real INPUT_TYPES (ours as the pack defines them, ComfyUI's and other
packs' as tests/comfyui_nodes.json records them), every value's type, range and list, links typed alike at both ends,
required inputs connected, the nodes' own VALIDATE_INPUTS; that the binding workflows hand speaker k's mask and voice
to the model's k-th inputs; and, when a real ComfyUI is at hand (COMFYUI_PATH and COMFYUI_PYTHON), its own
validate_prompt."""

import copy
import json
import os
import re
import subprocess
from pathlib import Path

import pytest
from comfy_host import WorkflowError, builtin_specs, pack_specs, to_api
from conftest import PACK_ROOT

WORKFLOWS = sorted((PACK_ROOT / "workflows").glob("*.json"))
NAMES = {"synthetic_conversation", "annotate_people", "annotate_conversation", "generate_conversation",
         "generate_conversation_stages", "bind_speakers_infinitetalk", "bind_speakers_infinitetalk_long",
         "bind_speakers_multitalk"}
# the folders under ComfyUI/models/ the workflows' model files go to
MODEL_FOLDERS = {"dwpose", "active_speaker", "speaker_segmentation", "covog", "diffusion_models", "model_patches", "text_encoders", "vae",
                 "clip_vision", "audio_encoders", "wav2vec2"}
CORE_MODEL_FOLDERS = {"diffusion_models", "model_patches", "text_encoders", "vae", "clip_vision", "audio_encoders"}
NOT_IN_COMFYUI_0_8 = {"WanInfiniteTalkToVideo", "MultiTalkWav2VecEmbeds", "Wav2VecModelLoader"}


@pytest.fixture(scope="module")
def specs():
    return {**builtin_specs(), **pack_specs()}


def load(name: str) -> dict:
    return json.loads((PACK_ROOT / "workflows" / f"{name}.json").read_text())


def node_of(graph: dict, type_: str, nth: int = 0) -> dict:
    return [n for n in graph["nodes"] if n["type"] == type_][nth]


def test_the_workflows_are_there():
    assert {p.stem for p in WORKFLOWS} == NAMES


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.stem)
def test_workflow_is_a_valid_prompt(path: Path, specs):
    graph = json.loads(path.read_text())
    prompt = to_api(graph, specs, path.name)
    assert len(prompt) == len([n for n in graph["nodes"] if n["type"] != "MarkdownNote"])
    # every model file a widget names is listed, with where it goes: in `models` when the editor's model dialog can
    # download it (a .safetensors file from Hugging Face or Civitai into a folder ComfyUI itself has; anything else
    # makes the dialog refuse it), else in the workflow's note
    listed = {m["name"]: m["directory"] for m in graph["models"]}
    assert all(m["name"].endswith((".safetensors", ".sft")) and m["directory"] in CORE_MODEL_FOLDERS
               and m["url"].startswith(("https://huggingface.co/", "https://civitai.com/")) for m in graph["models"])
    noted = {name: folder for node in graph["nodes"] if node["type"] == "MarkdownNote"
             for folder, name in re.findall(r"`models/([^/`]+)/([^`]+)` from https://", node["widgets_values"][0])}
    assert set(listed.values()) | set(noted.values()) <= MODEL_FOLDERS
    named = {value for node in graph["nodes"] if node["type"] != "MarkdownNote"
             for value in node.get("widgets_values", [])
             if isinstance(value, str) and value.endswith((".onnx", ".model", ".safetensors", ".bin"))}
    assert named == set(listed) | set(noted), (named, listed, noted)


def test_the_binding_workflows_hand_speaker_k_its_own_mask_and_voice(specs):
    """InfiniteTalk (core's node plays its second audio after its first): InfiniteTalk Segment's audio_1 / mask_1 go
    to audio_encoder_output_1 / mask_1, the second pair to the second inputs, its length to the node's length, the
    masks from Speaker Masks in the same order; MultiTalk: voice k -> audio_k, everyone's masks -> ref_target_masks.
    Speaker Masks, Split Voices and InfiniteTalk Segment number the people alike."""
    graph = load("bind_speakers_infinitetalk")
    prompt = to_api(graph, specs, "infinitetalk")
    ids = {node["type"]: str(node["id"]) for node in graph["nodes"]}
    masks, segment = ids["MITCovOG_SpeakerMasks"], ids["MITCovOG_InfiniteTalkSegment"]
    wan = prompt[ids["WanInfiniteTalkToVideo"]]
    assert wan["inputs"]["mode"] == "two_speakers"
    assert wan["inputs"]["mode.mask_1"] == [segment, 2] and wan["inputs"]["mode.mask_2"] == [segment, 3]
    assert wan["inputs"]["length"] == [segment, 4]  # as long as the segment's voices
    for name, voice in (("audio_encoder_output_1", 0), ("mode.audio_encoder_output_2", 1)):
        encoder = prompt[wan["inputs"][name][0]]
        assert encoder["class_type"] == "AudioEncoderEncode" and encoder["inputs"]["audio"] == [segment, voice]
    assert prompt[segment]["inputs"]["masks"] == [masks, 4]
    assert prompt[masks]["inputs"]["mode"] == "static"  # InfiniteTalk reads one mask per speaker
    assert prompt[masks]["inputs"]["order"] == prompt[segment]["inputs"]["order"] == "first_to_speak"

    graph = load("bind_speakers_multitalk")
    prompt = to_api(graph, specs, "multitalk")
    ids = {node["type"]: str(node["id"]) for node in graph["nodes"]}
    talk = prompt[ids["MultiTalkWav2VecEmbeds"]]["inputs"]
    for k in range(1, 5):
        assert talk[f"audio_{k}"] == [ids["MITCovOG_SplitVoices"], k - 1]
    assert talk["ref_target_masks"] == [ids["MITCovOG_SpeakerMasks"], 4]  # `masks`: one per person, in slot order
    assert talk["multi_audio_type"] == "para"  # the voices keep the conversation's timeline


def test_the_long_infinitetalk_workflow_chains_its_segments(specs):
    """Two segments: segment 1 continues from the joined video's frames at its previous_start, each segment's own
    frames joined (trim_image, keep), the joined video with the conversation's audio saved."""
    graph = load("bind_speakers_infinitetalk_long")
    prompt = to_api(graph, specs, "infinitetalk long")
    of = {}
    for node_id, node in prompt.items():
        of.setdefault(node["class_type"], []).append(node_id)
    segments = {prompt[n]["inputs"]["segment"]: n for n in of["MITCovOG_InfiniteTalkSegment"]}
    assert sorted(segments) == [0, 1]
    wans = {prompt[n]["inputs"]["length"][0]: n for n in of["WanInfiniteTalkToVideo"]}
    first, second = prompt[wans[segments[0]]]["inputs"], prompt[wans[segments[1]]]["inputs"]
    assert "previous_frames" not in first
    previous = prompt[second["previous_frames"][0]]
    assert previous["class_type"] == "ImageFromBatch" and previous["inputs"]["batch_index"] == [segments[1], 6]
    assert previous["inputs"]["length"] == second["motion_frame_count"] == 9
    joins = {prompt[n]["inputs"]["keep"][0]: prompt[n]["inputs"] for n in of["MITCovOG_InfiniteTalkJoin"]}
    join_0, join_1 = joins[segments[0]], joins[segments[1]]
    assert join_0["trim"] == [wans[segments[0]], 4] and join_1["trim"] == [wans[segments[1]], 4]
    joined_0 = [n for n in of["MITCovOG_InfiniteTalkJoin"] if prompt[n]["inputs"] is join_0][0]
    joined_1 = [n for n in of["MITCovOG_InfiniteTalkJoin"] if prompt[n]["inputs"] is join_1][0]
    assert previous["inputs"]["image"] == join_1["video"] == [joined_0, 0]
    assert prompt[of["CreateVideo"][0]]["inputs"]["images"] == [joined_1, 0]


def mutated(name: str, change) -> dict:
    graph = copy.deepcopy(load(name))
    change(graph)
    return graph


def set_widget(type_: str, index: int, value):
    def change(graph):
        node_of(graph, type_)["widgets_values"][index] = value
    return change


def swap_widgets(type_: str, a: int, b: int):
    def change(graph):
        values = node_of(graph, type_)["widgets_values"]
        values[a], values[b] = values[b], values[a]
    return change


def drop_link_at_input(type_: str, input_name: str):
    def change(graph):
        node = node_of(graph, type_)
        entry = [i for i in node["inputs"] if i["name"] == input_name][0]
        link_id, entry["link"] = entry["link"], None
        graph["links"] = [link for link in graph["links"] if link[0] != link_id]
        for other in graph["nodes"]:
            for output in other["outputs"]:
                if output["links"] and link_id in output["links"]:
                    output["links"].remove(link_id)
    return change


def retype_link(graph):
    graph["links"][0][5] = "IMAGE"


def forget_link_at_output(graph):
    link_id = graph["links"][0][0]
    for node in graph["nodes"]:
        for output in node["outputs"]:
            if output["links"] and link_id in output["links"]:
                output["links"].remove(link_id)


def null_slot_index(graph):
    node_of(graph, "LoadImage")["outputs"][1]["slot_index"] = None


GENERATE = "MITCovOG_GenerateConversation"  # widgets: steps, cfg, seed, control, window, overlap, width, height


@pytest.mark.parametrize("name, change, message", [
    ("generate_conversation", set_widget(GENERATE, 4, 40), "'window' = 40 is bigger than its max 32"),
    ("generate_conversation", swap_widgets(GENERATE, 4, 5), "overlap 25 must be at least 0 and less than the window"),
    ("generate_conversation", set_widget("MITCovOG_LoadCovOG", 1, "fp64"), "'dtype' = 'fp64' is not in its list"),
    ("generate_conversation", set_widget(GENERATE, 1, "3.5"), "'cfg' = '3.5' is not a valid FLOAT"),
    ("generate_conversation", set_widget(GENERATE, 0, 30.0), "'steps' = 30.0 is not a valid INT"),
    ("generate_conversation", null_slot_index, "Expected number, received null at nodes[5].outputs[1].slot_index"),
    ("generate_conversation_stages", swap_widgets("MITCovOG_Sampler", 4, 5), "less than the window"),
    ("generate_conversation_stages", set_widget("MITCovOG_Sampler", 4, 33), "bigger than its max 32"),
    ("bind_speakers_infinitetalk", swap_widgets("MITCovOG_SpeakerMasks", 0, 1), "'region' = 'static' is not in"),
    ("bind_speakers_infinitetalk", set_widget("MITCovOG_SpeakerMasks", 4, -1), "'grow' = -1 is smaller than its min"),
    ("bind_speakers_infinitetalk", set_widget("WanInfiniteTalkToVideo", 0, "three_speakers"), "not in its list"),
    ("bind_speakers_infinitetalk", drop_link_at_input("WanInfiniteTalkToVideo", "model"),
     "required input 'model' is not connected"),
    ("bind_speakers_multitalk", swap_widgets("MultiTalkWav2VecEmbeds", 4, 5),
     "'audio_cfg_scale' = 'para' is not a valid FLOAT"),
    ("annotate_conversation", drop_link_at_input("CreateVideo", "images"), "required input 'images' is not connected"),
    ("annotate_conversation", drop_link_at_input("MITCovOG_AssignSpeakers", "tracks"), "required input 'tracks'"),
    ("annotate_conversation", retype_link, "link 1 carries IMAGE"),
    ("annotate_conversation", set_widget("MITCovOG_Diarize", 1, 7), "min_speakers (7) is more than max_speakers (6)"),
    ("annotate_conversation", set_widget("MITCovOG_ExportClip", 1, "my source"), "source 'my source': use letters"),
    ("annotate_conversation", forget_link_at_output, "link 1 is not recorded at both ends"),
    ("synthetic_conversation", set_widget("MITCovOG_SyntheticConversation", 0, 5), "'num_people' = 5 is bigger"),
])
def test_a_broken_workflow_fails(name, change, message, specs):
    to_api(load(name), specs, name)  # as it is, it passes
    with pytest.raises(WorkflowError, match=message.replace("[", r"\[").replace("]", r"\]").replace("(", r"\(")
                       .replace(")", r"\)").replace(".", r"\.")):
        to_api(mutated(name, change), specs, name)


def test_an_unknown_node_type_fails(specs):
    graph = mutated("synthetic_conversation", lambda g: g["nodes"][0].update(type="MITCovOG_Nope"))
    with pytest.raises(WorkflowError, match="unknown node type"):
        to_api(graph, specs, "x")


VALIDATE = r'''
import asyncio, json, os, sys
comfy, inputs, prompts = sys.argv[1], sys.argv[2], json.loads(sys.stdin.read())
sys.argv = [sys.argv[0], "--cpu", "--input-directory", inputs]
os.chdir(comfy)
sys.path.insert(0, comfy)
import utils.install_util  # ComfyUI's own utils package, before a module's sys.path shadows it (main.py does so)
import comfy.options
comfy.options.enable_args_parsing()
import folder_paths, nodes, execution
folder_paths.set_input_directory(inputs)
asyncio.run(nodes.init_extra_nodes(init_custom_nodes=True))
results = {}
for name, prompt in prompts.items():
    missing = {k for k, v in prompt.items() if v["class_type"] not in nodes.NODE_CLASS_MAPPINGS}
    changed = True
    while changed:  # what hangs on a node this ComfyUI lacks cannot run here either
        changed = False
        for k, v in prompt.items():
            if k not in missing and any(isinstance(x, list) and x[0] in missing for x in v["inputs"].values()):
                missing.add(k)
                changed = True
    kept = {k: v for k, v in prompt.items() if k not in missing}
    valid, error, outputs, node_errors = asyncio.run(execution.validate_prompt("check", kept, None))
    results[name] = {"valid": valid, "error": error, "node_errors": node_errors, "outputs": outputs,
                     "left_out": sorted({prompt[k]["class_type"] for k in missing})}
print("RESULT " + json.dumps(results, default=str))
'''


def test_comfyuis_own_prompt_validation(specs, tmp_path):
    """Run where a real ComfyUI is set up (scripts/check_workflows_in_comfyui.sh sets COMFYUI_PATH and
    COMFYUI_PYTHON; its custom_nodes/ must hold this pack): its validate_prompt on every workflow's prompt, the
    videos and images the workflows load in its input folder. Nodes this ComfyUI lacks (newer than it, or from
    other packs) and what hangs on them are left out, by name; model files are the user's."""
    import numpy as np

    from mit_annotator.core import media

    comfy, python = os.environ.get("COMFYUI_PATH"), os.environ.get("COMFYUI_PYTHON")
    if not (comfy and python):
        pytest.skip("no real ComfyUI here (set COMFYUI_PATH and COMFYUI_PYTHON)")
    frames = np.zeros((10, 64, 96, 3), np.uint8)
    for name in ("conversation.mp4", "driving_video.mp4"):
        media.write_video(tmp_path / name, frames, 25.0, np.zeros(6400, np.float32), 16000)
    import cv2

    cv2.imwrite(str(tmp_path / "reference.png"), frames[0])
    prompts = {p.stem: to_api(json.loads(p.read_text()), specs, p.name) for p in WORKFLOWS}
    done = subprocess.run([python, "-c", VALIDATE, comfy, str(tmp_path)], input=json.dumps(prompts),
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads(done.stdout.split("RESULT ", 1)[1])
    for name, result in results.items():
        # files a workflow names (videos, images, models) are the user's: only their absence may fail here
        errors = [e for errors in result["node_errors"].values() for e in errors["errors"]
                  if not (e["type"] in ("value_not_in_list", "custom_validation_failed")
                          and e["extra_info"]["input_name"] in FILE_INPUTS)]
        assert not errors, (name, errors)
        assert set(result["left_out"]) <= NOT_IN_COMFYUI_0_8 | LEFT_OUT_WITH_THEM, (name, result["left_out"])
        assert result["outputs"] or result["node_errors"], name
    assert results["synthetic_conversation"]["valid"] and results["annotate_people"]["valid"]
    assert not results["bind_speakers_infinitetalk"]["node_errors"]  # all of it but the Wan model's part is valid
    assert results["bind_speakers_infinitetalk"]["left_out"] == ["CreateVideo", "KSampler", "SaveVideo", "VAEDecode",
                                                                 "WanInfiniteTalkToVideo"]


FILE_INPUTS = {"model", "audio_encoder_name", "unet_name", "name", "clip_name", "vae_name",
               "detector", "pose_model", "face_model", "asd_model"}
LEFT_OUT_WITH_THEM = {"KSampler", "VAEDecode", "CreateVideo", "SaveVideo", "PreviewAudio", "ImageFromBatch",
                      "MITCovOG_InfiniteTalkJoin"}  # downstream of the Wan nodes in the long InfiniteTalk workflow
