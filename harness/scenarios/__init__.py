"""Scenarios: what is timed inside a run (`base`: the interface; `inference`, `training`, `serving`), by name.

A scenario is one module and one config file (conf/workload/<name>.yaml, `workload.name: <name>`).
Built-in ones are listed below; others register themselves with `register` from a module named in
the HARNESS_PLUGINS environment variable (comma-separated module names, imported on first use, in
the CLI and in the worker process alike) — this is how the test suite adds one.
"""

from __future__ import annotations

import importlib
import os
from typing import Any

PLUGINS_ENV = "HARNESS_PLUGINS"
_REGISTRY: dict[str, Any] = {
    "inference": "harness.scenarios.inference:Inference",
    "training": "harness.scenarios.training:Training",
    "serving": "harness.scenarios.serving:Serving",
    "classification": "harness.scenarios.classification:Classification",
    "distill": "harness.scenarios.distill:Distill",
    "classify": "harness.scenarios.classify:Classify",
}
_plugins_loaded: set[str] = set()


def register(cls: Any) -> Any:
    """Class decorator: make `cls` (a harness.scenarios.base.Scenario) available as `cls.name`."""
    _REGISTRY[cls.name] = cls
    return cls


def _load_plugins() -> None:
    for module in filter(None, (m.strip() for m in os.environ.get(PLUGINS_ENV, "").split(","))):
        if module not in _plugins_loaded:
            _plugins_loaded.add(module)
            importlib.import_module(module)


def names() -> tuple[str, ...]:
    """Every registered scenario name (built-in first). Imports no scenario module but plugins."""
    _load_plugins()
    return tuple(_REGISTRY)


def get(name: str) -> Any:
    """An instance of the scenario registered as `name`."""
    _load_plugins()
    if name not in _REGISTRY:
        raise KeyError(f"scenario {name!r} is not registered: choose one of {', '.join(_REGISTRY)}")
    target = _REGISTRY[name]
    if isinstance(target, str):
        module, cls = target.split(":")
        target = _REGISTRY[name] = getattr(importlib.import_module(module), cls)
    return target()
