"""Transforms: what changes the model before it runs, in the order `transforms=[...]` lists them (`base`: the
interface; `precision`: dtype and int8; `int4`: torchao weight-only int4; `prune`: magnitude pruning).

A transform is one module and one yaml: the module (harness/transforms/<name>.py, found by its file name and
imported when chosen) registers its class with `register`; conf/transform/<name>.yaml holds its settings
(`transform.<name>.<key>=...`). Others register themselves from a module named in HARNESS_PLUGINS
(comma-separated module names, imported on first use, in the CLI and in the worker alike), as the test
suite's own transform does (tests/plugins/).
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.transforms.base import Applied, Transform

__all__ = ["Applied", "Context", "Transform", "for_run", "load_dtype", "names", "register", "tag"]

PLUGINS_ENV = "HARNESS_PLUGINS"
DEFAULT = ("precision",)
_REGISTRY: dict[str, Any] = {}
_plugins_loaded: set[str] = set()
_NOT_TRANSFORMS = ("__init__", "base")


def _built_in() -> list[str]:
    """The modules of this package that are transforms, by file name (precision first): nothing is imported."""
    found = sorted(p.stem for p in Path(__file__).parent.glob("*.py") if p.stem not in _NOT_TRANSFORMS)
    return sorted(found, key=lambda n: n != "precision")


@dataclass(frozen=True)
class Context:
    """What every transform of a run is built with: the run's config and where it runs."""

    config: Mapping[str, Any]
    precision_mode: str  # harness.transforms.precision WEIGHTS or AUTOCAST (Scenario.precision_mode)
    device_type: str
    cuda: Any = None  # torch.cuda, or None without a GPU
    holds_weights: bool = True  # False: a remote engine holds the weights (the backend has a meta shape)


def register(cls: Any) -> Any:
    """Class decorator: make `cls` (a harness.transforms.base.Transform class) available as `cls.name`."""
    _REGISTRY[cls.name] = cls
    return cls


def _load_plugins() -> None:
    for module in filter(None, (m.strip() for m in os.environ.get(PLUGINS_ENV, "").split(","))):
        if module not in _plugins_loaded:
            _plugins_loaded.add(module)
            importlib.import_module(module)


def names() -> tuple[str, ...]:
    """Every transform name (built-in first). Imports no transform module but plugins."""
    _load_plugins()
    return tuple(dict.fromkeys([*_built_in(), *_REGISTRY]))


def get(name: str) -> Any:
    """The transform class registered as `name` (a built-in one: its module imported first)."""
    _load_plugins()
    if name not in _REGISTRY and name in _built_in():
        importlib.import_module(f"{__name__}.{name}")
    if name not in _REGISTRY:
        raise KeyError(f"transform {name!r} is not registered: choose one of {', '.join(names())}")
    return _REGISTRY[name]


def listed(config: Mapping[str, Any]) -> list[str]:
    """The run's transform names, in order (results from before `transforms` existed: precision alone)."""
    return list(config.get("transforms") or DEFAULT)


def settings(config: Mapping[str, Any], name: str) -> dict[str, Any]:
    """transform.<name> of the config: the settings of conf/transform/<name>.yaml and its overrides."""
    return dict((config.get("transform") or {}).get(name) or {})


def validate(config: Mapping[str, Any]) -> None:
    """Raise harness.errors.ConfigError for an unknown, repeated or misplaced name, or a bad setting."""
    from harness.errors import ConfigError

    chain = listed(config)
    for name in chain:
        if name not in names():
            raise ConfigError("transforms", name, f"choose from {', '.join(names())}")
        if chain.count(name) > 1:
            raise ConfigError("transforms", chain, f"lists {name} twice: each transform applies once")
    if chain[0] != "precision":
        raise ConfigError("transforms", chain, "must start with precision (it decides the dtype the model is built in)")
    for name in chain:  # a transform without settings (precision: its own group) has none to check
        values = settings(config, name)
        check = getattr(get(name), "validate", None) if values else None
        if check is not None:
            check(values)


def tag(config: Mapping[str, Any]) -> str | None:
    """The transforms as the run's key and label show them ("precision+prune0.5"); None at the default."""
    chain = listed(config)
    if tuple(chain) == DEFAULT:
        return None
    return "+".join(_tag(name, settings(config, name)) for name in chain)


def _tag(name: str, values: Mapping[str, Any]) -> str:
    if not values:  # nothing set: its name (without importing it)
        return name
    own = getattr(get(name), "tag", None) if name in names() else None
    if own is not None:
        return own(values)
    return f"{name}-{hashlib.sha256(json.dumps(values, sort_keys=True).encode()).hexdigest()[:6]}"


def for_run(
    config: Mapping[str, Any], precision_mode: str, device_type: str, cuda: Any = None, holds_weights: bool = True
) -> list[Transform]:
    """The run's transforms, built in order. `holds_weights` False (a remote backend): the weights live in
    another process; transforms record what that engine does rather than change a model here."""
    ctx = Context(config, precision_mode, device_type, cuda, holds_weights)
    return [get(name).for_run(ctx, settings(config, name)) for name in listed(config)]


def load_dtype(chain: Sequence[Transform]) -> Any:
    """The dtype to build the model in: the first transform's that has an opinion (precision's)."""
    return next((d for d in (t.load_dtype() for t in chain) if d is not None), None)
