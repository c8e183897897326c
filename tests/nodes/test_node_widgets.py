"""The nodes' inputs and outputs as a saved workflow sees them. ComfyUI stores a node's widget values by position and
its links by output slot: a renamed, reordered or removed input, a new default or range, or another output order
changes what a user's saved workflow means. node_widgets.json holds the pack's interface (tooltips aside); after a
deliberate change, rewrite it with `python tests/nodes/test_node_widgets.py` and update the workflows and the README."""

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SNAPSHOT = ROOT / "tests" / "node_widgets.json"
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from comfy_api_stand_in import install  # noqa: E402

install()


def interface() -> dict:
    """Each node as ComfyUI's executor, its editor and a saved workflow see it: the V1 view of its V3 schema, built
    afresh from define_schema (GET_NODE_INFO_V1, what /object_info serves; RETURN_TYPES is cached by the class), with a
    combo written as its list of choices, as a V1 node declares it. Tooltips and descriptions are left out."""
    import nodes

    described = {}
    for node_id, cls in sorted(nodes.NODE_CLASSES.items()):
        info = cls.GET_NODE_INFO_V1()
        inputs = [[section, name, *widget(value)] for section in ("required", "optional")
                  for name, value in info["input"].get(section, {}).items()]
        described[node_id] = {"id": info["name"], "display_name": info["display_name"], "category": info["category"],
                              "output_node": info["output_node"], "inputs": inputs, "outputs": info["output"],
                              "output_names": info["output_name"]}
    return json.loads(json.dumps(described))  # tuples as lists, as in the file


def widget(value: tuple) -> list:
    kind, options = value[0], dict(value[1] if len(value) > 1 else {})
    options.pop("tooltip", None)
    if options.get("multiline") is False:  # the V3 schema says so; a V1 string widget is single-line unless told
        del options["multiline"]
    if kind == "COMBO":
        kind = options.pop("options")
        options.pop("multiselect", None)
    return [kind, options]


def test_the_nodes_interface_is_the_saved_one():
    saved = json.loads(SNAPSHOT.read_text())
    now = interface()
    assert sorted(now) == sorted(saved), "nodes added or removed: rewrite node_widgets.json (see the docstring)"
    for node_id in saved:
        assert now[node_id] == saved[node_id], f"{node_id} changed: rewrite node_widgets.json (see the docstring)"


def test_the_binding_nodes_say_what_each_output_holds():
    """Their outputs are numbered slots whose order matters (speaker k, the segment's first and second voice): the
    editor shows each output's tooltip on hover."""
    import nodes

    for node_id in ("MITCovOG_SpeakerMasks", "MITCovOG_SplitVoices", "MITCovOG_InfiniteTalkSegment"):
        info = nodes.NODE_CLASSES[node_id].GET_NODE_INFO_V1()
        assert len(info["output_tooltips"]) == len(info["output"]) and all(info["output_tooltips"]), node_id


if __name__ == "__main__":
    SNAPSHOT.write_text(json.dumps(interface(), indent=1) + "\n")
    print(f"wrote {SNAPSHOT}")
