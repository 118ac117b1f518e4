"""The serving section of the report: latency percentiles against achieved throughput, one line per
configuration (its runs at several rates), with the SLO bound and the capacity found by a search marked.
The serving scenario's own section: its Spec names it (harness.scenarios.specs.ServingSpec.report_section)."""

from __future__ import annotations

import pandas as pd
from matplotlib.figure import Figure

from harness.report import serving_figures
from harness.report.answer import config_label
from harness.report.html import esc, svg_img
from harness.report.plots import _safe, _svg
from harness.scenarios.specs import ServingSpec

LINE = ("model", "precision", "engine", "arrival", "input_len", "output_len")
PANELS = (("ttft_s", "TTFT", "slo_ttft_ms"), ("tpot_s", "TPOT (first token excluded)", "slo_tpot_ms"))
X = "request_throughput_req_per_s"


def _lines(frame: pd.DataFrame) -> pd.DataFrame:
    if "workload" not in frame:
        return frame[:0]
    ok = frame[(frame["workload"] == ServingSpec.name) & (frame["status"] == "ok")]
    if ok.empty or X not in ok:
        return ok
    keys = [k for k in LINE if k in ok]
    return ok.assign(line=ok[keys].astype(str).agg(" ".join, axis=1))


def figure(frame: pd.DataFrame) -> str | None:
    """p50 (dashed) and p99 (solid) of TTFT and TPOT in ms against requests/s; None without serving runs."""
    rows = _lines(frame)
    if rows.empty or X not in rows:
        return None
    fig = Figure(figsize=(10.4, 4.4), layout="constrained")
    axes = [fig.add_subplot(1, 2, i + 1) for i in range(len(PANELS))]
    for i, (name, line) in enumerate(rows.groupby("line", sort=True)):
        color = f"C{i % 10}"
        line = line.sort_values(X)
        for ax, (metric, _, slo) in zip(axes, PANELS, strict=True):
            for q, style in (("p99", "-"), ("p50", "--")):
                col = f"{metric}_{q}"
                if col in line and line[col].notna().any():
                    ax.plot(line[X], line[col] * 1e3, style, marker="o", color=color, label=_safe(f"{name} {q}"))
            if slo in line and line[slo].notna().any():
                ax.axhline(float(line[slo].dropna().iloc[0]), color=color, linestyle=":", linewidth=1.2)
            if "capacity_req_per_s" in line and line["capacity_req_per_s"].notna().any():
                ax.axvline(float(line["capacity_req_per_s"].max()), color=color, linestyle="-.", linewidth=1)
    for ax, (_, title, _) in zip(axes, PANELS, strict=True):
        ax.set_xlabel("achieved requests/s")
        ax.set_ylabel(f"{title} (ms)")
        ax.grid(True, alpha=0.3)
    handles, names = axes[0].get_legend_handles_labels()
    fig.legend(handles, names, loc="outside lower center", ncols=2, fontsize=8, frameon=False)
    fig.suptitle(
        "latency percentiles vs throughput · dotted: SLO bound · dash-dot: capacity (max_rate search)", fontsize=10
    )
    return _svg(fig)


def _line(rows: pd.DataFrame) -> pd.Series:
    return rows["line"]


def more_figures(rows: pd.DataFrame, plotly_on_page: bool) -> tuple[str, bool]:
    """TTFT by turn, cache hit vs miss TTFT, the server's queue and KV-cache use (harness.report.serving_figures),
    each drawn where its figures exist, else a sentence saying why not; and whether plotly is now on the page."""
    figs, notes = [], []
    turn = serving_figures.by_turn(rows, config_label)
    if turn is not None:
        figs.append(("serving-turns", turn))
    else:
        notes.append("No TTFT by turn: no run replayed conversations (serving.dataset=sharegpt).")
    cache = serving_figures.cache_hit_miss(rows, _line)
    if cache is not None:
        figs.append(("serving-cache", cache))
    else:
        notes.append(
            "No prefix-cache hit vs miss TTFT: the engine reported no cached tokens "
            "(usage.prompt_tokens_details.cached_tokens)."
        )
    server = serving_figures.server_queue(rows, _line)
    figs += [(f"serving-server-{i}", f) for i, f in enumerate(server)]
    if not server:
        scraped = pd.to_numeric(rows.get("server_metrics_samples", pd.Series(dtype=float)), errors="coerce")
        notes.append(
            "No server queue or KV-cache figure: "
            + (
                "the engine's metrics page had none of the known gauges (docs/serving.md)."
                if scraped.gt(0).any()
                else "serving.metrics_url was not scraped."
            )
        )
    charts, plotly_on_page = serving_figures.to_html(figs, plotly_on_page)
    shown = f'<div class="charts">{charts}</div>' if charts else ""
    return shown + "".join(f'<p class="note">{esc(n)}</p>' for n in notes), plotly_on_page


def section(frame: pd.DataFrame, plotly_on_page: bool = False) -> str:
    """The HTML section (empty when the frame has no serving runs); plotly_on_page: its script is already there."""
    svg = figure(frame)
    if svg is None:
        return ""
    rows = _lines(frame)
    caps = rows[rows["capacity_req_per_s"].notna()] if "capacity_req_per_s" in rows else rows[:0]
    items = "".join(
        f"<li>{esc(r['line'])}: capacity {r['capacity_req_per_s']:.3g} req/s"
        + (
            f", USD {r['usd_per_1m_output_tokens']:.4g} per 1 M output tokens"
            if pd.notna(r.get("usd_per_1m_output_tokens"))
            else ""
        )
        + "</li>"
        for _, r in caps.iterrows()
    )
    more, _ = more_figures(rows, plotly_on_page)
    return (
        '<section id="serving"><h2>Serving: latency vs throughput</h2>'
        + svg_img(svg, "latency percentiles against achieved throughput")
        + (f"<ul>{items}</ul>" if items else "")
        + '<p class="muted">Each point is one run (one offered rate); TTFT, TPOT as vLLM defines them '
        "(docs/serving.md). A p99 from few requests is weak: see the n columns.</p>"
        + more
        + '<p class="muted">Labels n=: the requests behind a TTFT point (completed requests of that turn, or '
        "that were cache hits / misses); the engine's metrics-page scrapes behind a server point.</p></section>"
    )
