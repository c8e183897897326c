"""ComfyUI entry point of the MIT / CovOG pack (multi-person talking video: annotate conversations, generate them).

ComfyUI imports this file by path under a module name made from that path, so everything inside the pack is
imported relatively, except the two libraries, `mit_annotator` and `covog`, which are plain top-level packages
(pip-installable, usable headless). They are registered here under their own names from this folder, so the nodes
and the libraries agree on one copy even when the pack is not pip-installed.
"""

import importlib.util
import logging
import sys
from pathlib import Path

_HERE = Path(__file__).resolve().parent
_LIBRARIES = ("mit_annotator", "covog")
_log = logging.getLogger("MIT-CovOG")


def _register_libraries() -> None:
    for name in _LIBRARIES:
        own = _HERE / name / "__init__.py"
        loaded = sys.modules.get(name)
        if loaded is not None:
            if Path(getattr(loaded, "__file__", "") or "").resolve() != own:
                _log.warning("[MIT-CovOG] using %s from %s, not the copy in this pack", name, loaded.__file__)
            continue
        spec = importlib.util.spec_from_file_location(name, own, submodule_search_locations=[str(own.parent)])
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        try:
            spec.loader.exec_module(module)
        except BaseException:
            del sys.modules[name]
            raise


_register_libraries()

from .nodes import LEFT_OUT, comfy_entrypoint  # noqa: E402

__all__ = ["comfy_entrypoint", "LEFT_OUT"]
