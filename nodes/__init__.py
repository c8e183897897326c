"""ComfyUI nodes: a thin layer that adapts mit_annotator and covog to ComfyUI's types, on ComfyUI's V3 node schema
(comfy_api.latest: each node an io.ComfyNode, the pack a ComfyExtension returned by comfy_entrypoint).

Each node module is imported on its own: one whose optional dependency is missing is left out, the others load,
and a single log line says which were left out and why.
"""

import importlib
import logging

try:
    from comfy_api.latest import ComfyExtension, io
except ImportError as error:  # ComfyUI before the V3 schema (or no ComfyUI at all)
    raise ImportError(f"the MIT-CovOG nodes need ComfyUI's V3 node API, comfy_api.latest (ComfyUI 0.8 or newer): "
                      f"{error}") from error

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

NODE_CLASSES: dict[str, type[io.ComfyNode]] = {}  # node id -> node class, for every node that loaded
LEFT_OUT: dict[str, str] = {}  # module -> reason

for _module_name, _purpose in _NODE_MODULES.items():
    try:
        _module = importlib.import_module(f".{_module_name}", __name__)
    except ImportError as error:
        missing = getattr(error, "name", None)
        LEFT_OUT[_module_name] = (f"{_purpose} nodes need the Python package '{missing}' ({error})" if missing
                                  else f"{_purpose} nodes failed to import ({error})")
        continue
    for _cls in _module.NODES:
        _node_id = _cls.GET_SCHEMA().node_id
        if not _node_id.startswith(PREFIX):
            raise ValueError(f"node id {_node_id!r} lacks the pack's prefix {PREFIX!r}")
        NODE_CLASSES[_node_id] = _cls

if LEFT_OUT:
    logging.getLogger("MIT-CovOG").warning(
        "[MIT-CovOG] some nodes were left out: %s. Install the pack's requirements.txt to get them.",
        "; ".join(LEFT_OUT.values()))


class MITCovOGExtension(ComfyExtension):
    async def get_node_list(self) -> list[type[io.ComfyNode]]:
        return list(NODE_CLASSES.values())


async def comfy_entrypoint() -> MITCovOGExtension:
    """What ComfyUI calls to load the pack (a module with NODE_CLASS_MAPPINGS would be loaded the V1 way instead)."""
    return MITCovOGExtension()
