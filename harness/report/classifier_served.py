"""A classifier's total cost over a stated serving volume (`--served-examples N`): what its weights cost to make
(pretraining + fine-tuning or distillation, measured: the result's `weights.total_usd`) plus N examples at its
measured USD per 1,000 examples. A projection from measured figures, not a measurement; with it the answer
ranks classify runs ("full fine-tune + fp32" against "LoRA + int8") on quality per dollar at that volume."""

from __future__ import annotations

import pandas as pd

from harness.metrics import SERVED_TOTAL
from harness.report.html import esc, fmt, missing, table

WORKLOAD = "classify"


def _num(frame: pd.DataFrame, column: str) -> pd.Series:
    if column not in frame:
        return pd.Series(float("nan"), index=frame.index, dtype=float)
    return pd.to_numeric(frame[column], errors="coerce").astype(float)


def served_total(made_usd: float | None, usd_per_1k: float | None, served_examples: float) -> float | None:
    """USD to make the weights plus USD to classify `served_examples` at `usd_per_1k` per 1,000 (None if unknown)."""
    if made_usd is None or usd_per_1k is None:
        return None
    return made_usd + usd_per_1k * served_examples / 1e3


def add_column(frame: pd.DataFrame, served_examples: float | None) -> pd.DataFrame:
    """The frame with `served_total_usd` on its ok classify runs whose weights' cost and serving price are known."""
    if not served_examples or "workload" not in frame:
        return frame
    made, per_1k = _num(frame, "weights_total_usd"), _num(frame, "cost_usd_per_1k_examples")
    rows = frame["workload"].eq(WORKLOAD) & frame["status"].eq("ok") & made.notna() & per_1k.notna()
    frame[SERVED_TOTAL.column] = float("nan")
    frame.loc[rows, SERVED_TOTAL.column] = made[rows] + per_1k[rows] * served_examples / 1e3
    return frame


HEADERS = [
    "configuration",
    "accuracy [95 %]",
    "verdict vs fp32",
    "USD to make (measured)",
    "USD / 1k examples (measured)",
    "USD made + served (projection)",
    "accuracy per USD",
]


def section(frame: pd.DataFrame, served_examples: float | None, config_of) -> str:  # noqa: ANN001
    """The table of classify runs, cheapest total first, with their quality and verdict beside it."""
    if not served_examples or SERVED_TOTAL.column not in frame:
        return ""
    sub = frame[frame["workload"].eq(WORKLOAD) & frame["status"].eq("ok")]
    if sub.empty:
        return ""
    parts = ['<section id="classifier-served"><h2>Classifier cost over a served volume (projection)</h2>']
    parts.append(
        f"<p>A projection from measured figures: what each classifier's weights cost to make (pretraining + "
        f"fine-tuning or distillation, from their runs' results) plus {esc(fmt(served_examples))} examples "
        "classified at the run's measured USD per 1,000 examples (--served-examples). Cheapest first; a run "
        "whose weights' cost is unknown (a local model from elsewhere) has no total.</p>"
    )
    rows = []
    for _, r in sub.sort_values(SERVED_TOTAL.column, na_position="last").iterrows():
        total, acc = r.get(SERVED_TOTAL.column), r.get("quality_accuracy")
        per_usd = None if missing(total) or missing(acc) or not total else acc / total
        cells = [config_of(r), "–" if missing(acc) else f"{fmt(acc, 4)} {r.get('quality_accuracy_interval')}"]
        cells.append(str(r.get("quality_verdict_text", "–")))
        for col in ("weights_total_usd", "cost_usd_per_1k_examples", SERVED_TOTAL.column):
            cells.append("–" if missing(r.get(col)) else fmt(r.get(col)))
        cells.append("–" if per_usd is None else fmt(per_usd))
        rows.append(cells)
    parts.append(table(HEADERS, rows))
    return "".join(parts) + "</section>"
