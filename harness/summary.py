"""The short table printed after a run or a sweep (terminal text, not the HTML report)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


def _ms(dist: Any) -> str:
    return f"{dist['p50'] * 1e3:.2f}" if isinstance(dist, dict) and dist.get("p50") is not None else "-"


def _ms_q(dist: Any, q: str) -> str:
    return f"{dist[q] * 1e3:.1f}" if isinstance(dist, dict) and dist.get(q) is not None else "-"


def _num(value: Any, fmt: str) -> str:
    return format(value, fmt) if isinstance(value, (int, float)) else "-"


def label(key_fields: dict[str, Any]) -> str:
    f = key_fields
    if f.get("workload") == "serving":
        load = (
            "max_rate search"
            if f["search"] != "none"
            else f"{f['arrival']} " + (f"c={f['concurrency']}" if f["arrival"] == "closed" else f"rate={f['rate']:g}")
        )
        return f"{f['model']} {f['precision']} {f['engine']} {load} gpus={f['gpus']}"
    return f"{f['model']} {f['precision']} bs={f['batch_size']} seq={f['seq_len']} gpus={f['gpus']}"


def headline(r: dict[str, Any]) -> str:
    """The one figure a progress line shows for an ok run."""
    m = r["metrics"]
    if r["key_fields"]["workload"] == "training":
        tok_per_s = _num(m.get("train_tok_per_s"), ".0f")
        return f"eval loss {m['eval_loss_initial']:.3f} -> {m['eval_loss']:.3f}, {tok_per_s} tok/s"
    if r["key_fields"]["workload"] == "serving":
        cap = m.get("capacity_req_per_s")
        head = f"capacity {cap:.3g} req/s, " if cap is not None else ""
        req_per_s = _num(m.get("request_throughput_req_per_s"), ".2f")
        return f"{head}{req_per_s} req/s, TTFT p99 {_ms_q(m.get('ttft_s'), 'p99')} ms"
    return f"decode {_num(m.get('decode_tok_per_s'), '.1f')} tok/s"


def _peak_mib(m: dict[str, Any]) -> str:
    peak = m.get("cuda_max_allocated_bytes", m.get("peak_rss_bytes"))
    return _num(peak / 2**20 if isinstance(peak, (int, float)) else None, ".0f")


def _reason(r: dict[str, Any]) -> str:
    return (r.get("reason") or "").splitlines()[0][:60] if r.get("reason") else ""


def _inference_row(r: dict[str, Any]) -> tuple:
    m = r.get("metrics") or {}
    return (
        _ms(m.get("prefill_latency_s")),
        _ms(m.get("decode_latency_s")),
        _num(m.get("decode_tok_per_s"), ".1f"),
        _num(m.get("e2e_tok_per_s"), ".1f"),
    )


def _training_row(r: dict[str, Any]) -> tuple:
    m = r.get("metrics") or {}
    target = m.get("target") or {}
    reached = "-" if target.get("target_eval_loss") is None else ("yes" if target.get("reached") else "no")
    return (
        _ms(m.get("step_time_s")),
        _num(m.get("train_tok_per_s"), ".0f"),
        _num(m.get("eval_loss_initial"), ".3f"),
        _num(m.get("eval_loss"), ".3f"),
        reached,
    )


def _serving_row(r: dict[str, Any]) -> tuple:
    m = r.get("metrics") or {}
    return (
        _num(m.get("offered_rate_req_per_s"), ".3g"),
        _num(m.get("request_throughput_req_per_s"), ".2f"),
        _num(m.get("output_tok_per_s"), ".1f"),
        _ms_q(m.get("ttft_s"), "p99"),
        _ms_q(m.get("tpot_s"), "p99"),
        _num(m.get("goodput_req_per_s"), ".2f"),
        _num(m.get("capacity_req_per_s"), ".3g"),
    )


_COLUMNS = {
    "inference": (("prefill p50 ms", "decode p50 ms/tok", "decode tok/s", "e2e tok/s"), _inference_row),
    "training": (("step p50 ms", "train tok/s", "eval loss start", "eval loss end", "target"), _training_row),
    "serving": (
        ("rate req/s", "req/s", "out tok/s", "TTFT p99 ms", "TPOT p99 ms", "goodput req/s", "capacity req/s"),
        _serving_row,
    ),
}


def table(records: Iterable[dict[str, Any]]) -> str:
    """One row per result (one table per workload): status, medians, throughput, peak memory, reason."""
    records = list(records)
    out = []
    for workload, (columns, row) in _COLUMNS.items():
        chosen = [r for r in records if r["key_fields"]["workload"] == workload]
        if not chosen:
            continue
        header = ("run", "status", *columns, "peak MiB", "reason")
        rows = [header] + [
            (label(r["key_fields"]), r["status"], *row(r), _peak_mib(r.get("metrics") or {}), _reason(r))
            for r in chosen
        ]
        widths = [max(len(str(x[i])) for x in rows) for i in range(len(header))]
        lines = ["  ".join(str(c).ljust(w) for c, w in zip(x, widths, strict=True)).rstrip() for x in rows]
        lines.insert(1, "  ".join("-" * w for w in widths))
        out.append("\n".join(lines))
    return "\n\n".join(out)
