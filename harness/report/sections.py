"""The report's sections as HTML fragments (every value escaped through html.esc/html.table)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from harness import adaptive, metrics
from harness.report import quality_section
from harness.report.html import code_cell, esc, fmt, missing, svg_img, table
from harness.report.pareto import Front
from harness.report.plots import display_scale
from harness.summary import label as run_label


@dataclass
class Group:
    """One workload × model: its runs, its front and its plot."""

    workload: str
    model: str
    rows: pd.DataFrame
    front: Front
    svg: str | None


def _config(row: pd.Series) -> str:
    r = row.get
    weights = "" if missing(r("weights_kind")) else f" ({r('weights_kind')} weights)"
    return run_label({k: (None if missing(v) else v) for k, v in row.items()}) + weights


config_label = _config  # the run's name in every table


def _value(row: pd.Series, column: str, unit: str) -> str:
    scale, shown_unit = display_scale(column, unit)
    v = pd.to_numeric(pd.Series([row.get(column)]), errors="coerce").iloc[0]
    return "–" if missing(v) else f"{fmt(v * scale)} {shown_unit}".strip()


def summary(groups: Sequence[Group], floor: float) -> str:
    parts = ['<section id="summary"><h2>Summary</h2>']
    parts.append(
        f"<p>Quality floor: {esc(fmt(floor))} of the fp32 reference's held-out task metric (MLPerf's rule). A run "
        "whose ratio interval lies wholly below it (verdict fail) stays in every table and plot, marked, and is "
        "left off the front; inconclusive runs stay on it, marked as such; random weights get no verdict.</p>"
    )
    for g in groups:
        r, fr = g.rows, g.front
        ok = r["status"].eq("ok")
        failing = ok & ~r["quality_ok"]
        parts.append(f'<h3 id="{esc(_anchor(g))}">{esc(g.workload)} &middot; {esc(g.model)}</h3><div class="cards">')
        for label, n in (
            ("runs", len(r)),
            ("ok", int(ok.sum())),
            ("on the front", int(fr.on_front.sum())),
            ("quality fail (off the front)", int(failing.sum())),
            ("failed / oom / unsupported", int((~ok).sum())),
        ):
            parts.append(f'<div class="card"><b>{n}</b>{esc(label)}</div>')
        parts.append("</div>")
        objectives = ", ".join(f"{o.label} ({o.sense}, column {c})" for o, c in fr.active) or "none"
        parts.append(f"<p>Objectives: {esc(objectives)}.</p>")
        for obj, why in fr.skipped:
            parts.append(f'<p class="note">Objective <b>{esc(obj.label)}</b> ({esc(obj.sense)}): {esc(why)}.</p>')
        if not fr.on_front.any():
            parts.append(
                '<p class="note">No run is eligible for the front (ok, at or above the quality floor, '
                "with every active objective measured).</p>"
            )
            continue
        rows = []
        for obj, col in fr.active:
            idx = fr.best.get(obj.label)
            if idx is None:
                continue
            best = r.loc[idx]
            rows.append(
                [
                    f"best {obj.label} ({obj.sense})",
                    _value(best, col, obj.unit),
                    _config(best),
                    code_cell(best["command"]),
                ]
            )
        if fr.knee is not None:
            knee = r.loc[fr.knee]
            shown = "; ".join(_value(knee, c, o.unit) for o, c in fr.active)
            rows.append(["knee of the front (best compromise)", shown, _config(knee), code_cell(knee["command"])])
        headers = ["what", "value", "configuration", "command that reproduces it"]
        parts.append(_in_words(r, fr))
        parts.append(f'<div class="wide">{table(headers, rows)}</div>')
    parts.append("</section>")
    return "".join(parts)


def _in_words(r: pd.DataFrame, fr: Front) -> str:
    """The answer in sentences: the recommended configuration per objective, and the knee with its command."""
    lines = []
    for obj, col in fr.active:
        idx = fr.best.get(obj.label)
        if idx is not None:
            best = r.loc[idx]
            lines.append(f"For {obj.label} ({obj.sense}), use {_config(best)}: {_value(best, col, obj.unit)}.")
    if fr.knee is not None:
        knee = r.loc[fr.knee]
        shown = ", ".join(f"{o.label} {_value(knee, c, o.unit)}" for o, c in fr.active)
        lines.append(
            f"Best compromise (the knee of the front): {_config(knee)}, with {shown}. Run it again with: "
            f"{knee['command']}"
        )
    items = "".join(f"<li>{esc(line)}</li>" for line in lines)
    return f'<div class="answer"><p><b>Recommended</b></p><ul>{items}</ul></div>'


def _anchor(g: Group) -> str:
    return "g-" + "".join(c if c.isalnum() else "-" for c in f"{g.workload}-{g.model}")


def plots(groups: Sequence[Group], scaling_svg: str | None, scaling_note: str) -> str:
    parts = ['<section id="plots"><h2>Pareto plots</h2>']
    parts.append(
        '<p class="legend"><span style="border-color:#1f6fd1">&#9679; Pareto front (circled: knee)</span>'
        '<span>&#9679; dominated (faded)</span><span style="color:#d93025">&#10006; below the quality floor</span>'
        '<span style="color:#b06000">&#9633; disturbed (other load during the timed window)</span>'
        " Each panel is a 2-D view of the N-objective front: a front point can look dominated in one view.</p>"
    )
    for g in groups:
        if g.svg:
            parts.append(f"<h3>{esc(g.workload)} &middot; {esc(g.model)}</h3>")
            parts.append(svg_img(g.svg, f"Pareto plot, {g.workload}, {g.model}"))
        else:
            name = f"{esc(g.workload)} &middot; {esc(g.model)}"
            parts.append(f'<p class="note">{name}: no plot, no objective has data.</p>')
    parts.append('<h3 id="scaling">Scaling efficiency</h3>')
    parts.append(svg_img(scaling_svg, "scaling efficiency against gpus") if scaling_svg else "")
    parts.append(f'<p class="muted">{esc(scaling_note)}</p></section>')
    return "".join(parts)


# (column, header): the full table; objective columns that are not here are added after
RUN_COLUMNS = (
    ("sweep", "sweep"),
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


def runs_table(frame: pd.DataFrame, extra_columns: Sequence[tuple[str, str]]) -> str:
    cols = [(c, h) for c, h in RUN_COLUMNS if c in frame] + [(c, u) for c, u in extra_columns if c in frame]
    unique: dict[str, str] = {}
    for c, h in cols:
        unique.setdefault(c, h)  # no column twice; the first (friendlier) header wins
    cols = list(unique.items())
    headers = [h if h != c else c for c, h in cols] + ["quality verdict", "on front", "reason", "command"]
    rows = []
    for _, r in frame.iterrows():
        cells: list[Any] = []
        for c, _h in cols:
            v = r.get(c)
            unit = "bytes" if c.endswith("_bytes") else ("s" if c.endswith("_s") or "_s_p" in c else "")
            scale, _ = display_scale(c, unit)
            num = pd.to_numeric(pd.Series([v]), errors="coerce").iloc[0]
            numeric = not missing(num) and not isinstance(v, str) and not pd.api.types.is_bool(v)  # yes/no
            cells.append((fmt(num * scale), num * scale) if numeric else (fmt(v), v))
        ok = r["status"] == "ok"
        verdict = r["quality_verdict_text"]
        cls = "front" if r["on_front"] else ""
        cls = "notok" if not ok else ("failing" if not r["quality_ok"] else cls)
        cls += " disturbed" if is_disturbed(r) else ""
        reason = "" if missing(r.get("reason")) else r["reason"]
        cells += [verdict, "yes" if r["on_front"] else "", reason, code_cell(r["command"])]
        rows.append({"cls": cls, "cells": cells})
    return (
        '<section id="runs"><h2>All runs</h2><p class="muted">Click a column header to sort. Blue rows: on the '
        "front; red rows: below the quality floor; grey rows: failed, oom, unsupported or timed out; an orange "
        "bar: disturbed (measured while other load ran beside it).</p>"
        f'<div class="wide">{table(headers, rows, cls="runs", sortable=True)}</div></section>'
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
        f"<li>{esc(r['sweep'])}: {esc(_config(r))}: {esc(r.get('disturbed_reason'))}</li>" for _, r in bad.iterrows()
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
            short.append(f"<li>{esc(r['sweep'])}: {esc(_config(r))}: {esc(why)}</li>")
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
        [r["sweep"], _config(r), r["status"], "" if missing(r["reason"]) else r["reason"], code_cell(r["command"])]
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
    cols = [c for c in frame.columns if c.startswith(prefix) and any(w in c for w in words)]
    return frame[cols].dropna(how="all").astype(str).drop_duplicates() if cols else pd.DataFrame()


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
        "Pareto front: per workload and model, among ok runs at or above the quality floor with every active "
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
