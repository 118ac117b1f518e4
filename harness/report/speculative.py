"""The speculative-decoding section: each run with a draft (workload.draft_model) beside the run of the same key
without one, its decode speed-up (decode tok/s with the draft ÷ without) and cost ratio (USD per 1 M generated
tokens, with ÷ without), its acceptance, and whether its output equalled the target's greedy output. A plotly
bar per pair; where a draft run has no partner, a sentence says which run to add.
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


def _ratio(a: object, b: object) -> float | None:
    return None if missing(a) or missing(b) or not b else float(a) / float(b)


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
        out.append({
            "run": config_label(r), "draft": f"{r['draft_model']} k={int(r['draft_tokens'])}",
            "acceptance_rate": r.get("acceptance_rate"), "mean_accepted_tokens": r.get("mean_accepted_tokens"),
            "decode_plain": b.get("decode_tok_per_s"), "decode_spec": r.get("decode_tok_per_s"),
            "speedup": _ratio(r.get("decode_tok_per_s"), b.get("decode_tok_per_s")),
            "cost_ratio": _ratio(r.get(COST), b.get(COST)),
            "equal": r.get("speculative_greedy_equal_equal"),
            "disturbed": bool(r.get("disturbed") is True or b.get("disturbed") is True),
        })  # fmt: skip
    return pd.DataFrame(out)


def figure(p: pd.DataFrame) -> go.Figure:
    """Decode speed-up per pair (1 = no gain), each bar labelled with its acceptance rate."""
    text = [f"acceptance {fmt(a, 2)}" for a in p["acceptance_rate"]]
    colours = ["#188038" if s is not None and s >= 1 else "#d93025" for s in p["speedup"]]
    bar = go.Bar(
        x=[f"{r} | {d}" for r, d in zip(p["run"], p["draft"], strict=True)], y=[float(s) for s in p["speedup"]],
        text=text, textposition="outside", marker=dict(color=colours),
        hovertemplate="%{x}<br>speed-up %{y:.3g}x<br>%{text}<extra></extra>",
    )  # fmt: skip
    fig = go.Figure(bar)
    page_style(fig, "Speculative decoding: decode speed-up", height=360, left=60, legend_y=-0.22, legend_size=11)
    fig.add_hline(y=1.0, line=dict(color="#5f6368", dash="dot", width=1))
    fig.update_xaxes(tickfont=dict(size=10), **GRID)
    fig.update_yaxes(title=dict(text="decode tok/s with ÷ without the draft", font=dict(size=12)), rangemode="tozero",
                     **GRID)  # fmt: skip
    return fig


def section(frame: pd.DataFrame, plotly_on_page: bool = False) -> tuple[str, bool]:
    """The HTML section (empty without draft runs) and whether plotly's script is on the page after it."""
    if "draft_model" not in frame or not frame["draft_model"].notna().any():
        return "", plotly_on_page
    p = pairs(frame)
    head = '<section id="speculative"><h2>Speculative decoding</h2>'
    if p.empty:
        note = (
            "No speed-up: a run with a draft needs an ok run of the same configuration without one to compare "
            "with (e.g. python -m harness -m workload.draft_model=null,tiny batch_size=1)."
        )
        return head + f'<p class="muted">{esc(note)}</p></section>', plotly_on_page
    chart, plotly_on_page = to_html([("speculative-speedup", figure(p))], plotly_on_page)
    headers = ["run", "draft", "acceptance", "accepted/step", "decode tok/s without", "decode tok/s with",
               "speed-up", "cost with ÷ without", "output = greedy"]  # fmt: skip
    rows = [
        [r["run"] + (" (disturbed)" if r["disturbed"] else ""), r["draft"], fmt(r["acceptance_rate"]),
         fmt(r["mean_accepted_tokens"]), fmt(r["decode_plain"]), fmt(r["decode_spec"]),
         "–" if missing(r["speedup"]) else f"{r['speedup']:.3g}x", fmt(r["cost_ratio"]), fmt(r["equal"])]
        for _, r in p.iterrows()
    ]  # fmt: skip
    note = (
        "Each run with a draft beside the latest ok run of its key without one. Speed-up = decode tok/s with ÷ "
        "without; cost = USD per 1 M generated tokens with ÷ without (– where no price is known). Greedy "
        "acceptance leaves the output unchanged by construction; 'output = greedy' is the run's own check "
        "against the target's plain greedy decode (docs/results.md, `speculative`). A disturbed run's speed-up "
        "is not comparable."
    )
    return head + chart + table(headers, rows) + f'<p class="muted">{esc(note)}</p></section>', plotly_on_page
