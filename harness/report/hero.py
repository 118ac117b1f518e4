"""The hero charts of a workload (plotly, inlined): quality with its interval against cost per 1 M tokens,
every configuration of every sweep on one chart, the front drawn and the knee marked; beside it quality
against throughput and against peak memory. Hover shows a point's configuration, figures and command.

Colour is the precision (and its levers: backend, transforms), the marker the model, an open marker a second
(third, ...) sweep. Axes are padded to the intervals, so a difference smaller than an interval never fills the chart.
"""

from __future__ import annotations

import html as html_mod
import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import plotly.io as pio

from harness.report.answer import Answer, Axis, config_label, front_2d, num
from harness.report.html import missing

COLOURS = {"fp32": "#1f6fd1", "bf16": "#e8710a", "fp16": "#188038", "int8": "#9334e6"}
OTHER_COLOURS = ("#d01884", "#12858f", "#795548", "#5f6368")
SYMBOLS = ("circle", "square", "diamond", "triangle-up", "cross", "star", "hexagon", "pentagon")
FONT = dict(family="system-ui, -apple-system, Segoe UI, Roboto, sans-serif", size=12, color="#202124")
GRID = dict(showgrid=True, gridcolor="#e8eaed", zeroline=False, linecolor="#9aa0a6", ticks="outside")


def page_style(fig: go.Figure, title: str, height: int, left: int, legend_y: float, legend_size: int) -> None:
    """The report's look for every plotly chart: font, title, margins, a horizontal legend below, hover labels."""
    fig.update_layout(
        template="none", font=FONT, title=dict(text=html_mod.escape(title), font=dict(size=14), x=0.01),
        margin=dict(l=left, r=16, t=44, b=56), height=height, hovermode="closest", plot_bgcolor="#ffffff",
        legend=dict(orientation="h", yanchor="top", y=legend_y, x=0, font=dict(size=legend_size)),
        hoverlabel=dict(font=dict(size=12), align="left"),
    )  # fmt: skip


EXCLUDED_LINE = {"below the quality floor": "#d93025", "disturbed (measured beside other load)": "#b06000"}


def _colour(precision: str, order: Sequence[str]) -> str:
    if precision in COLOURS:
        return COLOURS[precision]
    others = [p for p in order if p not in COLOURS]
    return OTHER_COLOURS[others.index(precision) % len(OTHER_COLOURS)] if precision in others else "#5f6368"


def _wrap(text: str, width: int = 56) -> str:
    """A long command over several hover lines (a hover box wider than a phone is cut off)."""
    words, lines, line = str(text).split(" "), [], ""
    for w in words:
        if line and len(line) + 1 + len(w) > width:
            lines.append(line)
            line = w
        else:
            line = f"{line} {w}".strip()
    return "<br>".join(html_mod.escape(x) for x in [*lines, line])


def hover(a: Answer, row: pd.Series, axes: Sequence[Axis], sweeps: int) -> str:
    """The hover text of one point (escaped: plotly shows a few tags, so names must not be markup)."""
    e = html_mod.escape
    lines = [f"<b>{e(config_label(row))}</b>"]
    if sweeps > 1:
        lines.append(f"sweep {e(str(row.get('sweep')))}")
    spec = a.spec
    q = row.get(spec.quality.column)
    if not missing(q):
        lo, hi = (row.get(c) if c else None for c in (spec.lo, spec.hi))
        interval = "" if lo is None or hi is None or pd.isna(lo) or pd.isna(hi) else f" [{lo:.4g}, {hi:.4g}]"
        lines.append(f"{e(spec.quality.label)}: {q:.4g}{interval}")
    for axis in axes:
        v = row.get(axis.column)
        if v is not None and not pd.isna(v) and axis is not spec.quality:
            lines.append(f"{e(axis.label)}: {e(axis.shown(float(v)))}")
    why = a.excluded.get(row.name, "")
    lines.append(f"not recommended: {e(why)}" if why else "eligible")
    return "<br>".join(lines) + "<br>" + _wrap(row.get("command") or "")


def _range(values: np.ndarray, log: bool) -> list[float] | None:
    finite = values[np.isfinite(values)]
    if log:
        finite = finite[finite > 0]
    if not len(finite):
        return None
    lo, hi = float(finite.min()), float(finite.max())
    if log:
        lo, hi = math.log10(lo), math.log10(hi)
    pad = (hi - lo) * 0.08 or (abs(hi) * 0.05 if hi else 1.0)
    return [lo - pad, hi + pad]


def _is_log(values: pd.Series) -> bool:
    v = values[np.isfinite(values) & (values > 0)]
    return len(v) > 1 and v.max() / v.min() > 10


def _log_ticks(values: pd.Series, log: bool) -> dict:
    """Ticks at 1-2-5 steps, all at the tick font's size (plotly's own log ticks label the minor ones smaller)."""
    v = values[np.isfinite(values) & (values > 0)]
    if not log or v.empty:
        return {}
    ticks = [
        m * 10.0**e
        for e in range(math.floor(math.log10(v.min())) - 1, math.ceil(math.log10(v.max())) + 1)
        for m in (1, 2, 5)
    ]
    ticks = [t for t in ticks if v.min() / 1.5 <= t <= v.max() * 1.5]
    return dict(tickvals=ticks, ticktext=[f"{t:g}" for t in ticks])


def _axis_title(axis: Axis) -> str:
    unit = "MiB" if axis.metric.unit == "bytes" else axis.metric.unit
    better = "lower is better" if axis.sense == "min" else "higher is better"
    shown = axis.label if unit in axis.label or not unit else f"{axis.label} ({unit})"
    return f"{shown}, {better}"


def _scale(axis: Axis) -> float:
    return 1 / 2**20 if axis.metric.unit == "bytes" else 1.0


def figure(answers: Sequence[Answer], y: Axis, x: Axis, title: str, knee: bool) -> go.Figure | None:
    """One chart: y (with its interval as error bars, when y is the quality) against x, every run of every
    answer (one per sweep); the (y, x) front of each sweep drawn; the knee and the recommendation marked."""
    rows = pd.concat([a.rows for a in answers])
    xs, ys = num(rows, x.column) * _scale(x), num(rows, y.column) * _scale(y)
    shown = xs.notna() & ys.notna()
    if not shown.any():
        return None
    a0 = answers[0]
    is_quality = y is a0.spec.quality
    lo = num(rows, a0.spec.lo) if is_quality else ys
    hi = num(rows, a0.spec.hi) if is_quality else ys
    lo, hi = lo.fillna(ys), hi.fillna(ys)
    fig = go.Figure()
    sweeps = list(dict.fromkeys(rows["sweep"]))
    precisions = sorted(set(with_levers(rows)))
    models = list(dict.fromkeys(rows["model_label"].astype(str)))
    for a in answers:
        sweep_no = sweeps.index(a.rows["sweep"].iloc[0])
        picked = a.rows[shown.reindex(a.rows.index)]
        groups = picked.assign(_prec=with_levers(picked)).groupby(["model_label", "_prec"], sort=True)
        for (model, precision), g in groups:
            idx = g.index
            symbol = SYMBOLS[models.index(str(model)) % len(SYMBOLS)] + ("-open" if sweep_no else "")
            name = f"{model} · {precision}" + (f" · {a.rows['sweep'].iloc[0]}" if len(sweeps) > 1 else "")
            name = html_mod.escape(name)  # plotly reads a few tags in names: a name is text
            colour = _colour(str(precision), precisions)
            bars = (lo[idx], hi[idx]) if is_quality else None
            fig.add_trace(_points(a, idx, xs, ys, bars, name, symbol, colour, len(sweeps)))
        _front(fig, a, y, x, xs, ys, len(sweeps) > 1, knee)
    _layout(fig, y, x, title, xs[shown], np.concatenate([lo[shown], hi[shown]]))
    return fig


def with_levers(rows: pd.DataFrame) -> pd.Series:
    """The precision with the run's backend and transforms beyond the defaults ("fp32 compile +int4g32"):
    each lever combination its own colour and legend entry."""
    from harness.report.html import missing
    from harness.summary import lever_label

    def one(r: pd.Series) -> str:
        fields = {k: (None if missing(r.get(k)) else r.get(k)) for k in ("backend", "transforms")}
        return f"{r['precision']}{lever_label(fields)}"

    return rows.apply(one, axis=1).astype(str) if len(rows) else rows["precision"].astype(str)


def _points(a: Answer, idx: pd.Index, xs, ys, bars, name: str, symbol: str, colour: str, sweeps: int) -> go.Scatter:
    """One model × precision of one sweep: faded with a coloured ring where it may not be recommended; the
    interval as error bars (bars: the (lo, hi) series, or None); lists, not arrays, so the page's data is
    plain JSON (plotly 6 writes numpy arrays as base64)."""
    why = a.excluded.reindex(idx).fillna("")
    error = None
    if bars is not None:
        up, down = (bars[1] - ys[idx]).clip(lower=0), (ys[idx] - bars[0]).clip(lower=0)
        error = dict(type="data", symmetric=False, array=up.tolist(), arrayminus=down.tolist(), thickness=1.2, width=4)
    return go.Scatter(
        x=xs[idx].tolist(), y=ys[idx].tolist(), mode="markers", name=name, legendgroup=name, error_y=error,
        marker=dict(
            symbol=symbol, size=11, color=colour, opacity=[0.45 if w else 1.0 for w in why],
            line=dict(width=[2.5 if w else 1 for w in why],
                      color=[EXCLUDED_LINE.get(w, "#5f6368") if w else "#ffffff" for w in why]),
        ),
        hovertext=[hover(a, a.rows.loc[i], (a.cost, a.speed, a.spec.memory), sweeps) for i in idx],
        hovertemplate="%{hovertext}<extra></extra>",
        customdata=[[str(i), "excluded" if w else "eligible"] for i, w in zip(idx, why, strict=True)],
    )  # fmt: skip


def _front(fig: go.Figure, a: Answer, y: Axis, x: Axis, xs: pd.Series, ys: pd.Series, named: bool, knee: bool) -> None:
    """The sweep's (y, x) front as a dashed line, its knee and the recommended run as labelled arrows (an
    annotation on a log axis is placed in log10 units, plotly's rule)."""
    x_log = _is_log(xs.dropna())
    eligible = a.eligible & num(a.rows, y.column).notna()
    on, knee_idx = front_2d(a.rows, y, x, eligible)
    sweep = a.rows["sweep"].iloc[0]
    if len(on):
        fig.add_trace(
            go.Scatter(
                x=xs[on].tolist(),
                y=ys[on].tolist(),
                mode="lines",
                name=html_mod.escape("Pareto front" + (f" · {sweep}" if named else "")),
                line=dict(color="#1f6fd1", width=1.5, dash="dash"),
                hoverinfo="skip",
                customdata=[[str(i), "front"] for i in on],
            )  # fmt: skip
        )
    rec = a.pick.get("cost") if y is a.spec.quality else None
    marks = {}
    if knee and knee_idx is not None:
        marks[knee_idx] = ["knee"]
    if rec is not None and rec in xs.index and not pd.isna(xs[rec]):
        marks.setdefault(rec, []).append("recommended")
    place = np.log10 if x_log else np.asarray
    known = place(xs[xs > 0].dropna().to_numpy(dtype=float) if x_log else xs.dropna().to_numpy(dtype=float))
    lo, hi = (float(known.min()), float(known.max())) if known.size else (0.0, 0.0)
    for n, (idx, words) in enumerate(marks.items()):
        text = html_mod.escape(" · ".join(words) + (f" ({sweep})" if named else ""))
        at = float(place(xs[idx]))
        inward = 1 if hi <= lo or (at - lo) / (hi - lo) < 0.5 else -1  # the label on the side with room: never cut
        fig.add_annotation(
            x=at, y=ys[idx], text=text, showarrow=True, arrowhead=2,
            ax=inward * 50, ay=-36 if n % 2 == 0 else 36, font=dict(size=12, color="#1f6fd1"),
            bgcolor="rgba(255,255,255,0.85)",
        )  # fmt: skip


def _layout(fig: go.Figure, y: Axis, x: Axis, title: str, xs: pd.Series, y_span: np.ndarray) -> None:
    x_log = _is_log(xs.dropna())
    page_style(fig, title, height=420, left=64, legend_y=-0.2, legend_size=12)
    grid = GRID
    fig.update_xaxes(
        title=dict(text=_axis_title(x), font=dict(size=12)), type="log" if x_log else "linear",
        range=_range(xs.to_numpy(dtype=float), x_log), tickfont=dict(size=11), **grid, **_log_ticks(xs, x_log),
    )  # fmt: skip
    fig.update_yaxes(
        title=dict(text=_axis_title(y), font=dict(size=12)), range=_range(y_span.astype(float), False),
        tickfont=dict(size=11), tickformat=".4~g", **grid,
    )  # fmt: skip


def charts(answers: Sequence[Answer], workload: str, first: bool, anchor: str) -> tuple[str, bool]:
    """The HTML of a workload's three charts (quality vs cost, vs throughput, vs peak memory) and whether
    plotly's script is now on the page. Without quality figures the y axis is the throughput."""
    a0 = answers[0]
    quality = any(num(a.rows, a.spec.quality.column).notna().any() for a in answers)
    y = a0.spec.quality if quality else a0.speed
    panels = [(a0.cost, "hero"), (a0.speed, "side"), (a0.spec.memory, "side")] if quality else [
        (a0.cost, "hero"), (a0.spec.memory, "side")]  # fmt: skip
    parts, included = [], not first
    for n, (x, kind) in enumerate(panels):
        what = f"{y.label} vs {x.label}"
        fig = figure(answers, y, x, f"{workload}: {what}", knee=kind == "hero")
        if fig is None:
            what = html_mod.escape(f"{workload}: no chart of {what}")
            parts.append(f'<p class="note">{what}: no run has both figures.</p>')
            continue
        if kind == "side":
            fig.update_layout(height=340, showlegend=False)
        div = pio.to_html(
            fig, full_html=False, include_plotlyjs=not included, div_id=f"{anchor}-{n}", default_width="100%",
            default_height=f"{fig.layout.height}px", config={"responsive": True, "displayModeBar": False},
        )  # fmt: skip
        included = True
        parts.append(f'<div class="chart {kind}" data-x="{html_mod.escape(x.column)}">{div}</div>')
    return f'<div class="charts">{"".join(parts)}</div>', included
