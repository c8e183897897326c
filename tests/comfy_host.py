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

result = {
    "ids": sorted(pack.NODE_CLASS_MAPPINGS),
    "display": pack.NODE_DISPLAY_NAME_MAPPINGS,
    "left_out": pack.LEFT_OUT,
    "messages": messages,
    "comfy_modules_intact": all(getattr(sys.modules[n], "FROM_COMFYUI", False)
                                for n in ("nodes", "utils", "server", "folder_paths")),
    "library_file": sys.modules["mit_annotator"].__file__,
    "nodes_valid": [],
    "torch_threads": [threads_before, torch.get_num_threads()],  # before and after the pack loads
}
for node_id, cls in pack.NODE_CLASS_MAPPINGS.items():
    inputs = cls.INPUT_TYPES()
    ok = (isinstance(inputs.get("required"), dict) and isinstance(cls.RETURN_TYPES, tuple)
          and callable(getattr(cls(), cls.FUNCTION)) and cls.CATEGORY.startswith("MIT-CovOG")
          and len(getattr(cls, "RETURN_NAMES", cls.RETURN_TYPES)) == len(cls.RETURN_TYPES))
    result["nodes_valid"].append([node_id, ok])
    widgets = []
    for section in ("required", "optional"):
        for name, spec in inputs.get(section, {}).items():
            kind, options = spec[0], (spec[1] if len(spec) > 1 else {})
            if isinstance(kind, list) or kind in ("INT", "FLOAT", "STRING", "BOOLEAN"):
                widgets.append(name)
                if options.get("control_after_generate"):
                    widgets.append("control_after_generate")
    result.setdefault("specs", {})[node_id] = {
        "widgets": widgets, "return_types": list(cls.RETURN_TYPES),
        "inputs": {name: (spec[0] if isinstance(spec[0], str) else "COMBO")
                   for section in ("required", "optional") for name, spec in inputs.get(section, {}).items()},
        "required": list(inputs.get("required", {}))}

if os.environ.get("RUN_NODES") and "MITCovOG_SyntheticConversation" in pack.NODE_CLASS_MAPPINGS:
    build = pack.NODE_CLASS_MAPPINGS["MITCovOG_SyntheticConversation"]()
    images, audio, tracks, speaking, poses, fps = build.build(
        num_people=3, seconds=2.0, seed=1, width=128, height=72, fps=25.0, overlap_probability=0.0,
        offscreen_voice=False, speech_folder=os.environ.get("SPEECH", ""))
    back = pack.NODE_CLASS_MAPPINGS["MITCovOG_PoseKeypointToTracks"]().convert(poses, fps)[0]
    again = pack.NODE_CLASS_MAPPINGS["MITCovOG_TracksToPoseKeypoint"]().convert(back, 0.3, True)[0]
    result["run"] = {
        "images": [list(images.shape), str(images.dtype), float(images.min()), float(images.max())],
        "audio": [list(audio["waveform"].shape), audio["sample_rate"]],
        "people_per_frame": sorted({len(frame["people"]) for frame in poses}),
        "frames": len(poses), "fps": fps, "tracks_back": [t.track_id for t in back.tracks],
        "round_trip_equal": again == poses, "speaking_people": len(speaking.people),
    }
    if os.environ.get("TINY_DETECTOR"):
        tracked = pack.NODE_CLASS_MAPPINGS["MITCovOG_TrackPeople"]().track(
            images, fps, os.environ["TINY_DETECTOR"], os.environ["TINY_POSE"], 0.5, "cpu", False)[0]
        drawn = pack.NODE_CLASS_MAPPINGS["MITCovOG_DrawTracks"]().draw(images, tracked)[0]
        result["run"]["tracked"] = [tracked.num_frames, tracked.width, tracked.height, len(tracked.tracks)]
        result["run"]["drawn"] = list(drawn.shape)
        speaking_out, timeline = pack.NODE_CLASS_MAPPINGS["MITCovOG_AssignSpeakers"]().assign(tracks, audio, 0)
        result["run"]["speaking"] = [len(speaking_out.people), speaking_out.num_frames, list(timeline.shape)]
        import torch  # the AUDIO at another rate and in stereo
        stereo = {"waveform": torch.cat([audio["waveform"]] * 2, dim=1), "sample_rate": 16000}
        stereo["waveform"] = torch.nn.functional.interpolate(stereo["waveform"], scale_factor=3.0)
        stereo["sample_rate"] = 48000
        again_out, _ = pack.NODE_CLASS_MAPPINGS["MITCovOG_AssignSpeakers"]().assign(tracks, stereo, 3, "offline")
        result["run"]["speaking_48k"] = len(again_out.people)
        result["run"]["torch_threads"] = torch.get_num_threads()  # after the diarizer loaded silero-vad
        try:
            pack.NODE_CLASS_MAPPINGS["MITCovOG_DrawTracks"]().draw(images[:10], tracked)
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
           "SPEECH": str(LIBRISPEECH) if LIBRISPEECH.is_dir() else "espeak", "PYTHONPATH": "",
           "TINY_DETECTOR": str(models["detector"]) if models else "", "TINY_POSE": str(models["pose"]) if models else ""}
    done = subprocess.run([sys.executable, "-c", HOST, str(link)], capture_output=True, text=True, env=env,
                          cwd=tmp_path, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    line = [x for x in done.stdout.splitlines() if x.startswith("RESULT ")][-1]
    return json.loads(line[len("RESULT "):])
