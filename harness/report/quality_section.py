"""The report's quality axis and cost projection: held-out metrics with intervals and verdicts per run, the
front's eligibility from the verdict, the served-volume projection, and human headers for the price and
energy tables."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from harness.report.html import esc, fmt, missing, table

# a column the front can use as the quality objective: held-out loss, only where quality is meaningful
LOSS_OBJECTIVE = "heldout_loss_nats"


def _num(row: pd.Series, column: str) -> float | None:
    v = pd.to_numeric(pd.Series([row.get(column)]), errors="coerce").iloc[0]
    return None if missing(v) else float(v)


def verdict_text(row: pd.Series) -> str:
    """The verdict as a reader sees it: pass / FAIL / inconclusive (with the estimate) / not meaningful."""
    if row.get("status") != "ok":
        return "n/a"
    if row.get("quality_quality_meaningful") is False or row.get("quality_quality_meaningful") == "False":
        return "not meaningful (random weights)"
    v = row.get("quality_verdict")
    if missing(v) and row.get("quality_task") == "classification":
        return classifier_verdict(row)
    if missing(v):
        rel = _num(row, "quality_relative_quality")
        return "not measured" if rel is None else ("pass" if row.get("quality_ok") else "BELOW FLOOR")
    if v == "inconclusive":
        more = _num(row, "quality_tokens_to_decide_estimate")
        return "inconclusive" + (f" (~{fmt(more)} tokens would decide, estimate)" if more else "")
    return "FAIL" if v == "fail" else str(v)


def classifier_verdict(row: pd.Series) -> str:
    """A classifier has no fp32 reference: it has learned something when its accuracy interval lies above
    always predicting the largest class (quality.majority_class_accuracy); a distill run adds its comparison."""
    lo, floor = _num(row, "quality_accuracy_lo"), _num(row, "quality_majority_class_accuracy")
    if lo is None or floor is None:
        return "not measured"
    text = "above the majority class" if lo > floor else "not above the majority class"
    versus = row.get("quality_distill_verdict")
    return text if missing(versus) else f"{text}; {versus}"


def annotate(frame: pd.DataFrame, floor: float) -> pd.DataFrame:
    """`quality_ok` (False only for a confident fail, or, in results without a verdict, a relative quality
    below the floor), the held-out loss objective column, and interval texts."""
    empty = pd.Series(index=frame.index, dtype=float)
    rel = pd.to_numeric(frame.get("quality_relative_quality", empty), errors="coerce")
    old_rule = ~(rel < floor)
    verdict = frame.get("quality_verdict", pd.Series(None, index=frame.index, dtype=object))
    has_verdict = verdict.notna()
    meaningful = frame.get("quality_quality_meaningful", pd.Series(None, index=frame.index, dtype=object))
    frame["quality_ok"] = old_rule.where(~has_verdict, verdict.ne("fail"))
    random = meaningful.astype(str).eq("False")
    frame.loc[random, "quality_ok"] = True  # no pass/fail on random weights
    frame["quality_ok"] = frame["quality_ok"].fillna(True).astype(bool)
    loss = pd.to_numeric(frame.get("quality_loss_nats", empty), errors="coerce")
    frame[LOSS_OBJECTIVE] = loss.where(~random)
    for name in ("loss_nats", "accuracy", "macro_f1", "accuracy_ratio", "perplexity_ratio", "macro_f1_ratio"):
        lo, hi = (pd.to_numeric(frame.get(f"quality_{name}_{e}", empty), errors="coerce") for e in ("lo", "hi"))
        frame[f"quality_{name}_interval"] = [
            "–" if missing(a) else _interval(name, a, None if missing(b) else b) for a, b in zip(lo, hi, strict=True)
        ]
    frame["quality_verdict_text"] = [verdict_text(r) for _, r in frame.iterrows()]
    return frame


def _interval(name: str, lo: float, hi: float | None) -> str:
    """Ratios near 1 need four decimals to show anything; the rest, four significant digits. An upper bound
    of None is unbounded (a ratio whose reference scored 0 in some resamples, harness.quality_eval)."""
    if name.endswith("_ratio"):
        return f"[{lo:.4f}, " + ("unbounded)" if hi is None else f"{hi:.4f}]")
    return f"[{fmt(lo, 4)}, {fmt(hi, 4)}]"


QUALITY_HEADERS = ["configuration", "weights", "metric", "value", "95 % interval", "relative to fp32", "verdict"]


def quality(frame: pd.DataFrame, floor: float, config_of: Any) -> str:
    """One row per run and metric: held-out loss and accuracy, each with its interval, ratio and verdict."""
    parts = ['<section id="quality"><h2>Quality (held-out)</h2>']
    parts.append(
        f"<p>Held-out text never trained on nor used as a prompt; the verdict holds the interval of the ratio "
        f"to the fp32 reference (accuracy ratio; perplexity ratio = reference perplexity / run perplexity) "
        f"against the floor {esc(fmt(floor))}: pass when the lower bound is at or above it, fail when the upper "
        "bound is below it, otherwise inconclusive. Only a fail leaves the front.</p>"
    )
    rows = []
    ok = frame[frame["status"].eq("ok") & frame.get("quality_loss_nats", pd.Series(index=frame.index)).notna()]
    for _, r in ok.iterrows():
        weights = str(r.get("weights_kind") or r.get("quality_weights") or "–")
        n = _num(r, "quality_eval_tokens")
        for metric, col, ratio in (
            ("held-out loss (nats/token)", "quality_loss_nats", "perplexity_ratio"),
            ("next-token accuracy", "quality_accuracy", "accuracy_ratio"),
        ):
            rel = _num(r, f"quality_{ratio}")
            rel_text = "–" if rel is None else f"{rel:.4f} {r.get(f'quality_{ratio}_interval')}"
            value = _num(r, col)
            shown = "–" if value is None else f"{fmt(value, 4)} (n={fmt(n)} tokens)"
            interval = r.get(f"{col}_interval")
            rows.append([config_of(r), weights, metric, shown, interval, rel_text, r["quality_verdict_text"]])
    rows += _classifier_rows(frame, config_of)
    if not rows:
        parts.append('<p class="note">No ok run has held-out quality figures.</p>')
    else:
        parts.append(f'<div class="wide">{table(QUALITY_HEADERS, rows, sortable=True)}</div>')
    parts.append("</section>")
    return "".join(parts)


def _classifier_rows(frame: pd.DataFrame, config_of: Any) -> list[list[str]]:
    """Classification (and distill) runs: held-out accuracy and macro-F1 over n examples, with intervals."""
    task = frame.get("quality_task", pd.Series(None, index=frame.index, dtype=object))
    rows = []
    for _, r in frame[frame["status"].eq("ok") & task.eq("classification")].iterrows():
        weights, n = str(r.get("weights_kind") or "–"), _num(r, "quality_n")
        for metric, col in (("accuracy", "quality_accuracy"), ("macro-F1", "quality_macro_f1")):
            value, rel = _num(r, col), _num(r, f"{col}_ratio")  # the ratio to fp32: classify runs only
            shown = "–" if value is None else f"{fmt(value, 4)} (n={fmt(n)} examples)"
            rel_text = "–" if rel is None else f"{rel:.4f} {r.get(f'{col}_ratio_interval')}"
            rows.append(
                [config_of(r), weights, metric, shown, r.get(f"{col}_interval"), rel_text, r["quality_verdict_text"]]
            )
    return rows


def projection(frame: pd.DataFrame, served_tokens: float | None, config_of: Any) -> str:
    """Serving cost per 1 M tokens plus the training cost amortised over `served_tokens` (a projection)."""
    if not served_tokens:
        return ""
    parts = ['<section id="projection"><h2>Cost to serve, with training amortised (projection)</h2>']
    parts.append(
        f"<p>A projection, not a measurement: measured serving cost per 1 M generated tokens, plus the measured "
        f"cost of training the weights spread over {esc(fmt(served_tokens))} served tokens "
        "(--served-tokens).</p>"
    )
    rows = []
    for _, r in frame[frame["status"].eq("ok")].iterrows():
        serve = _num(r, "cost_usd_per_1m_tokens_generated")
        train = _num(r, "weights_training_usd")
        if serve is None:
            continue
        amortised = None if train is None else train / (served_tokens / 1e6)
        total = serve + (amortised or 0.0)
        rows.append(
            [
                config_of(r),
                fmt(serve),
                "–" if train is None else fmt(train),
                "–" if amortised is None else fmt(amortised),
                fmt(total),
                fmt(_num(r, "weights_checkpoint_bytes")),
            ]
        )
    headers = [
        "configuration",
        "serving USD / 1M tokens",
        "training USD (measured)",
        "training USD / 1M tokens (amortised)",
        "total USD / 1M tokens (projection)",
        "checkpoint bytes",
    ]
    parts.append(table(headers, rows) if rows else '<p class="note">No ok run has a serving cost.</p>')
    return "".join(parts) + "</section>"


_WORDS = {"usd": "USD", "per": "per", "j": "J", "w": "W", "pue": "PUE", "co2e": "CO2e", "kwh": "kWh"}


def human_header(column: str, prefix: str) -> str:
    """cost_price_usd_per_hour → 'USD per hour'; energy_total_method → 'total method'."""
    words = column.removeprefix(prefix).removeprefix("price_").split("_")
    return " ".join(_WORDS.get(w, w) for w in words if w)


def cell(v: Any) -> str:
    """A setting as shown: numbers to 3 significant digits, '–' for none."""
    try:
        number = float(v)
    except (TypeError, ValueError):
        return "–" if v is None or str(v) in ("None", "nan") else str(v)
    return fmt(number) if math.isfinite(number) else "–"


def human_table(distinct: pd.DataFrame, prefix: str) -> str:
    """A distinct-settings table with human headers (cells already shown, see cell())."""
    headers = [human_header(c, prefix) for c in distinct.columns]
    return table(headers, [list(row) for row in distinct.itertuples(index=False)], cls="compact")
