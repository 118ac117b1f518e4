"""The command line that measures one run again, rebuilt from the resolved config in its result."""

from __future__ import annotations

import dataclasses
import shlex
from collections.abc import Mapping
from typing import Any

from omegaconf import OmegaConf

from harness import config as config_mod

# measured parameters and the timing policy: what decides the figures (not resume, sweep, results_dir)
_SCALARS = ("batch_size", "seq_len", "gpus", "seed", "repeats", "threads", "timeout_s", "memory_limit_bytes")


def _group_defaults(group: str, name: str, schema: type) -> dict[str, Any]:
    """A config group preset as composed: the dataclass defaults, then conf/<group>/<name>.yaml."""
    values = {f.name: f.default for f in dataclasses.fields(schema) if f.default is not dataclasses.MISSING}
    path = config_mod.CONF_DIR / group / f"{name}.yaml"
    if path.is_file():
        values.update(OmegaConf.to_container(OmegaConf.load(path)))
    return values


def _fmt(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def command(config: Mapping[str, Any], sweep: str = "gate-repro") -> str:
    """`python -m harness ...` with the overrides that rebuild this config (differences from the presets)."""
    args = [
        f"model={config['model']['name']}",
        f"precision={config['precision']['name']}",
        f"workload={config['workload']['name']}",
        f"hardware={config['hardware']['name']}",
    ]
    for group, schema in (
        ("model", config_mod.ModelConfig),
        ("workload", config_mod.WorkloadConfig),
        ("hardware", config_mod.HardwareConfig),
    ):
        preset = _group_defaults(group, config[group]["name"], schema)
        args += [
            f"{group}.{k}={_fmt(v)}" for k, v in config[group].items() if k != "name" and preset.get(k, object()) != v
        ]
    defaults = config_mod.HarnessConfig()
    args += [f"{k}={_fmt(config[k])}" for k in _SCALARS if k in config and config[k] != getattr(defaults, k)]
    return shlex.join(["python", "-m", "harness", *args, f"sweep={sweep}"])
