"""Scenarios: what is timed inside a run (`base`: the interface; `inference`, `training`, `serving`), by name.

A scenario is one module and one config file (conf/workload/<name>.yaml, `workload.name: <name>`).
Built-in ones are listed below, each with its torch-free declaration (harness/scenarios/specs.py), which
`spec` returns to the CLI and the launcher so that they never import torch; others register themselves
with `register` from a module named in the HARNESS_PLUGINS environment variable (comma-separated module
names, imported on first use, in the CLI and in the worker process alike) — this is how the test suite adds
one. A plugin's Scenario class is its own Spec.
"""

from __future__ import annotations

import importlib
from typing import Any

from harness.plugins import PLUGINS_ENV, load

__all__ = ["PLUGINS_ENV", "all_specs", "get", "names", "register", "spec", "store_schemas"]
_REGISTRY: dict[str, Any] = {
    "inference": "harness.scenarios.inference:Inference",
    "training": "harness.scenarios.training:Training",
    "serving": "harness.scenarios.serving:Serving",
    "classification": "harness.scenarios.classification:Classification",
    "distill": "harness.scenarios.distill:Distill",
    "classify": "harness.scenarios.classify:Classify",
}
# what each shipped workload is, without torch (a Spec; the Scenario above subclasses it). A scenario
# without one here (a plugin's class is both) answers `spec` with its Scenario class.
_SPECS: dict[str, str] = {
    "inference": "harness.scenarios.specs:InferenceSpec",
    "training": "harness.scenarios.specs:TrainingSpec",
    "serving": "harness.scenarios.specs:ServingSpec",
    "classification": "harness.scenarios.specs:ClassificationSpec",
    "distill": "harness.scenarios.specs:DistillSpec",
    "classify": "harness.scenarios.specs:ClassifySpec",
}


def register(cls: Any) -> Any:
    """Class decorator: make `cls` (a harness.scenarios.base.Scenario) available as `cls.name`."""
    _REGISTRY[cls.name] = cls
    _SPECS.pop(cls.name, None)  # the class declares itself
    return cls


def names() -> tuple[str, ...]:
    """Every registered scenario name (built-in first). Imports no scenario module but plugins."""
    load()
    return tuple(_REGISTRY)


def _resolve(table: dict[str, Any], name: str) -> Any:
    target = table[name]
    if isinstance(target, str):
        module, cls = target.split(":")
        target = table[name] = getattr(importlib.import_module(module), cls)
    return target


def get(name: str) -> Any:
    """An instance of the scenario registered as `name` (its module may import torch: the worker's side)."""
    load()
    if name not in _REGISTRY:
        raise KeyError(f"scenario {name!r} is not registered: choose one of {', '.join(_REGISTRY)}")
    return _resolve(_REGISTRY, name)()


def spec(name: str, strict: bool = True) -> Any:
    """What the workload `name` is (a harness.scenarios.base.Spec): keys, slug, config, objectives, summary.
    The shipped ones import no torch, so the CLI and the launcher ask this, never `get`. strict=False: a
    name not registered in this process (a stored result of a plugin not loaded now) gets the base Spec's
    answers, which are what harness.results answered for any name it did not know before the seams."""
    load()
    if name in _SPECS:
        return _resolve(_SPECS, name)()
    if not strict and name not in _REGISTRY:
        from harness.scenarios.base import Spec

        return Spec()
    return get(name)


def all_specs() -> tuple[Any, ...]:
    """Every registered workload's Spec, built-in first."""
    return tuple(spec(n) for n in names())


def store_schemas() -> None:
    """Store each workload's schema (Spec.schema) in Hydra's ConfigStore as `workload/<name>_schema`, which
    conf/workload/<name>.yaml names first in its defaults list. A scenario with a schema and no yaml there (a
    plugin's) is also stored as the option `workload/<name>`: its schema's defaults, named <name>."""
    from hydra.core.config_store import ConfigStore

    from harness.config import CONF_DIR

    store = ConfigStore.instance()
    for s in all_specs():
        if s.schema is None:
            continue
        store.store(group="workload", name=f"{s.name}_schema", node=s.schema)
        if not (CONF_DIR / "workload" / f"{s.name}.yaml").is_file():
            store.store(group="workload", name=s.name, node=s.schema(name=s.name))


def schema_owners(field: str) -> list[str]:
    """The workloads whose schema has `field` (a key under `workload`), built-in first."""
    from harness.scenarios.schemas import schema_fields

    return [s.name for s in all_specs() if s.schema is not None and field in schema_fields(s.schema)]
