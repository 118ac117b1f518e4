"""The report's sections as HTML fragments (every value escaped through html.esc/html.table)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from harness import adaptive, metrics
from harness.report import answer as answer_mod
from harness.report import quality_section
from harness.report.answer import config_label
from harness.report.html import code_cell, esc, fmt, missing, svg_img, table
from harness.report.pareto import Front
from harness.report.plots import display_scale


@dataclass
class Group:
    """One workload of one sweep: its runs, its N-objective front (the runs table's "on front") and its answer."""

    workload: str
    sweep: str
    rows: pd.DataFrame
    front: Front
    answer: answer_mod.Answer | None


def summary(groups: Sequence[Group], floor: float, charts: dict[str, str]) -> str:
    """The answer first: per workload, the recommendation in sentences, then its charts, then the counts."""
    parts = ['<section id="summary"><h2>The answer</h2>']
    several = len({g.sweep for g in groups}) > 1
    for workload in dict.fromkeys(g.workload for g in groups):
        mine = [g for g in groups if g.workload == workload]
        parts.append(f'<h3 id="{esc(anchor(workload))}">{esc(workload)}</h3>')
        heading = [(f"sweep {g.sweep}" if several else "", g.answer) for g in mine if g.answer]
        parts.append(answer_mod.html(heading))
        parts.append(charts.get(workload, ""))
        parts.append(_counts(mine))
    parts.append(
        f"<p class=\"muted\">Quality floor: {esc(fmt(floor))} of the fp32 reference's held-out task metric (MLPerf's "
        "rule): a run whose ratio interval lies wholly below it (verdict fail) stays in every table and chart, "
        "marked, and is never recommended; random weights get no verdict. Runs whose quality intervals overlap "
        "are ties: the cheapest of them is recommended, none is called better.</p></section>"
    )
    return "".join(parts)


def _counts(groups: Sequence[Group]) -> str:
    """Counts, the N-objective front's objectives and any skipped objective, behind a toggle."""
    r = pd.concat([g.rows for g in groups])
    ok = r["status"].eq("ok")
    cards = "".join(
        f'<div class="card"><b>{n}</b>{esc(label)}</div>'
        for label, n in (
            ("runs", len(r)),
            ("ok", int(ok.sum())),
            ("on the front", int(r["on_front"].sum())),
            ("disturbed", int((ok & answer_mod.disturbed(r)).sum())),
            ("quality fail", int((ok & ~r["quality_ok"]).sum())),
            ("failed / oom / unsupported", int((~ok).sum())),
        )
    )
    notes = []
    for g in groups:
        objectives = ", ".join(f"{o.label} ({o.sense}, column {c})" for o, c in g.front.active) or "none"
        notes.append(f"<p>Front ({esc(g.sweep)}) over: {esc(objectives)}.</p>")
        notes += [
            f'<p class="note">Objective <b>{esc(o.label)}</b> ({esc(o.sense)}): {esc(why)}.</p>'
            for o, why in g.front.skipped
        ]
    more = f"<details><summary>Objectives of the front</summary>{''.join(notes)}</details>"
    return f'<div class="cards">{cards}</div>{more}'


def anchor(workload: str) -> str:
    return "w-" + "".join(c if c.isalnum() else "-" for c in workload)


def plots(scaling_svg: str | None, scaling_note: str) -> str:
    parts = ['<section id="plots"><h2>Scaling efficiency</h2>']
    parts.append(svg_img(scaling_svg, "scaling efficiency against gpus") if scaling_svg else "")
    parts.append(f'<p class="muted">{esc(scaling_note)}</p></section>')
    return "".join(parts)


# (column, header): the full table; objective columns that are not here are added after
RUN_COLUMNS = (
    ("sweep", "sweep"),  # the run's name comes first (runs_table)
    ("workload", "workload"),
    ("model", "model"),
    ("precision", "precision"),
    ("batch_size", "bs"),
    ("seq_len", "seq"),
    ("gpus", "gpus"),
    ("status", "status"),
    ("disturbed", "disturbed"),
    ("interference_other_cpu_share", "others' CPU share"),
    *metrics.report_columns(in_metrics=True),  # latency, throughputs (harness.metrics, report=...)
    ("peak_memory_bytes", "peak MiB"),
    ("weights_kind", "weights"),
    ("quality_loss_nats_interval", "loss 95 % interval"),
    ("quality_accuracy_interval", "accuracy 95 % interval"),
    ("quality_eval_tokens", "eval tokens"),
    *metrics.report_columns(in_metrics=False),  # cost, energy, quality
)


def _cell(r: pd.Series, c: str) -> tuple[str, Any]:
    """A figure as the runs table shows it (bytes as MiB, latencies in ms), with its sort value."""
    v = r.get(c)
    unit = "bytes" if c.endswith("_bytes") else ("s" if c.endswith("_s") or "_s_p" in c else "")
    scale, _ = display_scale(c, unit)
    num = pd.to_numeric(pd.Series([v]), errors="coerce").iloc[0]
    numeric = not missing(num) and not isinstance(v, str) and not pd.api.types.is_bool(v)  # yes/no
    return (fmt(num * scale), num * scale) if numeric else (fmt(v), v)


def _row_class(r: pd.Series) -> str:
    cls = "front" if r["on_front"] else ""
    cls = "notok" if r["status"] != "ok" else ("failing" if not r["quality_ok"] else cls)
    return cls + (" disturbed" if is_disturbed(r) else "")


def compact_columns(frame: pd.DataFrame) -> list[tuple[str, str]]:
    """The runs table's default columns: per workload of the frame, its answer's quality (and interval),
    cost, throughput and peak memory (harness.report.answer.spec_for, labels from the metric registry)."""
    cols = [("sweep", "sweep")] if frame["sweep"].nunique() > 1 else []
    cols.append(("status", "status"))
    for workload in dict.fromkeys(frame.get("workload", pd.Series(dtype=object)).astype(str)):
        spec = answer_mod.spec_for(workload)
        if spec is None:
            continue
        cols.append((spec.quality.column, spec.quality.label))
        if spec.lo:  # quality_loss_nats_lo -> quality_loss_nats_interval (quality_section.annotate)
            cols.append((spec.lo.removesuffix("_lo") + "_interval", "95 % interval"))
        cost, speed = answer_mod.first_axis(frame, spec.cost), answer_mod.first_axis(frame, spec.speed)
        cols += [(cost.column, cost.label), (speed.column, speed.label), (spec.memory.column, "peak MiB")]
    return [(c, h) for c, h in dict.fromkeys(cols) if c in frame]


def runs_table(frame: pd.DataFrame, extra_columns: Sequence[tuple[str, str]]) -> str:
    """A compact table of every run (the columns that answer the question), and every column behind a toggle."""
    cols = [(c, h) for c, h in RUN_COLUMNS if c in frame] + [(c, u) for c, u in extra_columns if c in frame]
    unique: dict[str, str] = {}
    for c, h in cols:
        unique.setdefault(c, h)  # no column twice; the first (friendlier) header wins
    full = list(unique.items())
    tables = []
    for name, cols, tail in (
        ("runs compact", compact_columns(frame), ("quality verdict", "on front")),
        ("runs", full, ("quality verdict", "on front", "reason", "command")),
    ):
        headers = ["run", *[h for _, h in cols], *tail]
        rows = []
        for _, r in frame.iterrows():
            more = [r["quality_verdict_text"], "yes" if r["on_front"] else ""]
            if "command" in tail:
                more += ["" if missing(r.get("reason")) else r["reason"], code_cell(r["command"])]
            cells = [config_label(r), *[_cell(r, c) for c, _ in cols], *more]
            rows.append({"cls": _row_class(r), "cells": cells})
        tables.append(table(headers, rows, cls=name, sortable=True))
    return (
        '<section id="runs"><h2>All runs</h2><p class="muted">Click a column header to sort. Blue rows: on the '
        "front; red rows: below the quality floor; grey rows: failed, oom, unsupported or timed out; an orange "
        f"bar: disturbed (measured while other load ran beside it).</p>{tables[0]}"
        f"<details><summary>Every column ({len(headers)}), reasons and commands</summary>"
        f'<div class="wide">{tables[1]}</div></details></section>'
    )


def is_disturbed(row: pd.Series) -> bool:
    return bool(row.get("disturbed") == True)  # noqa: E712 - True, numpy's True; not None or NaN


def disturbed_note(frame: pd.DataFrame) -> str:
    """The note at the top of the page: every run measured while other load ran beside it, and why."""
    if "disturbed" not in frame:
        return ""
    bad = frame[[is_disturbed(r) for _, r in frame.iterrows()]]
    if bad.empty:
        return ""
    items = "".join(
        f"<li>{esc(r['sweep'])}: {esc(config_label(r))}: {esc(r.get('disturbed_reason'))}</li>"
        for _, r in bad.iterrows()
    )
    return (
        f'<div class="note" id="disturbed"><b>{len(bad)} disturbed run(s)</b>: measured while other processes '
        "loaded the machine beyond the interference thresholds (the result's <code>interference</code> section). "
        "Their timings are not comparable with undisturbed runs: they stay in every table and plot, marked "
        f"(orange), and should be measured again on a quiet machine.<ul>{items}</ul></div>"
    )


def adaptive_note(frame: pd.DataFrame) -> str:
    """The note at the top of the page: every repeats=auto run that stopped short of its target, and how."""
    prefix = "adaptive_repeats_"
    short = []
    for _, r in frame.iterrows():
        record = {k[len(prefix) :]: None if missing(v) else v for k, v in r.items() if str(k).startswith(prefix)}
        why = adaptive.shortfall(record)
        if why:
            short.append(f"<li>{esc(r['sweep'])}: {esc(config_label(r))}: {esc(why)}</li>")
    if not short:
        return ""
    return (
        f'<div class="note" id="adaptive"><b>{len(short)} repeats=auto run(s) short of their target</b>: they '
        "stopped at their cap with a wider interval than asked, so their figures are noisier than the others' "
        "(a machine that varies more than the target cannot reach it; benchmarks/adaptive_repeats.py measures "
        f"its floor).<ul>{''.join(short)}</ul></div>"
    )


def failures(frame: pd.DataFrame) -> str:
    bad = frame[frame["status"].ne("ok")]
    parts = ['<section id="failures"><h2>Failed runs and their reasons</h2>']
    if bad.empty:
        parts.append("<p>Every run finished with status ok.</p></section>")
        return "".join(parts)
    parts.append("<p>Failures are data: an oom at a batch size marks the edge of what fits.</p>")
    rows = [
        [r["sweep"], config_label(r), r["status"], "" if missing(r["reason"]) else r["reason"], code_cell(r["command"])]
        for _, r in bad.iterrows()
    ]
    headers = ["sweep", "configuration", "status", "reason", "command"]
    parts.append(f'<div class="wide">{table(headers, rows, sortable=True)}</div>')
    parts.append("</section>")
    return "".join(parts)


ENV_COLUMNS = (
    ("env_hostname", "host"),
    ("env_os", "OS"),
    ("env_python", "Python"),
    ("env_cpu_model", "CPU"),
    ("env_cpu_logical_cores", "logical cores"),
    ("env_memory_total_bytes", "memory"),
    ("env_device_type", "device type"),
    ("env_device_name", "device"),
    ("env_gpu_driver_version", "GPU driver"),
    ("env_cuda_version", "CUDA"),
    ("env_torch_threads", "torch threads"),
    ("env_packages_torch", "torch"),
    ("env_packages_transformers", "transformers"),
    ("env_packages_torchao", "torchao"),
    ("env_packages_harness", "harness"),
    ("env_git_commit", "git commit"),
    ("env_git_dirty", "uncommitted changes"),
)


def environment(frame: pd.DataFrame) -> str:
    cols = [(c, h) for c, h in ENV_COLUMNS if c in frame]
    distinct = frame[[c for c, _ in cols]].astype(str).drop_duplicates() if cols else pd.DataFrame()
    parts = ['<section id="environment"><h2>Environment</h2>']
    if len(distinct) > 1:
        differ = ", ".join(h for c, h in cols if distinct[c].nunique() > 1)
        parts.append(
            f'<p class="note">These results come from {len(distinct)} different environments (they differ in: '
            f"{esc(differ)}): compare across them with care.</p>"
        )

    def shown(c: str, v: Any) -> str:
        return f"{v / 2**30:.1f} GiB" if c.endswith("_bytes") and isinstance(v, (int, float)) else str(v)

    rows = [[h, "; ".join(sorted({shown(c, v) for v in frame[c] if not missing(v)})) or "–"] for c, h in cols]
    parts.append(table(["", "value(s)"], rows) + "</section>")
    return "".join(parts)


def _distinct(frame: pd.DataFrame, prefix: str, words: Sequence[str]) -> pd.DataFrame:
    """The distinct settings (as shown) of the matching columns, each with a `runs` column naming its runs."""
    cols = [c for c in frame.columns if c.startswith(prefix) and any(w in c for w in words)]
    if not cols:
        return pd.DataFrame()
    shown = frame[cols].dropna(how="all")
    if shown.empty:
        return pd.DataFrame()
    cells = shown.map(quality_section.cell)
    names = [config_label(frame.loc[i]) for i in shown.index]
    cells["runs"] = names
    grouped = cells.groupby(cols, sort=False, dropna=False)["runs"].agg(_run_list).reset_index()
    return grouped[["runs", *cols]]


def _run_list(names: pd.Series) -> str:
    names = list(names)
    return "; ".join(names) if len(names) <= 4 else f"{len(names)} runs: {'; '.join(names[:3])}; ..."


def cost_energy(frame: pd.DataFrame) -> str:
    parts = ['<section id="cost"><h2>Price sources and energy</h2><h3>Prices</h3>']
    has_cost = "cost" in frame and frame["cost"].notna().any()
    prices = _distinct(frame, "cost_", ("source", "as_of", "date", "provider", "instance", "per_hour", "price"))
    if not has_cost:
        parts.append(
            '<p class="note">Cost not measured: every result has <code>cost: null</code> (no price inputs '
            "for this hardware). No dollar figure is shown and cost objectives are skipped.</p>"
        )
    elif prices.empty:
        parts.append('<p class="note">Some results have a cost section but no price source or date in it.</p>')
    else:
        assumed = frame.get("cost_price_assumed", pd.Series(dtype=object)).astype(str).eq("True")
        if assumed.any():
            parts.append(
                '<p class="note">Price assumed for some runs: the machine is not in the catalog, so it is priced '
                "as the nearest entry of its CPU vendor and generation (see how). State yours with "
                "<code>hardware=&lt;entry&gt;</code> or <code>hardware.usd_per_hour=&lt;USD per hour&gt;</code>.</p>"
            )
        parts.append(quality_section.human_table(prices, "cost_"))
    parts.append("<h3>Energy</h3>")
    has_energy = "energy" in frame and frame["energy"].notna().any()
    how = _distinct(frame, "energy_", ("method", "source", "covers", "scope", "estimated", "measured"))
    if not has_energy:
        parts.append(
            '<p class="note">Energy not measured: every result has <code>energy: null</code>. No joule '
            "figure is shown, measured or estimated.</p>"
        )
    elif how.empty:
        parts.append(
            '<p class="note">Some results have an energy section that does not say how it was obtained: '
            "treat it as an estimate.</p>"
        )
    else:
        parts.append("<p>How energy was obtained (measured counters vs estimates), per distinct setting:</p>")
        parts.append(quality_section.human_table(how, "energy_"))
    parts.append("</section>")
    return "".join(parts)


def methodology(frame: pd.DataFrame, floor: float, files: Sequence[str]) -> str:
    repeats = sorted({int(v) for v in frame.get("repeats_n", pd.Series(dtype=float)).dropna() if v})
    timing = sorted({str(v) for v in frame.get("timing_method", pd.Series(dtype=object)).dropna()})
    items = [
        "Each configuration ran in its own fresh process; warm-up requests are excluded from every figure.",
        f"The timed measurement was repeated {', '.join(map(str, repeats)) or '–'} times per run; timing by "
        f"{', '.join(timing) or '–'}. Percentiles carry their sample count (n): a p99 from few samples is weak.",
        "Peak memory: the GPU allocator peak where there is a GPU, else the process's resident-set peak over "
        "the timed window.",
        "Quality (after the timed window, outside it): held-out text never trained on and never a timed prompt "
        "(the held-out documents of the fixed data split), scored as next-token cross-entropy (nats/token), "
        "perplexity and top-1 accuracy, each with n and a seeded bootstrap 95 % interval over evaluation windows. "
        "The same tokens go through the fp32 reference of the same weights; accuracy ratio = run / reference, "
        "perplexity ratio = reference perplexity / run perplexity, resampled in pairs. Verdict per ratio: pass "
        f"when the interval's lower bound is >= {fmt(floor)}, fail when its upper bound is below it, otherwise "
        "inconclusive (with an estimate of the tokens that would decide); the run's verdict is the worse one. "
        "Agreement and KL(reference || run) are diagnostics. fp32 runs are their own reference.",
        "Energy covers the timed window: NVML's energy counter per GPU (sampled power where it is missing), RAPL "
        "on CPUs where readable, otherwise codecarbon's offline estimate, labelled estimated; CO2e = kWh x PUE x "
        "grid intensity, both inputs shown in the results.",
        "Cost = device-hours x USD per device-hour from the hardware catalog (or hardware.usd_per_hour), plus "
        "energy x USD/kWh x PUE in on-prem mode; per-token and per-sample costs divide the rate by the measured "
        "throughput. No price, no dollar figure.",
        "Training: AdamW from the seeded initialisation on a fixed train/held-out split; eval loss on fixed "
        "held-out batches; time-to-target counts wall time from the first step, evaluations included (MLPerf).",
        "Random weights say nothing about quality: their figures are shown, labelled not meaningful, with no "
        "verdict. model.weights=trained (tiny's and small's default) trains the preset once to a fixed budget.",
        "Interference: each run records the CPU time other processes used on its cores over the timed window "
        "(/proc/stat busy time minus the run's own processes, as a share of its cores' time), steal time, load "
        "average, CPU frequency and other processes on its GPU (NVML). Above the interference.* thresholds the "
        "run is marked disturbed (orange): its figures are kept and shown, but are not comparable with a quiet "
        "machine's.",
        "Pareto front: per workload and sweep (every model together), among ok runs at or above the quality floor "
        "with every active "
        "objective measured, the runs no other run beats on every objective at once (ties stay together). "
        "An objective with no data is skipped and said so, never filled in. The knee is the front point closest "
        "to the ideal point once each objective is scaled to [0, 1] over the front.",
    ]
    what = "(every run, one row, flat columns with units)"
    links = "".join(f'<li><a href="{esc(f)}">{esc(f)}</a> {what}</li>' for f in files)
    return (
        '<section id="methodology"><h2>Methodology</h2><ul>'
        + "".join(f"<li>{esc(i)}</li>" for i in items)
        + f"</ul><h3>Data files beside this report</h3><ul>{links}</ul></section>"
    )
