"""The serving section's plotly figures beside the latency-vs-throughput plot: TTFT by conversation turn,
TTFT of prefix-cache hits against misses, and the engine's own queue and KV-cache use against the offered
load (serving.metrics_url). Each point carries its n (requests, or the engine's scrapes) as a label and in
its hover; where a figure cannot be drawn, a sentence says why.
"""

from __future__ import annotations

import html as html_mod
import json
from collections.abc import Callable, Sequence

import pandas as pd
import plotly.graph_objects as go
import plotly.io as pio

from harness.report.hero import GRID, page_style

COLOURS = ("#1f6fd1", "#e8710a", "#188038", "#9334e6", "#d01884", "#12858f", "#795548", "#5f6368")
DASHES = ("solid", "dash", "dot")
RATE = "offered_rate_req_per_s"


def _num(rows: pd.DataFrame, column: str) -> pd.Series:
    return pd.to_numeric(rows[column], errors="coerce") if column in rows else pd.Series(float("nan"), rows.index)


def offered(rows: pd.DataFrame) -> pd.Series:
    """The offered load (req/s) of each run: its recorded offered rate, else serving.rate."""
    return _num(rows, RATE).fillna(_num(rows, "rate"))


def turns(value: object) -> list[dict]:
    """A run's ttft_s_by_turn (JSON text in the frame, see harness.report.aggregate) as a list."""
    if isinstance(value, list):
        return value
    if not isinstance(value, str) or not value:
        return []
    try:
        parsed = json.loads(value)
    except ValueError:
        return []
    return parsed if isinstance(parsed, list) else []


def _layout(fig: go.Figure, title: str, x_title: str, y_title: str) -> go.Figure:
    page_style(fig, title, height=360, left=60, legend_y=-0.22, legend_size=11)
    grid = GRID
    fig.update_xaxes(title=dict(text=x_title, font=dict(size=12)), tickfont=dict(size=11), **grid)
    fig.update_yaxes(title=dict(text=y_title, font=dict(size=12)), tickfont=dict(size=11), rangemode="tozero", **grid)
    return fig


def _trace(xs, ys, ns, name: str, colour: str, dash: str, what: str, unit: str) -> go.Scatter:
    """A line of points, each labelled with its n (lists, not arrays: the page's data stays plain JSON)."""
    hover = [
        f"{html_mod.escape(name)}<br>{what}: {x:.4g}<br>{y:.4g} {unit}<br>n = {n:.0f}"
        for x, y, n in zip(xs, ys, ns, strict=True)
    ]
    return go.Scatter(
        x=[float(x) for x in xs], y=[float(y) for y in ys], mode="lines+markers+text", name=html_mod.escape(name),
        line=dict(color=colour, dash=dash, width=1.8), marker=dict(color=colour, size=8),
        text=[f"n={n:.0f}" for n in ns], textposition="top center", textfont=dict(size=11, color=colour),
        hovertext=hover, hovertemplate="%{hovertext}<extra></extra>",
    )  # fmt: skip


def by_turn(rows: pd.DataFrame, label: Callable[[pd.Series], str]) -> go.Figure | None:
    """TTFT p50 (solid) and p99 (dotted), ms, against the conversation turn: one colour per run."""
    fig = go.Figure()
    for i, (_, r) in enumerate(rows.iterrows()):
        points = [t for t in turns(r.get("ttft_s_by_turn")) if t.get("p50") is not None and t.get("n")]
        if not points:
            continue
        colour = COLOURS[i % len(COLOURS)]
        xs, ns = [t["turn"] for t in points], [t["n"] for t in points]
        for q, dash in (("p50", "solid"), ("p99", "dot")):
            ys = [t[q] * 1e3 if t.get(q) is not None else float("nan") for t in points]
            fig.add_trace(_trace(xs, ys, ns, f"{label(r)} {q}", colour, dash, "turn", "ms"))
    if not fig.data:
        return None
    fig.update_xaxes(dtick=1)
    return _layout(fig, "TTFT by conversation turn", "turn (0: a conversation's first request)", "TTFT (ms)")


def cache_hit_miss(rows: pd.DataFrame, line: Callable[[pd.DataFrame], pd.Series]) -> go.Figure | None:
    """TTFT p50 of prefix-cache hits (solid) and misses (dashed), ms, against the offered load."""
    fig = go.Figure()
    x = offered(rows)
    for i, (name, g) in enumerate(rows.groupby(line(rows), sort=True)):
        colour = COLOURS[i % len(COLOURS)]
        for kind, shown, dash in (("hit", "hits", "solid"), ("miss", "misses", "dash")):
            ys, ns = _num(g, f"ttft_s_cache_{kind}_p50") * 1e3, _num(g, f"ttft_s_cache_{kind}_n")
            keep = ys.notna() & ns.gt(0) & x[g.index].notna()
            if keep.any():
                order = x[g.index][keep].sort_values().index
                fig.add_trace(_trace(x[order], ys[order], ns[order], f"{name} {shown}", colour, dash, "req/s", "ms"))
    if not fig.data:
        return None
    return _layout(fig, "TTFT p50: prefix-cache hits vs misses", "offered load (requests/s)", "TTFT p50 (ms)")


SERVER = (
    ("server_waiting_requests_mean", "waiting (mean)", "solid"),
    ("server_waiting_requests_max", "waiting (max)", "dot"),
    ("server_running_requests_mean", "running (mean)", "dash"),
)


def server_queue(rows: pd.DataFrame, line: Callable[[pd.DataFrame], pd.Series]) -> list[go.Figure]:
    """The engine's waiting and running requests, and its KV-cache use (%), against the offered load."""
    x, ns = offered(rows), _num(rows, "server_metrics_samples")
    queue, kv = go.Figure(), go.Figure()
    for i, (name, g) in enumerate(rows.groupby(line(rows), sort=True)):
        colour = COLOURS[i % len(COLOURS)]
        panels = [(queue, c, f"{name} {what}", dash, 1.0) for c, what, dash in SERVER]
        panels.append((kv, "server_kv_cache_usage_max", f"{name} KV-cache use (max)", "solid", 100.0))
        for fig, column, label, dash, scale in panels:
            ys = _num(g, column) * scale
            keep = ys.notna() & x[g.index].notna()
            if keep.any():
                order = x[g.index][keep].sort_values().index
                unit = "%" if scale == 100 else "requests"
                fig.add_trace(_trace(x[order], ys[order], ns[order].fillna(0), label, colour, dash, "req/s", unit))
    out = []
    if queue.data:
        out.append(_layout(queue, "Server queue vs offered load", "offered load (requests/s)", "requests"))
    if kv.data:
        out.append(_layout(kv, "Server KV-cache use vs offered load", "offered load (requests/s)", "KV-cache use (%)"))
        kv.update_yaxes(range=[0, 105])
    return out


def to_html(figs: Sequence[tuple[str, go.Figure]], plotly_on_page: bool) -> tuple[str, bool]:
    """Each (div id, figure) as a responsive chart; plotly's script inlined once per page."""
    parts = []
    for div_id, fig in figs:
        div = pio.to_html(
            fig, full_html=False, include_plotlyjs=not plotly_on_page, div_id=div_id, default_width="100%",
            default_height=f"{fig.layout.height}px", config={"responsive": True, "displayModeBar": False},
        )  # fmt: skip
        plotly_on_page = True
        parts.append(f'<div class="chart side" id="{html_mod.escape(div_id)}-box">{div}</div>')
    return "".join(parts), plotly_on_page
