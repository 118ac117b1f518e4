"""The short table printed after a run or a sweep (terminal text, not the HTML report)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from harness import metrics


def _ms(dist: Any) -> str:
    return f"{dist['p50'] * 1e3:.2f}" if isinstance(dist, dict) and dist.get("p50") is not None else "-"


def _num(value: Any, fmt: str) -> str:
    return format(value, fmt) if isinstance(value, (int, float)) else "-"


def label(key_fields: dict[str, Any]) -> str:
    f = key_fields
    return f"{f['model']} {f['precision']} bs={f['batch_size']} seq={f['seq_len']} gpus={f['gpus']}"


def headline(r: dict[str, Any]) -> str:
    """The one figure a progress line shows for an ok run."""
    m = r["metrics"]
    if "eval_loss" in m:  # a run that trains
        tok_per_s = _num(m.get("train_tok_per_s"), ".0f")
        return f"eval loss {m['eval_loss_initial']:.3f} -> {m['eval_loss']:.3f}, {tok_per_s} tok/s"
    return f"decode {_num(m.get('decode_tok_per_s'), '.1f')} tok/s"


def _peak_mib(m: dict[str, Any]) -> str:
    peak = m.get("cuda_max_allocated_bytes", m.get("peak_rss_bytes"))
    return _num(peak / 2**20 if isinstance(peak, (int, float)) else None, ".0f")


def _reason(r: dict[str, Any]) -> str:
    return (r.get("reason") or "").splitlines()[0][:60] if r.get("reason") else ""


def _cell(metric: Any, m: dict[str, Any]) -> str:
    """A registry metric as the terminal shows it: distributions as p50 in ms, rates and losses as numbers."""
    value = m.get(metric.name)
    if metric.distribution:
        return _ms(value)
    if metric.name == "target":
        target = value or {}
        return "-" if target.get("target_eval_loss") is None else ("yes" if target.get("reached") else "no")
    return _num(value, ".3f" if metric.unit == "nats" else (".0f" if metric.name == "train_tok_per_s" else ".1f"))


def table(records: Iterable[dict[str, Any]]) -> str:
    """One row per result (one table per scenario): status, the scenario's summary metrics (harness.metrics),
    peak memory, reason."""
    records = list(records)
    out = []
    for workload in dict.fromkeys(r["key_fields"]["workload"] for r in records):  # in order of appearance
        chosen = [r for r in records if r["key_fields"]["workload"] == workload]
        columns = metrics.summary_columns(workload)
        header = ("run", "status", *(c.label for c in columns), "peak MiB", "reason")
        rows = [header] + [
            (
                label(r["key_fields"]),
                r["status"],
                *(_cell(c, r.get("metrics") or {}) for c in columns),
                _peak_mib(r.get("metrics") or {}),
                _reason(r),
            )
            for r in chosen
        ]
        widths = [max(len(str(x[i])) for x in rows) for i in range(len(header))]
        lines = ["  ".join(str(c).ljust(w) for c, w in zip(x, widths, strict=True)).rstrip() for x in rows]
        lines.insert(1, "  ".join("-" * w for w in widths))
        out.append("\n".join(lines))
    return "\n\n".join(out)
