"""The pack as ComfyUI loads it: by file path, under a module name made from that path, beside ComfyUI's own
top-level modules (`nodes`, `utils`, `server`, `folder_paths`), with no network. Each case runs in a fresh
interpreter so that nothing imported by other tests can hide a problem."""

import os

import pytest
from comfy_host import load_pack
from conftest import PACK_ROOT


def test_the_pack_loads_by_path_beside_comfyuis_modules(tmp_path):
    result = load_pack(tmp_path)
    assert result["left_out"] == {} and result["messages"] == []
    assert CONVERSATION | POSE | VISION | SPEAKERS | COVOG == set(result["ids"])
    assert all(node_id.startswith("MITCovOG_") for node_id in result["ids"])
    assert set(result["display"]) == set(result["ids"])
    assert all(ok for _, ok in result["nodes_valid"]), result["nodes_valid"]
    assert result["comfy_modules_intact"]
    threads = result["torch_threads"][0]
    assert threads > 1 and result["torch_threads"] == [threads, threads]  # importing silero-vad sets them to 1
    assert os.path.realpath(result["library_file"]) == str(PACK_ROOT / "mit_annotator" / "__init__.py")


VISION = {"MITCovOG_TrackPeople", "MITCovOG_DrawTracks"}
SPEAKERS = {"MITCovOG_AssignSpeakers"}
CONVERSATION = {"MITCovOG_SyntheticConversation"}
POSE = {"MITCovOG_TracksToPoseKeypoint", "MITCovOG_PoseKeypointToTracks"}
COVOG = {"MITCovOG_LoadCovOG", "MITCovOG_GenerateConversation"}


@pytest.mark.parametrize("missing, left_out, gone", [
    ("av", ["conversation_nodes", "vision_nodes", "speaker_nodes"], CONVERSATION | VISION | SPEAKERS),
    ("cv2", ["conversation_nodes", "vision_nodes", "speaker_nodes", "covog_nodes"],
     CONVERSATION | VISION | SPEAKERS | COVOG),
    ("silero_vad", ["speaker_nodes"], SPEAKERS),
    ("onnxruntime", ["vision_nodes"], VISION),
    ("rtmlib", ["vision_nodes"], VISION),
    ("diffusers", ["covog_nodes"], COVOG),
    ("transformers", ["covog_nodes"], COVOG),
])
def test_a_missing_optional_dependency_leaves_out_only_its_nodes(tmp_path, missing, left_out, gone):
    result = load_pack(tmp_path, blocked=[missing])
    assert not gone & set(result["ids"])
    assert POSE <= set(result["ids"])
    assert list(result["left_out"]) == left_out
    assert len(result["messages"]) == 1
    assert "left out" in result["messages"][0] and f"'{missing}'" in result["messages"][0]


def test_nodes_run_in_the_loaded_pack(tmp_path, tiny_models):
    run = load_pack(tmp_path, run_nodes=True, models=tiny_models)["run"]
    assert run["images"] == [[50, 72, 128, 3], "torch.float32", pytest.approx(run["images"][2]),
                             pytest.approx(run["images"][3])]
    assert 0.0 <= run["images"][2] < run["images"][3] <= 1.0
    assert run["audio"] == [[1, 1, 32000], 16000]
    assert run["frames"] == 50 and run["fps"] == 25.0 and run["people_per_frame"] == [3]
    assert run["tracks_back"] == [0, 1, 2] and run["round_trip_equal"] and run["speaking_people"] == 3
    assert run["tracked"][:3] == [50, 128, 72] and run["drawn"] == [50, 72, 128, 3]
    assert "the tracks were made for 50 frames of 128x72, the images are 10 frames" in run["draw_error"]
    people, frames, timeline = run["speaking"]
    assert (people, frames, run["speaking_48k"]) == (3, 50, 3)
    assert run["torch_threads"] > 1  # the diarizer's silero-vad left torch's CPU threads as they were
    assert timeline[0] == 1 and timeline[1] >= 3 * 28 and timeline[2:] == [1000, 3]
