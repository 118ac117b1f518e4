"""The command line that measures a run again: from the run's own Hydra overrides (result `overrides`,
stored at launch), or, for result files written before that field, rebuilt from the resolved config.

Shared by the report (a command beside every run) and the gate (a command beside every flagged run).
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from harness.config import CONF_DIR

GROUPS = ("model", "precision", "backend", "workload", "hardware", "dist")  # Hydra config groups: chosen by `name`
ALWAYS = ("model", "precision", "batch_size", "seq_len")  # spelled out even at their defaults
NOT_REPRODUCED = ("sweep", "results_dir", "resume")  # bookkeeping: does not change what is measured


@lru_cache(maxsize=64)
def _preset(group: str, name: str) -> dict[str, Any] | None:
    """conf/<group>/<name>.yaml as the group's node (a `@package _global_` file: its node), or None."""
    from omegaconf import OmegaConf

    path = CONF_DIR / group / f"{name}.yaml"
    if not path.is_file():
        return None
    values = OmegaConf.to_container(OmegaConf.load(path))
    return values.get(group, values) if isinstance(values.get(group), dict) else values


@lru_cache(maxsize=1)
def _defaults() -> dict[str, Any]:
    """The schema's defaults with conf/config.yaml's top-level values over them."""
    from omegaconf import OmegaConf

    from harness.config import LEGACY_WORKLOAD, HarnessConfig

    base = OmegaConf.to_container(OmegaConf.structured(HarnessConfig))
    # the workload's defaults as one node (the rebuild is for files from before `overrides`, which hold it)
    base["workload"] = dict(LEGACY_WORKLOAD)
    top = OmegaConf.to_container(OmegaConf.load(CONF_DIR / "config.yaml"))
    for k, v in top.items():
        if k in base:
            base[k] = {**base[k], **v} if isinstance(v, dict) and isinstance(base[k], dict) else v
    return base


def _value(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, (list, tuple)):  # Hydra's list syntax, strings quoted (a `{port}` stays text)
        return "[" + ",".join(_quoted(x) for x in v) + "]"
    return str(v)


def _quoted(v: Any) -> str:
    if isinstance(v, str):
        return "'" + v.replace("\\", "\\\\").replace("'", "\\'") + "'"
    return _value(v)


def _nested(prefix: str, node: Mapping[str, Any], base: Any, out: list[str]) -> None:
    """`prefix.key=value` for every leaf of `node` that differs from `base` (nested sections: dotted keys)."""
    for sub, sv in node.items():
        dv = base.get(sub) if isinstance(base, Mapping) else None
        if isinstance(sv, Mapping) and sv:
            _nested(f"{prefix}.{sub}", sv, dv, out)
        elif dv != sv:
            out.append(f"{prefix}.{sub}={_value(sv)}")


def command(config: Mapping[str, Any], sweep: str | None = None) -> str:
    """`python -m harness model=... precision=... batch_size=... seq_len=...` plus every other override
    that differs from the shipped defaults, so that the command measures the same configuration."""
    if not config:
        return ""
    defaults = _defaults()
    first: list[str] = []  # the groups' choices and the ALWAYS scalars, in that order ...
    rest: list[str] = []  # ... then every other difference from the defaults
    for group in GROUPS:
        node = config.get(group)
        if not isinstance(node, Mapping):
            continue
        name = node.get("name")
        preset = _preset(group, str(name)) if name is not None else None
        if group == "dist":  # dist has no `name`: a multinode run is spelled out key by key below
            base = defaults.get(group) or {}
        else:
            if group in ALWAYS or name != (defaults.get(group) or {}).get("name"):
                first.append(f"{group}={_value(name)}")
            base = {**(defaults.get(group) or {}), **(preset or {})}
        for k, v in node.items():
            if k != "name" and (k not in base or base[k] != v):
                rest.append(f"{group}.{k}={_value(v)}")
    for k, v in config.items():
        if k in GROUPS or k in NOT_REPRODUCED or k == "hydra":
            continue
        if isinstance(v, Mapping):
            _nested(k, v, defaults.get(k) or {}, rest)
        elif k in ALWAYS or defaults.get(k) != v:
            (first if k in ALWAYS else rest).append(f"{k}={_value(v)}")
    if sweep:
        rest.append(f"sweep={sweep}")
    return "python -m harness " + " ".join(shlex.quote(a) for a in first + rest)


def _override_key(arg: str) -> str:
    return arg.lstrip("+~").split("=", 1)[0]


def for_result(record: Mapping[str, Any], sweep: str | None = None) -> str:
    """The command for a result record: its stored overrides (the model, precision, batch size and
    sequence length spelled out first, as the run resolved them), else `command(config)` (older files)."""
    config = record.get("config") or {}
    overrides = record.get("overrides")
    if overrides is None:
        return command(config, sweep)
    kept = [a for a in overrides if _override_key(a) not in NOT_REPRODUCED and not _override_key(a).startswith("hydra")]
    given = {_override_key(a) for a in kept}
    first = []
    for k in ALWAYS:
        if k in given or k not in config:
            continue
        node = config[k]
        first.append(f"{k}={_value(node.get('name') if isinstance(node, Mapping) else node)}")
    rest = [*kept, f"sweep={sweep}"] if sweep else kept
    return "python -m harness " + " ".join(shlex.quote(a) for a in first + rest)
