"""Backends: what executes the model (`base`: the interface and its capabilities; `hf`: Hugging Face eager;
`remote`: an engine in another process, whose model is only a shape here).

Registered by name; modules are imported only when chosen, so listing names costs nothing. A plugin
(harness.plugins: a module named in HARNESS_PLUGINS) adds one with `register`; a scenario chooses it by
name (Spec.backend).
"""

from __future__ import annotations

import importlib
from typing import Any

from harness.backends.base import CAPABILITIES, Backend, check_capabilities
from harness.plugins import load

__all__ = ["CAPABILITIES", "Backend", "DEFAULT", "check_capabilities", "create", "names", "register"]

DEFAULT = "hf"
_REGISTRY: dict[str, Any] = {
    "hf": "harness.backends.hf:HFEager",
    "hf-classifier": "harness.backends.hf_classifier:HFClassifier",
    "remote": "harness.backends.remote:RemoteEngine",
}


def register(cls: Any) -> Any:
    """Class decorator: make `cls` (a harness.backends.base.Backend) available as `cls.name`."""
    _REGISTRY[cls.name] = cls
    return cls


def names() -> tuple[str, ...]:
    load()
    return tuple(_REGISTRY)


def create(name: str = DEFAULT) -> Any:
    """A fresh backend instance of the registered `name`."""
    load()
    if name not in _REGISTRY:
        raise KeyError(f"backend {name!r} is not registered: choose one of {', '.join(_REGISTRY)}")
    target = _REGISTRY[name]
    if isinstance(target, str):
        module, cls = target.split(":")
        target = getattr(importlib.import_module(module), cls)
    return target()
