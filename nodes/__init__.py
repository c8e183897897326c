"""ComfyUI nodes: a thin layer that adapts mit_annotator and covog to ComfyUI's types.

Each node module is imported on its own: one whose optional dependency is missing is left out, the others load,
and a single log line says which were left out and why.
"""

import importlib
import logging

PREFIX = "MITCovOG_"

# module -> what its nodes do (for the log line)
_NODE_MODULES = {
    "conversation_nodes": "synthetic conversation",
    "pose_nodes": "pose conversion",
    "vision_nodes": "people tracking (YOLOX + DWPose)",
    "speaker_nodes": "speaker assignment (diarization)",
    "binding_nodes": "speaker binding (masks and voices)",
    "export_nodes": "MIT-layout export",
    "covog_nodes": "CovOG video generation",
    "covog_stage_nodes": "CovOG generation stages",
    "evaluate_nodes": "generated-video evaluation",
}

NODE_CLASS_MAPPINGS: dict = {}
NODE_DISPLAY_NAME_MAPPINGS: dict = {}
LEFT_OUT: dict[str, str] = {}  # module -> reason

for _module_name, _purpose in _NODE_MODULES.items():
    try:
        _module = importlib.import_module(f".{_module_name}", __name__)
    except ImportError as error:
        missing = getattr(error, "name", None)
        LEFT_OUT[_module_name] = (f"{_purpose} nodes need the Python package '{missing}' ({error})" if missing
                                  else f"{_purpose} nodes failed to import ({error})")
        continue
    for _node_id, _cls in _module.NODE_CLASS_MAPPINGS.items():
        if not _node_id.startswith(PREFIX):
            raise ValueError(f"node id {_node_id!r} lacks the pack's prefix {PREFIX!r}")
        NODE_CLASS_MAPPINGS[_node_id] = _cls
    NODE_DISPLAY_NAME_MAPPINGS.update(_module.NODE_DISPLAY_NAME_MAPPINGS)

if LEFT_OUT:
    logging.getLogger("MIT-CovOG").warning(
        "[MIT-CovOG] some nodes were left out: %s. Install the pack's requirements.txt to get them.",
        "; ".join(LEFT_OUT.values()))
