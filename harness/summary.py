"""The short table printed after a run or a sweep (terminal text, not the HTML report)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


def _ms(dist: Any) -> str:
    return f"{dist['p50'] * 1e3:.2f}" if isinstance(dist, dict) and dist.get("p50") is not None else "-"


def _num(value: Any, fmt: str) -> str:
    return format(value, fmt) if isinstance(value, (int, float)) else "-"


def label(key_fields: dict[str, Any]) -> str:
    f = key_fields
    return f"{f['model']} {f['precision']} bs={f['batch_size']} seq={f['seq_len']} gpus={f['gpus']}"


def table(records: Iterable[dict[str, Any]]) -> str:
    """One row per result: status, median latencies (ms), throughput and peak memory."""
    header = ("run", "status", "prefill p50 ms", "decode p50 ms/tok", "decode tok/s", "e2e tok/s", "peak MiB", "reason")
    rows = [header]
    for r in records:
        m = r.get("metrics") or {}
        peak = m.get("cuda_max_allocated_bytes", m.get("peak_rss_bytes"))
        reason = (r.get("reason") or "").splitlines()[0][:60] if r.get("reason") else ""
        rows.append(
            (
                label(r["key_fields"]),
                r["status"],
                _ms(m.get("prefill_latency_s")),
                _ms(m.get("decode_latency_s")),
                _num(m.get("decode_tok_per_s"), ".1f"),
                _num(m.get("e2e_tok_per_s"), ".1f"),
                _num(peak / 2**20 if isinstance(peak, (int, float)) else None, ".0f"),
                reason,
            )
        )
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(header))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
