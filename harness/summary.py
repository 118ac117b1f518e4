"""The short table printed after a run or a sweep (terminal text, not the HTML report)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from harness import adaptive, interference, metrics, scenarios


def _ms(dist: Any, stat: str = "p50", fmt: str = ".2f") -> str:
    return f"{dist[stat] * 1e3:{fmt}}" if isinstance(dist, dict) and dist.get(stat) is not None else "-"


def _num(value: Any, fmt: str) -> str:
    return format(value, fmt) if isinstance(value, (int, float)) else "-"


def number_text(value: Any) -> str:
    """A count as written in a label: 8 whether it came as 8 or, from a report's table, 8.0."""
    return format(value, "g") if isinstance(value, (int, float)) else str(value)


def load_label(key_fields: dict[str, Any]) -> str | None:
    """A serving run's load ("poisson rate=8", "closed c=4", "max_rate search"); None for other runs.
    Accepts a report row's fields too (numbers as floats, absent ones None)."""
    f = key_fields
    if f.get("engine") is None:
        return None
    if f["search"] != "none":
        return "max_rate search"
    if f["arrival"] == "closed":
        return f"closed c={number_text(f['concurrency'])}"
    return f"{f['arrival']} rate={number_text(f['rate'])}"


def lever_label(key_fields: dict[str, Any]) -> str:
    """The backend and transforms beyond the defaults, as a label shows them (" compile +int4g32"); "" else.
    Accepts a report row's fields too (absent ones None or NaN)."""
    parts = []
    for k in ("backend", "transforms"):
        v = key_fields.get(k)
        if isinstance(v, str) and v:
            parts.append(v if k == "backend" else "+" + "+".join(v.split("+")[1:] or [v]))
    return "".join(f" {p}" for p in parts)


def _set(value: Any) -> bool:
    """A name that is set: not None, nor a report row's NaN."""
    return isinstance(value, str) and bool(value)


def label(key_fields: dict[str, Any]) -> str:
    f = key_fields
    load = load_label(f)
    prec = f"{f['precision']}{lever_label(f)}"
    n = number_text
    draft = f" draft={f['draft_model']} k={n(f['draft_tokens'])}" if _set(f.get("draft_model")) else ""
    if load is not None:  # a serving run: its load, not a batch, is what it is
        return f"{f['model']} {prec} {f['engine']} {load} gpus={n(f['gpus'])}{draft}"
    text = f"{f['model']} {prec} bs={n(f['batch_size'])} seq={n(f['seq_len'])} gpus={n(f['gpus'])}{draft}"
    return text + training_label(f) + classifier_label(f)


def training_label(key_fields: dict[str, Any]) -> str:
    """The training levers a run set, as a label suffix (" accum=4 ckpt"); "" for a run at their defaults.
    Accepts a report row's fields too (absent ones None or NaN, counts as floats)."""
    accum, ckpt = key_fields.get("grad_accum_steps"), key_fields.get("grad_checkpointing")
    out = f" accum={number_text(accum)}" if isinstance(accum, (int, float)) and accum == accum and accum != 1 else ""
    return out + (" ckpt" if ckpt == 1 else "")  # True, or 1.0 from a report row


def classifier_label(f: dict[str, Any]) -> str:
    """Which classifier a classify run serves: ' lora r8' / ' full' (harness-made), ' local' (model.path);
    "" for other runs (no `classifier` field, or NaN in a report row)."""
    which = f.get("classifier")
    if not isinstance(which, str):
        return ""
    if which != "harness":
        return " local"
    rank = f" r{number_text(f['lora_rank'])}" if f.get("finetune") == "lora" else ""
    return f" {f.get('finetune')}{rank}"


def classifier_cells(r: dict[str, Any] | None) -> tuple:
    """A classify run's summary cells: USD per 1k examples served, what its weights cost to make, accuracy with
    its interval, the verdict against fp32 (headers when r is None)."""
    if r is None:
        return ("USD/1k examples", "USD to make", "accuracy [95% CI]", "vs fp32")
    c, q, w = r.get("cost") or {}, r.get("quality") or {}, r.get("weights") or {}
    acc = "-"
    if q.get("accuracy") is not None:
        acc = f"{q['accuracy']:.3f} [{q['accuracy_lo']:.3f}, {q['accuracy_hi']:.3f}]"
    return (_usd(c.get("usd_per_1k_examples")), _usd(w.get("total_usd")), acc, q.get("verdict") or "-")


def headline(r: dict[str, Any]) -> str:
    """The one figure a progress line shows for an ok run."""
    m = r["metrics"]
    if "examples_per_s" in m:  # a classifier serving (workload=classify)
        verdict = (r.get("quality") or {}).get("verdict") or "-"
        acc, per_s = _num(m.get("eval_accuracy"), ".3f"), _num(m.get("examples_per_s"), ".1f")
        return f"{per_s} examples/s, accuracy {acc} (vs fp32: {verdict})"
    if "eval_accuracy" in m:  # a classifier that trains
        acc0, acc = (_num(m.get(k), ".3f") for k in ("eval_accuracy_initial", "eval_accuracy"))
        per_s = _num(m.get("samples_per_s"), ".1f")
        return f"accuracy {acc0} -> {acc}, macro-F1 {_num(m.get('eval_macro_f1'), '.3f')}, {per_s} examples/s"
    if "eval_loss" in m:  # a run that trains
        tok_per_s = _num(m.get("train_tok_per_s"), ".0f")
        return f"eval loss {m['eval_loss_initial']:.3f} -> {m['eval_loss']:.3f}, {tok_per_s} tok/s"
    if "request_throughput_req_per_s" in m:  # a run that serves a load
        cap = m.get("capacity_req_per_s")
        head = f"capacity {cap:.3g} req/s, " if cap is not None else ""
        req_per_s = _num(m.get("request_throughput_req_per_s"), ".2f")
        return f"{head}{req_per_s} req/s, TTFT p99 {_ms(m.get('ttft_s'), 'p99', '.1f')} ms"
    spec = f", acceptance {_num(m['acceptance_rate'], '.2f')}" if m.get("acceptance_rate") is not None else ""
    return f"decode {_num(m.get('decode_tok_per_s'), '.1f')} tok/s{spec}"


def headline_line(r: dict[str, Any]) -> str:
    """headline(), plus the mark of a run measured while other load disturbed it."""
    return headline(r) + (" (DISTURBED: see its warnings)" if interference.disturbed(r) else "")


def _status(r: dict[str, Any]) -> str:
    """The status cell: `ok (disturbed)` for a run measured beside other load (harness.interference)."""
    return f"{r['status']} (disturbed)" if interference.disturbed(r) else r["status"]


def _peak_mib(m: dict[str, Any]) -> str:
    peak = m.get("cuda_max_allocated_bytes", m.get("peak_rss_bytes"))
    return _num(peak / 2**20 if isinstance(peak, (int, float)) else None, ".0f")


def _reason(r: dict[str, Any]) -> str:
    return (r.get("reason") or "").splitlines()[0][:60] if r.get("reason") else ""


def _cell(metric: Any, m: dict[str, Any]) -> str:
    """A registry metric as the terminal shows it: distributions as p50 in ms, rates and losses as numbers."""
    value = m.get(metric.name)
    if metric.distribution:
        return _ms(value, metric.summary_stat, metric.fmt or ".2f")
    if metric.name == "target":
        target = value or {}
        return "-" if target.get("target_eval_loss") is None else ("yes" if target.get("reached") else "no")
    default = ".3f" if metric.unit == "nats" else (".0f" if metric.name == "train_tok_per_s" else ".1f")
    return _num(value, metric.fmt or default)


def _usd(value: Any) -> str:
    return _num(value, ".3g") if isinstance(value, (int, float)) else "-"


def _cost_cell(r: dict[str, Any]) -> str:
    """The run's headline dollar figure; `*` marks a price assumed from the nearest catalog entry."""
    c = r.get("cost") or {}
    # serving: per 1 M output tokens (at the measured load or at capacity); inference: generated; training: total
    text = _usd(c.get("usd_per_1m_output_tokens", c.get("usd_per_1m_tokens_generated", c.get("training_usd"))))
    return text + "*" if text != "-" and (c.get("price") or {}).get("assumed") else text


def _quality_cells(r: dict[str, Any]) -> tuple:
    q = r.get("quality") or {}
    loss = q.get("loss_nats")
    shown = "-" if loss is None else f"{loss:.3f} [{q['loss_nats_lo']:.3f}, {q['loss_nats_hi']:.3f}]"
    verdict = q.get("verdict") or ("not meaningful" if q.get("quality_meaningful") is False else "-")
    return shown, _num(q.get("accuracy"), ".3f"), verdict


def _extra(workload: str, r: dict[str, Any] | None) -> tuple:
    """Cost (and, where the weights run in this process, held-out quality) columns beside the registry's:
    headers when r is None. Which dollar figure and whether quality follows are the workload's
    (Spec.summary_cost, Spec.summary_quality): training's dollars are the run's total; the others' per 1 M tokens."""
    spec = scenarios.spec(workload, strict=False)
    if spec.summary_cells == "classifier":  # a classify run's own cells
        return classifier_cells(r)
    if r is None:
        # the registry's names: the same figure is called the same in the report, runs.csv and the gate
        per = metrics.get(*spec.summary_cost).label
        return (per, "held-out loss [95% CI]", "accuracy", "quality") if spec.summary_quality else (per,)
    return (_cost_cell(r), *_quality_cells(r)) if spec.summary_quality else (_cost_cell(r),)


def _notes(records: list[dict[str, Any]]) -> list[str]:
    """What the table's marks mean: an assumed price (*) and how to state the real one."""
    assumed = {((r.get("cost") or {}).get("price") or {}).get("how") for r in records if _assumed(r)}
    notes = [f"* price {how}; set hardware=<entry> or hardware.usd_per_hour=<USD/h> to state yours" for how in assumed]
    if any((r.get("cost") is None and r["status"] == "ok") for r in records):
        notes.append("USD '-': no price known for this hardware; set hardware.usd_per_hour=<USD per device-hour>")
    disturbed = [(label(r["key_fields"]), interference.disturbed(r)) for r in records if interference.disturbed(r)]
    if disturbed:
        lines = "".join(f"\n  {name}: {why}" for name, why in disturbed)
        notes.append(f"disturbed: {len(disturbed)} run(s) measured while other load ran beside them:{lines}")
    short = [(label(r["key_fields"]), adaptive.shortfall(r.get("adaptive_repeats"))) for r in records]
    short = [(name, why) for name, why in short if why]
    if short:
        lines = "".join(f"\n  {name}: {why}" for name, why in short)
        notes.append(
            f"repeats=auto: {len(short)} run(s) stopped short of their target, so their figures are noisier than "
            f"asked (a machine that varies more than the target cannot reach it: benchmarks/adaptive_repeats.py "
            f"measures this one's floor):{lines}"
        )
    return notes


def _assumed(r: dict[str, Any]) -> bool:
    return bool(((r.get("cost") or {}).get("price") or {}).get("assumed"))


def table(records: Iterable[dict[str, Any]]) -> str:
    """One row per result (one table per scenario): status, the scenario's summary metrics (harness.metrics),
    peak memory, reason."""
    records = list(records)
    out = []
    for workload in dict.fromkeys(r["key_fields"]["workload"] for r in records):  # in order of appearance
        chosen = [r for r in records if r["key_fields"]["workload"] == workload]
        columns = metrics.summary_columns(workload)
        header = ("run", "status", *(c.label for c in columns), *_extra(workload, None), "peak MiB", "reason")
        rows = [header] + [
            (
                label(r["key_fields"]),
                _status(r),
                *(_cell(c, r.get("metrics") or {}) for c in columns),
                *_extra(workload, r),
                _peak_mib(r.get("metrics") or {}),
                _reason(r),
            )
            for r in chosen
        ]
        widths = [max(len(str(x[i])) for x in rows) for i in range(len(header))]
        lines = ["  ".join(str(c).ljust(w) for c, w in zip(x, widths, strict=True)).rstrip() for x in rows]
        lines.insert(1, "  ".join("-" * w for w in widths))
        out.append("\n".join(lines))
    out.extend(_notes(records))
    return "\n\n".join(out)
