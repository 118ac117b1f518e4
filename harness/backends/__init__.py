"""Backends: what executes the model (`base`: the interface and its capabilities; `hf`: Hugging Face eager;
`remote`: an engine in another process, whose model is only a shape here).

Registered by name; modules are imported only when chosen, so listing names costs nothing.
"""

from __future__ import annotations

import importlib
from typing import Any

from harness.backends.base import CAPABILITIES, Backend, check_capabilities

__all__ = ["CAPABILITIES", "Backend", "DEFAULT", "check_capabilities", "create", "names"]

DEFAULT = "hf"
_REGISTRY: dict[str, str] = {
    "hf": "harness.backends.hf:HFEager",
    "hf-classifier": "harness.backends.hf_classifier:HFClassifier",
    "remote": "harness.backends.remote:RemoteEngine",
}


def names() -> tuple[str, ...]:
    return tuple(_REGISTRY)


def create(name: str = DEFAULT) -> Any:
    """A fresh backend instance of the registered `name`."""
    if name not in _REGISTRY:
        raise KeyError(f"backend {name!r} is not registered: choose one of {', '.join(_REGISTRY)}")
    module, cls = _REGISTRY[name].split(":")
    return getattr(importlib.import_module(module), cls)()
