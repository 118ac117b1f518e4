"""The speculative-decoding section: each run with a draft (workload.draft_model) beside the run of the same key
without one (the same engine and load, for a served run), its speed-up and cost ratio, its acceptance, and whether
its output equalled the target's greedy output. A plotly bar per pair; where a draft run has no partner, a sentence
says which run to add.

Offline runs compare decode tok/s and USD per 1 M generated tokens. Served runs (serving.engine=sequential) compare
TTFT, ITL, TPOT, output tok/s and USD per 1 M output tokens; their speed-up is TPOT's (the decode time per token of
a request once it runs: what the draft changes), as output tok/s follows the offered load where the engine keeps up.
A row is a served one where it has output tok/s (no branch on a workload's name).
"""

from __future__ import annotations

import re

import pandas as pd
import plotly.graph_objects as go

from harness.report.answer import config_label
from harness.report.hero import GRID, page_style
from harness.report.html import esc, fmt, missing, table
from harness.report.serving_figures import to_html

DRAFT_IN_KEY = re.compile(r" draft_model=\S+ draft_tokens=\S+")
COST = "cost_usd_per_1m_tokens_generated"
SERVED_COST = "usd_per_1m_output_tokens"
SERVED = ("ttft_s_p50", "itl_s_p50", "tpot_s_p50", "output_tok_per_s")  # each: without and with the draft


def _ratio(a: object, b: object) -> float | None:
    return None if missing(a) or missing(b) or not b else float(a) / float(b)


def _pair(r: pd.Series, b: pd.Series) -> dict:
    """One pair's figures: the draft run `r` against its run without the draft `b`."""
    served = not missing(r.get("output_tok_per_s"))
    out = {
        "run": config_label(r), "draft": f"{r['draft_model']} k={int(r['draft_tokens'])}", "served": served,
        "acceptance_rate": r.get("acceptance_rate"), "mean_accepted_tokens": r.get("mean_accepted_tokens"),
        "equal": r.get("speculative_greedy_equal_equal"),
        "disturbed": bool(r.get("disturbed") is True or b.get("disturbed") is True),
    }  # fmt: skip
    if not served:
        return out | {
            "decode_plain": b.get("decode_tok_per_s"), "decode_spec": r.get("decode_tok_per_s"),
            "speedup": _ratio(r.get("decode_tok_per_s"), b.get("decode_tok_per_s")),
            "cost_ratio": _ratio(r.get(COST), b.get(COST)),
        }  # fmt: skip
    out |= {f"{c}_plain": b.get(c) for c in SERVED} | {f"{c}_spec": r.get(c) for c in SERVED}
    return out | {
        "speedup": _ratio(b.get("tpot_s_p50"), r.get("tpot_s_p50")),  # time per token: without ÷ with
        "throughput_ratio": _ratio(r.get("output_tok_per_s"), b.get("output_tok_per_s")),
        "cost_ratio": _ratio(r.get(SERVED_COST), b.get(SERVED_COST)),
    }


def pairs(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per ok run with a draft that has an ok run of its key without the draft (the latest such run)."""
    if "draft_model" not in frame or "key" not in frame:
        return pd.DataFrame()
    ok = frame[frame["status"] == "ok"]
    spec = ok[ok["draft_model"].notna()]
    plain = ok[ok["draft_model"].isna()]
    out = []
    for _, r in spec.iterrows():
        base = plain[plain["key"] == DRAFT_IN_KEY.sub("", str(r["key"]))]
        if base.empty:
            continue
        b = base.sort_values("created_at").iloc[-1] if "created_at" in base else base.iloc[-1]
        out.append(_pair(r, b))
    return pd.DataFrame(out)


def figure(p: pd.DataFrame) -> go.Figure:
    """Decode speed-up per pair (1 = no gain), each bar labelled with its acceptance rate."""
    text = [f"acceptance {fmt(a, 2)}" for a in p["acceptance_rate"]]
    colours = ["#188038" if not missing(s) and s >= 1 else "#d93025" for s in p["speedup"]]
    how = ["served: TPOT p50 without ÷ with" if s else "offline: decode tok/s with ÷ without" for s in p["served"]]
    bar = go.Bar(
        x=[f"{r} | {d}" for r, d in zip(p["run"], p["draft"], strict=True)],
        y=[None if missing(s) else float(s) for s in p["speedup"]], customdata=how,
        text=text, textposition="outside", marker=dict(color=colours),
        hovertemplate="%{x}<br>speed-up %{y:.3g}x (%{customdata})<br>%{text}<extra></extra>",
    )  # fmt: skip
    fig = go.Figure(bar)
    page_style(fig, "Speculative decoding: decode speed-up", height=360, left=60, legend_y=-0.22, legend_size=11)
    fig.add_hline(y=1.0, line=dict(color="#5f6368", dash="dot", width=1))
    fig.update_xaxes(tickfont=dict(size=10), **GRID)
    fig.update_yaxes(title=dict(text="decode speed with ÷ without the draft", font=dict(size=12)), rangemode="tozero",
                     **GRID)  # fmt: skip
    return fig


def _x(value: object) -> str:
    return "–" if missing(value) else f"{value:.3g}x"


def _label(r: pd.Series) -> str:
    return r["run"] + (" (disturbed)" if r["disturbed"] else "")


def _offline_table(p: pd.DataFrame) -> str:
    headers = ["run", "draft", "acceptance", "accepted/step", "decode tok/s without", "decode tok/s with",
               "speed-up", "cost with ÷ without", "output = greedy"]  # fmt: skip
    rows = [
        [_label(r), r["draft"], fmt(r["acceptance_rate"]), fmt(r["mean_accepted_tokens"]), fmt(r["decode_plain"]),
         fmt(r["decode_spec"]), _x(r["speedup"]), fmt(r["cost_ratio"]), fmt(r["equal"])]
        for _, r in p.iterrows()
    ]  # fmt: skip
    return table(headers, rows)


def _ms(value: object) -> str:
    return "–" if missing(value) else fmt(float(value) * 1e3)


def _served_table(p: pd.DataFrame) -> str:
    headers = ["served run", "draft", "acceptance", "accepted/step", "TTFT p50 ms without / with",
               "ITL p50 ms without / with", "TPOT p50 ms without / with", "output tok/s without / with",
               "speed-up (TPOT)", "output tok/s with ÷ without", "cost with ÷ without", "output = greedy"]  # fmt: skip
    rows = [
        [_label(r), r["draft"], fmt(r["acceptance_rate"]), fmt(r["mean_accepted_tokens"]),
         *(f"{_ms(r[f'{c}_plain'])} / {_ms(r[f'{c}_spec'])}" for c in SERVED[:3]),
         f"{fmt(r['output_tok_per_s_plain'])} / {fmt(r['output_tok_per_s_spec'])}", _x(r["speedup"]),
         fmt(r["throughput_ratio"]), fmt(r["cost_ratio"]), fmt(r["equal"])]
        for _, r in p.iterrows()
    ]  # fmt: skip
    return table(headers, rows)


NOTE = (
    "Each run with a draft beside the latest ok run of its key without one. Offline: speed-up = decode tok/s with ÷ "
    "without; cost = USD per 1 M generated tokens with ÷ without. Served (serving.engine=sequential, the same engine "
    "and load without the draft): speed-up = TPOT p50 without ÷ with; a verify step delivers several tokens at once, "
    "so ITL counts one gap per step; at a load the engine keeps up with, output tok/s and USD per 1 M output tokens "
    "follow the offered load (ratio near 1): saturate it (serving.arrival=closed, or a higher rate) to see the "
    "throughput gain. Cost: – where no price is known. Greedy acceptance leaves the output unchanged by "
    "construction; 'output = greedy' is the run's own check against the target's plain greedy decode "
    "(docs/results.md, `speculative`). A disturbed run's speed-up is not comparable."
)


def section(frame: pd.DataFrame, plotly_on_page: bool = False) -> tuple[str, bool]:
    """The HTML section (empty without draft runs) and whether plotly's script is on the page after it."""
    if "draft_model" not in frame or not frame["draft_model"].notna().any():
        return "", plotly_on_page
    p = pairs(frame)
    head = '<section id="speculative"><h2>Speculative decoding</h2>'
    if p.empty:
        note = (
            "No speed-up: a run with a draft needs an ok run of the same configuration without one to compare "
            "with (e.g. python -m harness -m workload.draft_model=null,tiny batch_size=1; served: "
            "workload=serving serving.engine=sequential workload.draft_model=null,tiny)."
        )
        return head + f'<p class="muted">{esc(note)}</p></section>', plotly_on_page
    chart, plotly_on_page = to_html([("speculative-speedup", figure(p))], plotly_on_page)
    offline, served = p[~p["served"]], p[p["served"]]
    tables = _offline_table(offline) if not offline.empty else ""
    tables += _served_table(served) if not served.empty else ""
    return head + chart + tables + f'<p class="muted">{esc(NOTE)}</p></section>', plotly_on_page
