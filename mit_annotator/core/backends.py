"""A backend chosen by name (a diarizer, an active-speaker model): where its maker lives, imported only when it is
made, so that listing the choices loads no model code."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Backend:
    make: str  # "package.module:function"; function(options) returns the backend, its models loaded
    description: str  # for choices and log lines

    def load(self, options: Any):
        module, function = self.make.split(":")
        return getattr(importlib.import_module(module), function)(options)
