"""Plots for the report (matplotlib, no GUI backend, no pyplot state): SVG text to embed in the page.

A Figure is drawn on an Agg canvas and saved as SVG, so nothing depends on the user's backend settings.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import LogLocator, NullFormatter, ScalarFormatter

from harness import scaling, summary
from harness.report.pareto import Front, Objective

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


def axis_label(obj: Objective, column: str) -> str:
    _, unit = display_scale(column, obj.unit)
    better = "higher is better" if obj.sense == "max" else "lower is better"
    return _safe(f"{obj.label} ({unit}), {better}" if unit else f"{obj.label}, {better}")


def _safe(text: str) -> str:
    """Plain text for matplotlib: `$` would start mathtext (and a hostile name could break the plot)."""
    return str(text).replace("$", r"\$")


def _svg(fig: Figure) -> str:
    FigureCanvasAgg(fig)
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight", metadata={"Date": None})
    return buf.getvalue()


def point_label(row: pd.Series) -> str:
    gpus = row.get("gpus")
    more = f" gpus={gpus:g}" if gpus not in (None, 1) and not pd.isna(gpus) else ""
    load = summary.load_label({k: (None if pd.isna(v) else v) for k, v in row.items() if pd.api.types.is_scalar(v)})
    if load is not None:  # a serving point: its load, not a batch
        return f"{row.get('precision')} {load}{more}"
    n = summary.number_text
    return f"{row.get('precision')} bs={n(row.get('batch_size'))} seq={n(row.get('seq_len'))}{more}"


def pareto_figure(
    group: pd.DataFrame, fr: Front, quality_ok: pd.Series, title: str, y_fallback: str = "batch_size"
) -> str | None:
    """Front highlighted, dominated runs faded, runs below the quality floor marked; None without data."""
    if not fr.active:
        return None
    (x_obj, x_col), *others = fr.active
    pairs = [(o, c) for o, c in others] or [(Objective("batch size", (y_fallback,), "min"), y_fallback)]
    fig = Figure(figsize=(5.2 * len(pairs), 4.2), layout="constrained")
    ok = group["status"].eq("ok")
    failing = ok & ~quality_ok.reindex(group.index).fillna(True).astype(bool)
    label_all = ok.sum() <= MAX_LABELS
    xs, x_unit = display_scale(x_col, x_obj.unit)
    for i, (y_obj, y_col) in enumerate(pairs):
        ax = fig.add_subplot(1, len(pairs), i + 1)
        ys, _ = display_scale(y_col, y_obj.unit)
        x = pd.to_numeric(group[x_col], errors="coerce") * xs
        y = pd.to_numeric(group[y_col], errors="coerce") * ys
        kinds = (
            (ok & ~fr.on_front & ~failing, dict(c=DOMINATED, alpha=0.45, s=36, marker="o"), "dominated"),
            (failing, dict(c=FAILING, alpha=0.9, s=70, marker="X"), "below quality floor (off the front)"),
            (fr.on_front, dict(c=FRONT, s=80, marker="o", edgecolors="black", linewidths=0.8), "Pareto front"),
        )
        for mask, style, name in kinds:
            if mask.any():
                ax.scatter(x[mask], y[mask], label=name, zorder=3 if name == "Pareto front" else 2, **style)
        disturbed = ok & group.get("disturbed", pd.Series(False, index=group.index)).eq(True)
        if disturbed.any():  # measured beside other load (harness.interference): a ring around the point
            ring = dict(s=170, marker="s", facecolors="none", edgecolors=DISTURBED, linewidths=1.6, zorder=4)
            ax.scatter(x[disturbed], y[disturbed], label="disturbed (other load)", **ring)
        if fr.knee is not None and fr.knee in group.index:
            ax.scatter([x[fr.knee]], [y[fr.knee]], s=260, facecolors="none", edgecolors=FRONT, linewidths=1.5)
            ax.annotate("knee", (x[fr.knee], y[fr.knee]), textcoords="offset points", xytext=(10, -14), color=FRONT)
        for n, idx in enumerate(group.index[ok]):
            if (label_all or fr.on_front[idx]) and np.isfinite(x[idx]) and np.isfinite(y[idx]):
                color = FAILING if failing[idx] else ("black" if fr.on_front[idx] else "#5f6368")
                ax.annotate(
                    _safe(point_label(group.loc[idx])),
                    (x[idx], y[idx]),
                    textcoords="offset points",
                    xytext=(5, 5 if n % 2 == 0 else -11),  # alternate above/below: neighbours overlap less
                    fontsize=7,
                    color=color,
                )
        for values, set_scale, axis in ((x[ok], ax.set_xscale, ax.xaxis), (y[ok], ax.set_yscale, ax.yaxis)):
            finite = values[np.isfinite(values) & (values > 0)]
            if len(finite) > 1 and finite.max() / finite.min() > 10:
                set_scale("log")  # one slow outlier must not squash every other point into a line
                _plain_log_ticks(axis)
            else:
                axis.get_major_formatter().set_useOffset(False)  # values as they are, not "+4.795" offsets
        ax.margins(0.15)  # room for the point labels
        ax.set_xlabel(axis_label(x_obj, x_col))
        ax.set_ylabel(axis_label(y_obj, y_col) if y_obj.columns != (y_fallback,) else "batch size")
        ax.grid(True, alpha=0.3)
        if i == 0:
            handles, names = ax.get_legend_handles_labels()
    fig.legend(handles, names, loc="outside lower center", ncols=3, fontsize=8, frameon=False)
    fig.suptitle(_safe(title), fontsize=11)
    return _svg(fig)


def _plain_log_ticks(axis) -> None:
    """Plain-number ticks at 1-2-5 steps on a log axis (no 2×10^1 labels running into each other)."""
    axis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    axis.set_major_formatter(ScalarFormatter())
    axis.set_minor_formatter(NullFormatter())


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
