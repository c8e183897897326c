"""A stand-in for ComfyUI's loader, run in a fresh interpreter: it imports the pack by file path under a module
name made from that path, beside stand-ins of ComfyUI's own top-level modules, with the network refused."""

import json
import os
import subprocess
import sys

from conftest import LIBRISPEECH, PACK_ROOT

HOST = r'''
import importlib.util, json, logging, os, socket, sys, types

def refuse(*args, **kwargs):
    raise RuntimeError("the pack reached for the network")
socket.socket.connect = refuse
socket.create_connection = refuse

for name in ("nodes", "utils", "server", "folder_paths", "execution"):
    sys.modules[name] = types.ModuleType(name)
    sys.modules[name].FROM_COMFYUI = True
for name in json.loads(os.environ.get("BLOCKED_MODULES", "[]")):
    sys.modules[name] = None  # as if not installed: importing it raises ImportError
sys.path.insert(0, os.environ["TESTS_DIR"])
from comfy_api_stand_in import install  # noqa: E402  (ComfyUI's V3 node API, which ComfyUI has imported by now)
install()
del sys.path[0]

messages = []
class Collect(logging.Handler):
    def emit(self, record):
        messages.append(record.getMessage())
logging.getLogger().addHandler(Collect())

import torch  # noqa: E402  (ComfyUI imports torch before any pack)

threads_before = torch.get_num_threads()
pack_path = sys.argv[1]
module_name = pack_path.replace(".", "_x_")  # ComfyUI's nodes.load_custom_node
spec = importlib.util.spec_from_file_location(module_name, os.path.join(pack_path, "__init__.py"))
pack = importlib.util.module_from_spec(spec)
sys.modules[module_name] = pack
spec.loader.exec_module(pack)

# ComfyUI's V3 path (nodes.load_custom_node): a module without NODE_CLASS_MAPPINGS, whose comfy_entrypoint gives an
# extension listing its nodes
import asyncio  # noqa: E402

from comfy_api.latest import ComfyExtension  # noqa: E402

assert not hasattr(pack, "NODE_CLASS_MAPPINGS"), "a module with NODE_CLASS_MAPPINGS is loaded the V1 way"
extension = asyncio.run(pack.comfy_entrypoint())
assert isinstance(extension, ComfyExtension)
classes, display = {}, {}
for cls in asyncio.run(extension.get_node_list()):
    schema = cls.GET_SCHEMA()
    classes[schema.node_id] = cls
    display[schema.node_id] = schema.display_name

result = {
    "ids": sorted(classes),
    "display": display,
    "left_out": pack.LEFT_OUT,
    "messages": messages,
    "comfy_modules_intact": all(getattr(sys.modules[n], "FROM_COMFYUI", False)
                                for n in ("nodes", "utils", "server", "folder_paths")),
    "library_file": sys.modules["mit_annotator"].__file__,
    "nodes_valid": [],
    "torch_threads": [threads_before, torch.get_num_threads()],  # before and after the pack loads
}
for node_id, cls in classes.items():
    inputs = cls.INPUT_TYPES()
    ok = (isinstance(inputs.get("required"), dict) and len(cls.RETURN_TYPES) > 0
          and callable(getattr(cls, cls.FUNCTION)) and cls.CATEGORY.startswith("MIT-CovOG")
          and len(cls.RETURN_NAMES) == len(cls.RETURN_TYPES))
    result["nodes_valid"].append([node_id, ok])
    widgets = []
    for section in ("required", "optional"):
        for name, spec in inputs.get(section, {}).items():
            kind, options = spec[0], (spec[1] if len(spec) > 1 else {})
            if isinstance(kind, list) or kind in ("COMBO", "INT", "FLOAT", "STRING", "BOOLEAN"):
                widgets.append(name)
                if options.get("control_after_generate"):
                    widgets.append("control_after_generate")
    result.setdefault("specs", {})[node_id] = {
        "widgets": widgets, "return_types": list(cls.RETURN_TYPES),
        "inputs": {name: (spec[0] if isinstance(spec[0], str) else "COMBO")
                   for section in ("required", "optional") for name, spec in inputs.get(section, {}).items()},
        "required": list(inputs.get("required", {}))}

if os.environ.get("RUN_NODES") and "MITCovOG_SyntheticConversation" in classes:
    images, audio, tracks, speaking, poses, fps = classes["MITCovOG_SyntheticConversation"].execute(
        num_people=3, seconds=2.0, seed=1, width=128, height=72, fps=25.0, overlap_probability=0.0,
        offscreen_voice=False, speech_folder=os.environ.get("SPEECH", ""))
    back = classes["MITCovOG_PoseKeypointToTracks"].execute(poses, fps)[0]
    again = classes["MITCovOG_TracksToPoseKeypoint"].execute(back, 0.3, True)[0]
    result["run"] = {
        "images": [list(images.shape), str(images.dtype), float(images.min()), float(images.max())],
        "audio": [list(audio["waveform"].shape), audio["sample_rate"]],
        "people_per_frame": sorted({len(frame["people"]) for frame in poses}),
        "frames": len(poses), "fps": fps, "tracks_back": [t.track_id for t in back.tracks],
        "round_trip_equal": again == poses, "speaking_people": len(speaking.people),
    }
    if os.environ.get("TINY_DETECTOR"):
        tracked = classes["MITCovOG_TrackPeople"].execute(
            images, fps, os.environ["TINY_DETECTOR"], os.environ["TINY_POSE"], 0.5, "cpu", False)[0]
        drawn = classes["MITCovOG_DrawTracks"].execute(images, tracked)[0]
        result["run"]["tracked"] = [tracked.num_frames, tracked.width, tracked.height, len(tracked.tracks)]
        result["run"]["drawn"] = list(drawn.shape)
        speaking_out, timeline = classes["MITCovOG_AssignSpeakers"].execute(tracks, audio, 0)
        result["run"]["speaking"] = [len(speaking_out.people), speaking_out.num_frames, list(timeline.shape)]
        import torch  # the AUDIO at another rate and in stereo
        stereo = {"waveform": torch.cat([audio["waveform"]] * 2, dim=1), "sample_rate": 16000}
        stereo["waveform"] = torch.nn.functional.interpolate(stereo["waveform"], scale_factor=3.0)
        stereo["sample_rate"] = 48000
        again_out, _ = classes["MITCovOG_AssignSpeakers"].execute(tracks, stereo, 3, "offline")
        result["run"]["speaking_48k"] = len(again_out.people)
        result["run"]["torch_threads"] = torch.get_num_threads()  # after the diarizer loaded silero-vad
        try:
            classes["MITCovOG_DrawTracks"].execute(images[:10], tracked)
        except ValueError as error:
            result["run"]["draw_error"] = str(error)
print("RESULT " + json.dumps(result))
'''


def load_pack(tmp_path, blocked=(), run_nodes=False, models=None):
    custom_nodes = tmp_path / "custom_nodes"
    custom_nodes.mkdir()
    link = custom_nodes / "ComfyUI-MIT.CovOG"  # a dot in the folder name, as ComfyUI must cope with
    link.symlink_to(PACK_ROOT, target_is_directory=True)
    env = {**os.environ, "BLOCKED_MODULES": json.dumps(list(blocked)), "RUN_NODES": "1" if run_nodes else "",
           "TESTS_DIR": str(PACK_ROOT / "tests"),
           "SPEECH": str(LIBRISPEECH) if LIBRISPEECH.is_dir() else "espeak", "PYTHONPATH": "",
           "TINY_DETECTOR": str(models["detector"]) if models else "", "TINY_POSE": str(models["pose"]) if models else ""}
    done = subprocess.run([sys.executable, "-c", HOST, str(link)], capture_output=True, text=True, env=env,
                          cwd=tmp_path, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    line = [x for x in done.stdout.splitlines() if x.startswith("RESULT ")][-1]
    return json.loads(line[len("RESULT "):])


# ---------------------------------------------------------------------------------------------------------------------
# Workflows as ComfyUI's editor and executor read them

WIDGET_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO", "COMFY_DYNAMICCOMBO_V3"}
UPLOADS = ("image_upload", "video_upload", "audio_upload")


class WorkflowError(AssertionError):
    """A workflow the editor would refuse or the executor would not run, with where and why."""


def input_kind(spec) -> str:
    """An input spec's type: its type name, COMBO for a list of options."""
    return "COMBO" if isinstance(spec[0], list) else spec[0]


def spec_inputs(spec: dict):
    """(name, input spec, section) in the order ComfyUI shows them: required, then optional."""
    order = spec.get("input_order") or {s: list(spec["input"].get(s, {})) for s in ("required", "optional")}
    for section in ("required", "optional"):
        for name in order.get(section) or []:
            yield name, spec["input"][section][name], section


def widget_slots(spec: dict, node: dict | None = None) -> list[tuple[str, object]]:
    """The node's widgets in the order of its widgets_values, as the editor lays them out: each widget input (a
    number, string, boolean or combo), a 'control_after_generate' after a seed that has one, an 'upload' after an
    upload combo, and a dynamic combo's chosen option's own widgets right after it."""
    slots = []
    for name, entry, _ in spec_inputs(spec):
        options = entry[1] if len(entry) > 1 else {}
        if input_kind(entry) not in WIDGET_TYPES or options.get("forceInput"):
            continue
        slots.append((name, entry))
        if options.get("control_after_generate"):
            slots.append(("control_after_generate", None))
        if any(options.get(k) for k in UPLOADS):
            slots.append(("upload", None))
    return slots


def dynamic_inputs(spec: dict, chosen: dict[str, str]) -> dict[str, tuple]:
    """name -> (input spec, optional?) of the inputs a dynamic combo adds for its chosen option ('mode.mask_1')."""
    out = {}
    for name, entry, _ in spec_inputs(spec):
        if input_kind(entry) == "COMFY_DYNAMICCOMBO_V3":
            for option in entry[1]["options"]:
                if option["key"] == chosen.get(name):
                    for section in ("required", "optional"):
                        for sub, sub_entry in (option["inputs"].get(section) or {}).items():
                            out[f"{name}.{sub}"] = (sub_entry, section == "optional")
    return out


def check_editor_schema(graph: dict, where: str) -> None:
    """The rules of the editor's workflow schema (zod, comfyui-frontend-package 1.35: zComfyWorkflow) that a
    hand-written workflow can break: the alert 'Invalid workflow against zod schema' names the first."""

    def number(value):
        return isinstance(value, (int, float)) and not isinstance(value, bool)

    def slot_index(value):
        return (isinstance(value, int) and not isinstance(value, bool)) or (isinstance(value, str) and
                                                                            value.lstrip("-").isdigit())

    def vector(value):
        return isinstance(value, list) and len(value) == 2 and all(number(v) for v in value)

    def node_id(value):
        return (isinstance(value, int) and not isinstance(value, bool)) or isinstance(value, str)

    def fail(path, what):
        raise WorkflowError(f"{where}: {what} at {path} (the editor refuses the workflow)")

    if not node_id(graph.get("last_node_id")):
        fail("last_node_id", "expected a node id")
    for key in ("last_link_id", "version"):
        if not number(graph.get(key)):
            fail(key, f"expected number, received {graph.get(key)!r}")
    for key in ("nodes", "links"):
        if not isinstance(graph.get(key), list):
            fail(key, "expected array")
    for key in ("config", "extra"):
        if graph.get(key) is not None and not isinstance(graph[key], dict):
            fail(key, "expected object or null")
    extra = graph.get("extra") or {}
    if "ds" in extra and not (number(extra["ds"].get("scale")) and vector(extra["ds"].get("offset"))):
        fail("extra.ds", "expected {scale: number, offset: [x, y]}")
    for k, model in enumerate(graph.get("models", [])):
        check_model_entry(model, f"models[{k}]", fail)
    for k, link in enumerate(graph["links"]):
        if not (isinstance(link, list) and len(link) == 6 and number(link[0]) and node_id(link[1])
                and slot_index(link[2]) and node_id(link[3]) and slot_index(link[4])
                and isinstance(link[5], (str, list, int))):
            fail(f"links[{k}]", "expected [id, origin, slot, target, slot, type]")
    for n, node in enumerate(graph["nodes"]):
        path = f"nodes[{n}]"
        if not node_id(node.get("id")) or not isinstance(node.get("type"), str):
            fail(path, "expected an id and a type")
        for key in ("pos", "size"):
            if not vector(node.get(key)):
                fail(f"{path}.{key}", "expected [number, number]")
        if not isinstance(node.get("flags"), dict):
            fail(f"{path}.flags", "expected object")
        for key in ("order", "mode"):
            if not number(node.get(key)):
                fail(f"{path}.{key}", f"expected number, received {node.get(key)!r}")
        if not isinstance(node.get("properties"), dict):
            fail(f"{path}.properties", "expected object")
        for k, model in enumerate(node["properties"].get("models", [])):
            check_model_entry(model, f"{path}.properties.models[{k}]", fail)
        if "widgets_values" in node and not isinstance(node["widgets_values"], (list, dict)):
            fail(f"{path}.widgets_values", "expected array or object")
        for side, key in (("inputs", "link"), ("outputs", "links")):
            for s, slot in enumerate(node.get(side, [])):
                spot = f"{path}.{side}[{s}]"
                if not isinstance(slot.get("name"), str) or not isinstance(slot.get("type"), (str, list, int)):
                    fail(spot, "expected a name and a type")
                if "slot_index" in slot and not slot_index(slot["slot_index"]):
                    fail(f"{spot}.slot_index", f"Expected number, received {json_name(slot['slot_index'])}")
                value = slot.get(key)
                if key == "link" and value is not None and not number(value):
                    fail(f"{spot}.link", "expected number or null")
                if key == "links" and value is not None and not (isinstance(value, list)
                                                                 and all(number(v) for v in value)):
                    fail(f"{spot}.links", "expected array of numbers or null")


def json_name(value) -> str:
    return "null" if value is None else type(value).__name__


def check_model_entry(model, path, fail) -> None:
    from urllib.parse import urlparse

    if not isinstance(model, dict) or not all(isinstance(model.get(k), str) for k in ("name", "url", "directory")):
        fail(path, "expected {name, url, directory}")
    url = urlparse(model["url"])
    if url.scheme not in ("http", "https") or not url.netloc:
        fail(f"{path}.url", "Invalid url")


EDITOR_ONLY = {"Note", "MarkdownNote"}  # the editor's own nodes: shown, never sent to the server


def to_api(graph: dict, specs: dict, where: str) -> dict:
    """The workflow in the API ('prompt') format POST /prompt executes, by widget position, with every check the
    executor makes on it (and a few it leaves to luck): known node types, widget counts, value types, min/max,
    combo options, link types at both ends, required inputs present, and the nodes' own validate_inputs.
    `specs`: node type -> {"input", "input_order", "output", "validate"?: callable}."""
    check_editor_schema(graph, where)
    nodes = {node["id"]: node for node in graph["nodes"]}
    if len(nodes) != len(graph["nodes"]):
        raise WorkflowError(f"{where}: two nodes share an id")
    if graph["last_node_id"] < max(nodes) or graph["last_link_id"] < max((l[0] for l in graph["links"]), default=0):
        raise WorkflowError(f"{where}: last_node_id / last_link_id lower than an id in use")
    links = {}
    for link_id, source, source_slot, target, target_slot, kind in graph["links"]:
        if link_id in links:
            raise WorkflowError(f"{where}: link {link_id} appears twice")
        if source not in nodes or target not in nodes:
            raise WorkflowError(f"{where}: link {link_id} joins a node that is not there")
        out, into = nodes[source]["outputs"][source_slot], nodes[target]["inputs"][target_slot]
        if link_id not in (out.get("links") or []) or into.get("link") != link_id:
            raise WorkflowError(f"{where}: link {link_id} is not recorded at both ends (node {source} output "
                                f"{out['name']!r} -> node {target} input {into['name']!r})")
        if not out["type"] == kind == into["type"]:
            raise WorkflowError(f"{where}: link {link_id} carries {kind}, from an output of {out['type']} into an "
                                f"input of {into['type']}")
        links[link_id] = (source, source_slot)
    for node in nodes.values():
        for side, key in (("inputs", "link"), ("outputs", "links")):
            for slot in node.get(side, []):
                for link_id in ([slot.get(key)] if key == "link" else slot.get(key) or []):
                    if link_id is not None and link_id not in links:
                        raise WorkflowError(f"{where}: node {node['id']} {side[:-1]} {slot['name']!r} names link "
                                            f"{link_id}, which the links list lacks")
    prompt = {}
    for node in nodes.values():
        if node.get("mode", 0) in (2, 4) or node["type"] in EDITOR_ONLY:  # muted, bypassed or a note: not sent
            continue
        spec = specs.get(node["type"])
        here = f"{where}: node {node['id']} ({node['type']})"
        if spec is None:
            raise WorkflowError(f"{here}: unknown node type")
        for slot, output in enumerate(node["outputs"]):
            want = spec["output"][slot] if slot < len(spec["output"]) else None
            if output["type"] != (want if isinstance(want, str) else "COMBO"):
                raise WorkflowError(f"{here}: output {slot} is {output['type']}, the node gives {want}")
        if len(node["outputs"]) != len(spec["output"]):
            raise WorkflowError(f"{here}: {len(node['outputs'])} outputs, the node has {len(spec['output'])}")
        values = node.get("widgets_values", [])
        slots = widget_slots(spec)
        if len(values) != len(slots):
            raise WorkflowError(f"{here}: {len(values)} widget values for widgets {[n for n, _ in slots]}")
        given = dict(zip([n for n, _ in slots], values))
        for (name, entry), value in zip(slots, values):  # a dynamic combo's choice decides the inputs there are
            if entry is not None and input_kind(entry) == "COMFY_DYNAMICCOMBO_V3":
                check_value(here, name, entry, value)
        known = {name: (entry, section == "optional") for name, entry, section in spec_inputs(spec)}
        known.update(dynamic_inputs(spec, given))
        inputs = {}
        for entry in node["inputs"]:
            if entry["name"] not in known:
                raise WorkflowError(f"{here}: has no input {entry['name']!r}")
            want = input_kind(known[entry["name"]][0])
            if entry["type"] != want and not (want == "COMBO" and entry["type"] in ("COMBO", "*")):
                raise WorkflowError(f"{here}: input {entry['name']!r} is typed {entry['type']}, the node takes {want}")
            if entry.get("link") is not None:
                inputs[entry["name"]] = [str(links[entry["link"]][0]), links[entry["link"]][1]]
        for (name, entry), value in zip(slots, values):
            if entry is None or name in inputs:
                continue
            check_value(here, name, entry, value)
            inputs[name] = value
        for name, (entry, optional) in known.items():
            if not optional and name not in inputs:
                raise WorkflowError(f"{here}: required input {name!r} is not connected")
        validate = spec.get("validate")
        if validate is not None:
            verdict = validate(**{k: v for k, v in inputs.items() if not isinstance(v, list)})
            if verdict is not True:
                raise WorkflowError(f"{here}: the node's own validation says: {verdict}")
        prompt[str(node["id"])] = {"class_type": node["type"], "inputs": inputs}
    return prompt


def check_value(here: str, name: str, entry, value) -> None:
    """One widget value as ComfyUI's validate_inputs checks it, with INT refusing floats and booleans."""
    kind, options = input_kind(entry), (entry[1] if len(entry) > 1 else {})
    bad = WorkflowError(f"{here}: widget {name!r} = {value!r} is not a valid {kind}")
    if kind == "INT" and (not isinstance(value, int) or isinstance(value, bool)):
        raise bad
    if kind == "FLOAT" and (not isinstance(value, (int, float)) or isinstance(value, bool)):
        raise bad
    if kind == "STRING" and not isinstance(value, str):
        raise bad
    if kind == "BOOLEAN" and not isinstance(value, bool):
        raise bad
    if kind in ("INT", "FLOAT"):
        if "min" in options and value < options["min"]:
            raise WorkflowError(f"{here}: widget {name!r} = {value} is smaller than its min {options['min']}")
        if "max" in options and value > options["max"]:
            raise WorkflowError(f"{here}: widget {name!r} = {value} is bigger than its max {options['max']}")
    if kind in ("COMBO", "COMFY_DYNAMICCOMBO_V3"):
        choices = (entry[0] if isinstance(entry[0], list) else
                   [o["key"] for o in options["options"]] if kind == "COMFY_DYNAMICCOMBO_V3" else options.get("options"))
        # an empty list, or an upload combo, lists a user's own files: any file name may be right
        if choices and not any(options.get(k) for k in UPLOADS) and value not in choices:
            raise WorkflowError(f"{here}: widget {name!r} = {value!r} is not in its list {choices}")


def pack_specs() -> dict:
    """This pack's nodes as the test process loads them: their real INPUT_TYPES, outputs and validate_inputs."""
    import inspect

    if str(PACK_ROOT) not in sys.path:
        sys.path.insert(0, str(PACK_ROOT))
    from comfy_api.internal import first_real_override

    from nodes import NODE_CLASSES

    specs = {}
    for node_id, cls in NODE_CLASSES.items():
        types = cls.INPUT_TYPES()
        spec = {"input": types, "input_order": {s: list(types.get(s, {})) for s in ("required", "optional")},
                "output": list(cls.RETURN_TYPES)}
        if first_real_override(cls, "validate_inputs") is not None:  # as ComfyUI's execution.validate_inputs
            wanted = inspect.signature(cls.validate_inputs).parameters
            spec["validate"] = (lambda cls, wanted: lambda **values: cls.validate_inputs(
                **{k: v for k, v in values.items() if k in wanted}))(cls, wanted)
        specs[node_id] = spec
    return specs


def builtin_specs() -> dict:
    return json.loads((PACK_ROOT / "tests" / "comfyui_nodes.json").read_text())["nodes"]
