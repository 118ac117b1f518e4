"""Every result file → one flat pandas DataFrame (one row per run, units in the column names).

Columns (docs/results.md, "Report columns"): the key fields (`workload`, `model`, `precision`, ...), `status`,
`reason`, `sweep`, `command`; every inference metric under its own name (distributions flattened as
`<name>_p50`, `<name>_p99`, `<name>_n`, ...); `peak_memory_bytes` (the GPU allocator peak where there is one,
else the RSS peak); and the sections `quality_*`, `cost_*`, `energy_*`, `timing_*`, `env_*` flattened with
`_` (so `cost.usd_per_1m_tokens_decode` becomes `cost_usd_per_1m_tokens_decode` the day cost lands).
"""

from __future__ import annotations

import shlex
from collections.abc import Iterable, Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

import pandas as pd

from harness import results
from harness.config import CONF_DIR

KEY_COLUMNS = ("workload", "model", "precision", "batch_size", "seq_len", "decode_tokens", "gpus", "seed", "device")
GROUPS = ("model", "precision", "workload", "hardware")  # Hydra config groups: chosen by their `name`
# what the reproducing command always spells out, even at its default (the summary's promise)
ALWAYS = ("model", "precision", "batch_size", "seq_len")
# run bookkeeping that does not change what is measured
NOT_REPRODUCED = ("sweep", "results_dir", "resume")


def _flatten(obj: Any, prefix: str, out: dict[str, Any]) -> None:
    """Nested dicts → `prefix_key_sub` columns; lists are left out (they are not one figure)."""
    if isinstance(obj, Mapping):
        for k, v in obj.items():
            _flatten(v, f"{prefix}_{k}" if prefix else str(k), out)
    elif not isinstance(obj, (list, tuple)):
        out[prefix] = obj


def flatten_result(record: Mapping[str, Any], sweep: str, path: Path | None = None) -> dict[str, Any]:
    """One result record as one flat row."""
    row: dict[str, Any] = {"sweep": sweep}
    row.update(record.get("key_fields") or {})
    row["status"] = record.get("status")
    row["reason"] = record.get("reason")
    row["created_at"] = record.get("created_at")
    _flatten(record.get("metrics") or {}, "", row)  # metric names already carry their units
    m = record.get("metrics") or {}
    peak = m.get("cuda_max_allocated_bytes")
    row["peak_memory_bytes"] = peak if peak is not None else m.get("peak_rss_bytes")
    for k, v in (record.get("model") or {}).items():
        row.setdefault(k, v)
    _flatten(record.get("precision") or {}, "precision", row)
    row["precision"] = (record.get("key_fields") or {}).get("precision")  # the name, not the section
    for section in ("quality", "cost", "energy", "timing"):
        value = record.get(section)
        row[section] = None if value is None else "present"  # null section ⇒ "not measured" is visible
        _flatten(value or {}, section, row)
    _flatten(record.get("environment") or {}, "env", row)
    row["repeats_n"] = len(record.get("repeats") or [])
    row["command"] = reproduce_command(record.get("config") or {})
    row["result_path"] = str(path) if path is not None else None
    return row


def load_frame(dirs: Iterable[Path | str]) -> pd.DataFrame:
    """All readable result files under `dirs` as one DataFrame; `sweep` is each run's sweep folder name."""
    rows = []
    for d in dirs:
        d = Path(d)
        for path, record in results.iter_results(d):
            # results/<sweep>/<run>/result.json: the sweep is the run folder's parent, wherever `d` points
            sweep = path.parent.parent.name if path.parent != d else d.parent.name
            rows.append(flatten_result(record, sweep, path))
    frame = pd.DataFrame(rows)
    if not frame.empty:
        frame = frame.sort_values(["sweep", *[c for c in KEY_COLUMNS if c in frame]], kind="stable")
        frame = frame.reset_index(drop=True)
    return frame


def parquet_available() -> bool:
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        return False
    return True


def save(frame: pd.DataFrame, out_dir: Path) -> list[Path]:
    """runs.csv, and runs.parquet when pyarrow is installed; returns the paths written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = [out_dir / "runs.csv"]
    frame.to_csv(written[0], index=False)
    if not parquet_available():
        return written
    # mixed-type object columns (e.g. a field that is a number in one run and text in another) become text
    safe = frame.copy()
    for col in safe.columns[[dt == object for dt in safe.dtypes]]:  # noqa: E721 - a dtype, not a type
        if safe[col].map(type).nunique(dropna=True) > 1:
            safe[col] = safe[col].map(lambda v: v if v is None else str(v))
    safe.to_parquet(out_dir / "runs.parquet", index=False)
    written.append(out_dir / "runs.parquet")
    return written


@lru_cache(maxsize=64)
def _preset(group: str, name: str) -> dict[str, Any] | None:
    """conf/<group>/<name>.yaml as a dict, or None when there is no such preset."""
    from omegaconf import OmegaConf

    path = CONF_DIR / group / f"{name}.yaml"
    if not path.is_file():
        return None
    return OmegaConf.to_container(OmegaConf.load(path))


@lru_cache(maxsize=1)
def _defaults() -> dict[str, Any]:
    """The schema's defaults with conf/config.yaml's top-level values over them."""
    from dataclasses import asdict

    from omegaconf import OmegaConf

    from harness.config import HarnessConfig

    base = asdict(HarnessConfig())
    top = OmegaConf.to_container(OmegaConf.load(CONF_DIR / "config.yaml"))
    for k, v in top.items():
        if k in base and not isinstance(v, dict):
            base[k] = v
        elif k in base and isinstance(v, dict):
            base[k] = {**base[k], **v}
    return base


def _value(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return str(v).lower()
    return str(v)


def reproduce_command(config: Mapping[str, Any]) -> str:
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
            for sub, sv in v.items():
                if (defaults.get(k) or {}).get(sub) != sv:
                    rest.append(f"{k}.{sub}={_value(sv)}")
        elif k in ALWAYS or defaults.get(k) != v:
            (first if k in ALWAYS else rest).append(f"{k}={_value(v)}")
    return "python -m harness " + " ".join(shlex.quote(a) for a in first + rest)
