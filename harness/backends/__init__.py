"""Backends: what executes the model (`base`: the interface and its capabilities; `hf`: Hugging Face eager;
`compiled`: torch.compile over it; `remote`: an engine in another process, whose model is only a shape here).

A scenario names the backend it runs on (Scenario.backend); the `backend` config group (eager | compile)
chooses how that one executes: `for_run` maps the pair to the registered implementation.

Registered by name; modules are imported only when chosen, so listing names costs nothing. A plugin
(harness.plugins: a module named in HARNESS_PLUGINS) adds one with `register`; a scenario chooses it by
name (Spec.backend).
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

from harness.backends.base import CAPABILITIES, Backend, check_capabilities
from harness.errors import UnsupportedError
from harness.plugins import load

__all__ = ["CAPABILITIES", "Backend", "DEFAULT", "check_capabilities", "create", "for_run", "names", "register"]

DEFAULT = "hf"
_REGISTRY: dict[str, Any] = {
    "hf": "harness.backends.hf:HFEager",
    "hf-classifier": "harness.backends.hf_classifier:HFClassifier",
    "remote": "harness.backends.remote:RemoteEngine",
    "hf-compile": "harness.backends.compiled:HFCompiled",
}
# backend=compile: the compiled implementation of each backend a scenario may name
COMPILED = {"hf": "hf-compile"}


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


def for_run(name: str, config: Mapping[str, Any]) -> Any:
    """The backend instance for a scenario that runs on `name`, as the `backend` group chooses (eager: `name`
    itself). Raises UnsupportedError where the choice has no implementation for that backend."""
    chosen = (config.get("backend") or {}).get("name", "eager")
    if chosen == "eager":
        return create(name)
    if chosen != "compile":
        raise UnsupportedError(f"backend={chosen} is not known: choose eager or compile")
    if name not in COMPILED:
        workload = config["workload"]["name"]
        raise UnsupportedError(
            f"backend=compile compiles the Hugging Face eager backend (hf); workload={workload} runs on {name!r} "
            f"here, which it cannot compile"
        )
    w = config["workload"]
    max_cache_len = config["seq_len"] + int(w.get("decode_tokens") or 0) + 1
    module, cls = _REGISTRY[COMPILED[name]].split(":")
    return getattr(importlib.import_module(module), cls)(config["backend"], max_cache_len)
