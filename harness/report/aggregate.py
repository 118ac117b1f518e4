"""Every result file → one flat pandas DataFrame (one row per run, units in the column names).

Columns (docs/results.md, "Report columns"): the key fields (`workload`, `model`, `precision`, ...), `status`,
`reason`, `sweep`, `command`; every metric under its own name (distributions flattened as
`<name>_p50`, `<name>_p99`, `<name>_n`, ...); `peak_memory_bytes` (the GPU allocator peak where there is one,
else the RSS peak); and the sections `quality_*`, `cost_*`, `energy_*`, `timing_*`, `env_*` flattened with
`_` (so `cost.usd_per_1m_tokens_decode` becomes `cost_usd_per_1m_tokens_decode`); lists are left out, but
`ttft_s_by_turn` (serving conversations) as JSON text. Which of these the
report shows, and the default objectives, come from the metric registry (harness.metrics).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from harness import interference, reproduce, results

KEY_COLUMNS = ("workload", "model", "precision", "batch_size", "seq_len", "decode_tokens", "gpus", "seed", "device")


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
    row["key"] = record.get("key")  # the canonical key (speculative runs pair with their run without a draft)
    row["status"] = record.get("status")
    row["reason"] = record.get("reason")
    row["created_at"] = record.get("created_at")
    _flatten(record.get("metrics") or {}, "", row)  # metric names already carry their units
    m = record.get("metrics") or {}
    if isinstance(m.get("ttft_s_by_turn"), list):  # a list, one figure per turn: kept as JSON text
        row["ttft_s_by_turn"] = json.dumps(m["ttft_s_by_turn"])
    peak = m.get("cuda_max_allocated_bytes")
    row["peak_memory_bytes"] = peak if peak is not None else m.get("peak_rss_bytes")
    for k, v in (record.get("model") or {}).items():
        row.setdefault(k, v)
    _flatten(record.get("precision") or {}, "precision", row)
    row["precision"] = (record.get("key_fields") or {}).get("precision")  # the name, not the section
    for section in ("quality", "cost", "energy", "timing", "weights"):
        value = record.get(section)
        row[section] = None if value is None else "present"  # null section ⇒ "not measured" is visible
        _flatten(value or {}, section, row)
    _flatten(record.get("environment") or {}, "env", row)
    row.update(interference.columns(record))  # the disturbed flag (its section holds lists)
    _flatten(record.get("speculative") or {}, "speculative", row)  # workload.draft_model: the equality check
    row["repeats_n"] = len(record.get("repeats") or [])
    _flatten(record.get("adaptive_repeats") or {}, "adaptive_repeats", row)  # repeats=auto: how it stopped
    row["command"] = reproduce.for_result(record) if record.get("config") else ""
    row["result_path"] = str(path) if path is not None else None
    return row


def load_frame(dirs: Iterable[Path | str], damaged: list[tuple[Path, str]] | None = None) -> pd.DataFrame:
    """All usable result files under `dirs` as one DataFrame; `sweep` is each run's sweep folder name.
    Damaged files are left out: appended to `damaged` as (path, what is wrong), else named in a warning."""
    rows = []
    for d in dirs:
        d = Path(d)
        for path, record in results.iter_results(d, damaged):
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
