"""The scaling plot (matplotlib, no GUI backend, no pyplot state): SVG text to embed in the page; the hero
charts are plotly (harness.report.hero).

A Figure is drawn on an Agg canvas and saved as SVG, so nothing depends on the user's backend settings.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Sequence

import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from harness import scaling

# Hydra logs at INFO to the run's terminal: matplotlib's first-use "generated new fontManager" is not the user's news
logging.getLogger("matplotlib").setLevel(logging.WARNING)

FRONT, DOMINATED, FAILING, DISTURBED = "#1f6fd1", "#9aa0a6", "#d93025", "#b06000"
SHOWN = ("model", "precision", "batch_size", "seq_len")
MAX_LABELS = 24  # beyond this many points only the front is labelled


def display_scale(column: str, unit: str) -> tuple[float, str]:
    """(factor, unit) for showing a column: bytes as MiB, seconds as ms."""
    if unit == "bytes":
        return 1 / 2**20, "MiB"
    if unit == "s" and ("latency" in column or "ttft" in column):
        return 1e3, "ms"
    return 1.0, unit


def _safe(text: str) -> str:
    """Plain text for matplotlib: `$` would start mathtext (and a hostile name could break the plot)."""
    return str(text).replace("$", r"\$")


def _svg(fig: Figure) -> str:
    FigureCanvasAgg(fig)
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight", metadata={"Date": None})
    return buf.getvalue()


def scaling_table(frame: pd.DataFrame, key_columns: Sequence[str]) -> pd.DataFrame | None:
    """Per configuration and gpus: throughput and scaling efficiency (harness.scaling, the same figures as
    scaling.json). `key_columns`: the frame's key-field columns. None without a configuration at two gpus."""
    if "gpus" not in frame or "status" not in frame:
        return None
    keys = [k for k in dict.fromkeys(("workload", *key_columns, "gpus")) if k in frame]
    points = []
    for _, row in frame.iterrows():
        fields = {k: row[k] for k in keys if not pd.isna(row[k])}
        if "gpus" in fields:
            points.append(scaling.point(fields, row["status"], row, False))
    rows = [r for r in scaling.table(p for p in points if p is not None)]
    if not any(r["gpus"] != 1 for r in rows):
        return None
    varying = [k for k in keys if k != "gpus" and frame[k].nunique(dropna=False) > 1]
    out = []
    for r in rows:
        values = dict(pair.split("=", 1) for pair in r["config"].split(" "))
        # name a line by what tells the lines apart, plus the usual four
        name = " ".join(f"{k}={v}" for k, v in values.items() if k in SHOWN or k in varying)
        out.append(
            {
                "line": name,
                "gpus": r["gpus"],
                "throughput": r["throughput_n"],
                "efficiency": r["efficiency"],
                "column": r["metric"],
            }  # fmt: skip
        )
    return pd.DataFrame(out)


def scaling_figure(table: pd.DataFrame, title: str) -> str:
    """Throughput and scaling efficiency against the device count, one line per configuration."""
    fig = Figure(figsize=(10.4, 4.2), layout="constrained")
    ax_t, ax_e = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    for name, line in table.groupby("line", sort=True):
        ax_t.plot(line["gpus"], line["throughput"], marker="o", label=_safe(name))
        ax_e.plot(line["gpus"], line["efficiency"] * 100, marker="o", label=_safe(name))
    ax_e.axhline(100, color="black", linestyle="--", linewidth=0.8, label="ideal (linear)")
    col = table["column"].iloc[0]
    ax_t.set_xlabel("devices (gpus)")
    tokens = col.endswith("_tok_per_s")
    ax_t.set_ylabel(_safe(f"{col.removesuffix('_tok_per_s')} throughput (tokens/s)" if tokens else col))
    ax_e.set_xlabel("devices (gpus)")
    ax_e.set_ylabel("scaling efficiency (%), 100 % = linear")
    for ax in (ax_t, ax_e):
        ax.set_xticks(sorted(table["gpus"].unique()))
        ax.grid(True, alpha=0.3)
    handles, names = ax_e.get_legend_handles_labels()
    fig.legend(handles, names, loc="outside lower center", ncols=2, fontsize=8, frameon=False)
    fig.suptitle(_safe(title), fontsize=11)
    return _svg(fig)
