"""Every workflow in workflows/ is a well-formed UI-format graph whose nodes, links and widget values match the
nodes' definitions (ours as the loaded pack reports them; ComfyUI's built-ins as its source defines them)."""

import json
from pathlib import Path

import pytest
from comfy_host import load_pack
from conftest import PACK_ROOT

WORKFLOWS = sorted((PACK_ROOT / "workflows").glob("*.json"))

# ComfyUI built-ins used by the workflows: widget names in order, socket input types, output types
# (nodes.py and comfy_extras/nodes_video.py, ComfyUI 0.8; the editor saves an upload button's value too).
BUILTINS = {
    "LoadImage": {"widgets": ["image", "upload"], "inputs": {"image": "COMBO"}, "return_types": ["IMAGE", "MASK"]},
    "LoadVideo": {"widgets": ["file", "upload"], "inputs": {"file": "COMBO"}, "return_types": ["VIDEO"]},
    "GetVideoComponents": {"widgets": [], "inputs": {"video": "VIDEO"}, "return_types": ["IMAGE", "AUDIO", "FLOAT"]},
    "CreateVideo": {"widgets": ["fps"], "inputs": {"images": "IMAGE", "fps": "FLOAT", "audio": "AUDIO"},
                    "return_types": ["VIDEO"]},
    "PreviewImage": {"widgets": [], "inputs": {"images": "IMAGE"}, "return_types": []},
    "SaveVideo": {"widgets": ["filename_prefix", "format", "codec"],
                  "inputs": {"video": "VIDEO", "filename_prefix": "STRING", "format": "COMBO", "codec": "COMBO"},
                  "return_types": []},
}


@pytest.fixture(scope="module")
def specs(tmp_path_factory):
    return {**BUILTINS, **load_pack(tmp_path_factory.mktemp("host"))["specs"]}


def test_there_are_workflows():
    assert WORKFLOWS, "workflows/ holds no workflow"


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_workflow_matches_the_nodes(path: Path, specs):
    graph = json.loads(path.read_text())
    assert graph["version"] == 0.4
    nodes = {node["id"]: node for node in graph["nodes"]}
    assert graph["last_node_id"] >= max(nodes)
    assert graph["last_link_id"] >= max(link[0] for link in graph["links"])
    for node in nodes.values():
        spec = specs.get(node["type"])
        assert spec is not None, f"{path.name}: node {node['id']} has unknown type {node['type']}"
        assert len(node.get("widgets_values", [])) == len(spec["widgets"]), (
            f"{path.name}: node {node['id']} ({node['type']}) has {len(node.get('widgets_values', []))} widget "
            f"values for widgets {spec['widgets']}")
        for slot, output in enumerate(node["outputs"]):
            assert output["type"] == spec["return_types"][slot]
        for entry in node["inputs"]:
            assert entry["name"] in spec["inputs"], f"{node['type']} has no input {entry['name']}"
    for link_id, source, source_slot, target, target_slot, kind in graph["links"]:
        out = nodes[source]["outputs"][source_slot]
        into = nodes[target]["inputs"][target_slot]
        assert link_id in (out["links"] or []) and into["link"] == link_id
        assert out["type"] == kind == specs[nodes[target]["type"]]["inputs"][into["name"]], (link_id, kind)
    # every socket input of our nodes that is required is connected
    for node in nodes.values():
        if node["type"].startswith("MITCovOG_"):
            widgets = set(specs[node["type"]]["widgets"])
            wired = {entry["name"] for entry in node["inputs"] if entry["link"] is not None}
            needed = {name for name in specs[node["type"]]["required"] if name not in widgets}
            assert needed <= wired, f"{node['type']} misses inputs {needed - wired}"
