"""The answer first: per workload, the configuration with the best quality per dollar (and per joule, per
second) across every model size, precision, batch size and device count of a sweep.

Quality is judged with its interval: every run whose interval overlaps the best run's is tied for the best
quality, and among those the cheapest (least energy, fastest) is recommended; a run is never named the
winner on a difference smaller than its interval. Failed, disturbed and below-floor runs are never
recommended, and the answer says which were left out and why.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from harness import metrics, scenarios
from harness.report.html import esc, fmt, missing
from harness.report.pareto import knee_index, pareto_mask
from harness.summary import label as run_label


@dataclass(frozen=True)
class Axis:
    """One figure the answer and the hero chart read: its report column, registry metric and sense."""

    column: str
    metric: metrics.Metric
    sense: str  # "min" | "max"

    @property
    def label(self) -> str:
        return self.metric.label or self.metric.name

    def shown(self, value: float) -> str:
        """A value with its unit as a reader sees it (bytes as MiB)."""
        if self.metric.unit == "bytes":
            return f"{fmt(value / 2**20)} MiB"
        return f"{fmt(value, 4 if self.metric.unit == 'nats' else 3)} {self.metric.unit}".strip()

    def text(self, value: float) -> str:
        """A value named in a sentence: '0.138 USD/1M tok', '335 tokens/s (e2e tok/s)', '512 MiB peak memory'."""
        if self.metric.unit == "bytes":
            return f"{self.shown(value)} {self.label}"
        if "/" in self.label:  # the label carries its unit (USD/1M tok, J/token)
            return f"{fmt(value)} {self.label}"
        return f"{self.shown(value)} ({self.label})"


@dataclass(frozen=True)
class Spec:
    """What a workload's answer reads: quality (with interval columns where there are), cost, energy, speed."""

    quality: Axis
    lo: str | None
    hi: str | None
    cost: tuple[Axis, ...]  # the first with data is used
    energy: Axis
    speed: tuple[Axis, ...]  # the first with data is used
    memory: Axis


def _axis(column: str, name: str, section: str, sense: str) -> Axis:
    """section "report": a figure the report derives (metrics.REPORT_ONLY), not one a result file holds."""
    metric = metrics.REPORT_ONLY[name] if section == "report" else metrics.get(name, section)
    return Axis(column, metric, sense)


MEMORY = Axis("peak_memory_bytes", metrics.PEAK_MEMORY, "min")


def spec_for(workload: str) -> Spec | None:
    """What the answer reads for `workload`, as its scenario declares it (harness.scenarios.base.Spec.answer:
    axes of (report column, registry metric, section, sense)); None for one that declares none."""
    declared = scenarios.spec(workload, strict=False).answer
    if declared is None:
        return None
    return Spec(
        _axis(*declared["quality"]),
        declared["lo"],
        declared["hi"],
        tuple(_axis(*c) for c in declared["cost"]),
        _axis(*declared["energy"]),
        tuple(_axis(*c) for c in declared["speed"]),
        MEMORY,
    )


def num(frame: pd.DataFrame, column: str | None) -> pd.Series:
    """A column as floats (NaN where absent or not a number)."""
    if column is None or column not in frame:
        return pd.Series(np.nan, index=frame.index, dtype=float)
    return pd.to_numeric(frame[column], errors="coerce").astype(float)


def first_axis(frame: pd.DataFrame, axes: Sequence[Axis]) -> Axis:
    """The first of `axes` with data (training's cost: to target, else the whole loop)."""
    return next((a for a in axes if num(frame, a.column).notna().any()), axes[0])


def disturbed(frame: pd.DataFrame) -> pd.Series:
    return frame.get("disturbed", pd.Series(False, index=frame.index)).eq(True)


def exclusions(frame: pd.DataFrame) -> pd.Series:
    """Why each run may not be recommended ('' when it may): failed, disturbed or below the quality floor."""
    why = pd.Series("", index=frame.index, dtype=object)
    status = frame["status"].astype(str)
    why[status.ne("ok")] = status[status.ne("ok")]
    below = status.eq("ok") & ~frame["quality_ok"].astype(bool)
    why[below] = "below the quality floor"
    why[status.eq("ok") & disturbed(frame)] = "disturbed (measured beside other load)"
    return why


def tied_best(frame: pd.DataFrame, spec: Spec) -> pd.Index:
    """The runs tied for the best quality: those whose interval overlaps the best run's (equal values where
    there is no interval). Empty when no run has a quality figure."""
    q = num(frame, spec.quality.column)
    if q.notna().sum() == 0:
        return frame.index[:0]
    best = q.idxmin() if spec.quality.sense == "min" else q.idxmax()
    lo, hi = num(frame, spec.lo), num(frame, spec.hi)
    if missing(lo[best]) or missing(hi[best]):
        return frame.index[q.eq(q[best])]
    overlap = (lo <= hi[best]) & (hi >= lo[best])
    return frame.index[q.notna() & (overlap | q.eq(q[best]))]


def best_on(frame: pd.DataFrame, index: pd.Index, axis: Axis) -> object | None:
    """The run of `index` best on `axis` (None when none has the figure)."""
    values = num(frame.loc[index], axis.column).dropna()
    if values.empty:
        return None
    return values.idxmin() if axis.sense == "min" else values.idxmax()


def front_2d(frame: pd.DataFrame, y: Axis, x: Axis, eligible: pd.Series) -> tuple[pd.Index, object | None]:
    """The (y, x) Pareto front among eligible runs, sorted by x, and its knee (pareto.knee_index)."""
    values = np.column_stack([num(frame, y.column), num(frame, x.column)])
    values[~eligible.reindex(frame.index).fillna(False).to_numpy(dtype=bool)] = np.nan
    mask = pareto_mask(values, [y.sense, x.sense])
    if not mask.any():
        return frame.index[:0], None
    on = frame.index[mask]
    knee = on[knee_index(values[mask], [y.sense, x.sense])]
    return num(frame.loc[on], x.column).sort_values().index, knee


@dataclass
class Answer:
    """The answer for one workload (and sweep): recommended runs per figure, ties, the trade, exclusions."""

    spec: Spec
    cost: Axis
    speed: Axis
    rows: pd.DataFrame
    eligible: pd.Series
    excluded: pd.Series  # why, per run ('' when eligible)
    quality_known: bool
    tied: pd.Index
    pick: dict[str, object | None]  # "cost" / "energy" / "speed" → frame index


def answer(rows: pd.DataFrame, workload: str) -> Answer | None:
    """The answer for the runs of one workload (None for a workload without a Spec, e.g. a plugin's)."""
    spec = spec_for(workload)
    if spec is None:
        return None
    why = exclusions(rows)
    eligible = why.eq("")
    q = num(rows, spec.quality.column)
    quality_known = bool((eligible & q.notna()).any())
    pool = rows.index[eligible & q.notna()] if quality_known else rows.index[eligible]
    tied = tied_best(rows.loc[pool], spec) if quality_known else pool
    cost, speed = first_axis(rows, spec.cost), first_axis(rows, spec.speed)
    pick = {
        name: best_on(rows, tied, axis) for name, axis in (("cost", cost), ("energy", spec.energy), ("speed", speed))
    }
    return Answer(spec, cost, speed, rows, eligible, why, quality_known, tied, pick)


def _quality_text(a: Answer, row: pd.Series) -> str:
    q, spec = row.get(a.spec.quality.column), a.spec
    if missing(q):
        return ""
    lo, hi = (row.get(c) if c else None for c in (spec.lo, spec.hi))
    interval = "" if missing(lo) or missing(hi) else f" [{fmt(lo, 4)}, {fmt(hi, 4)}]"
    return f"{spec.quality.label} {fmt(q, 4)}{interval}"


def _figures(a: Answer, row: pd.Series) -> str:
    parts = [_quality_text(a, row)] if a.quality_known else []
    for axis in (a.cost, a.spec.energy, a.speed):
        v = row.get(axis.column)
        if not missing(v):
            parts.append(axis.text(float(v)))
    return ", ".join(p for p in parts if p)


def _trade(a: Answer, rec: object) -> str:
    """What the next cheaper point on the quality-cost front trades, and the best-quality point if it is not rec."""
    out = []
    cost = num(a.rows, a.cost.column)
    q = num(a.rows, a.spec.quality.column)
    ok = a.eligible & q.notna() & cost.notna()
    cheaper = ok & (cost < cost[rec])
    if cheaper.any():
        sub = a.rows[cheaper]
        nxt = best_on(sub, sub.index, a.spec.quality)
        times = cost[rec] / cost[nxt] if cost[nxt] > 0 else float("inf")
        delta = q[nxt] - q[rec]
        out.append(
            f"The next cheaper point, {_name(a.rows.loc[nxt])}, is {times:.2g}× cheaper for "
            f"{delta:+.3g} {a.spec.quality.metric.unit} ({_quality_text(a, a.rows.loc[nxt])})."
        )
    top = best_on(a.rows, a.tied, a.spec.quality)
    if top is not None and top != rec and not missing(cost[top]) and cost[rec] > 0:
        out.append(
            f"{_name(a.rows.loc[top])} has the best {a.spec.quality.label} by {abs(q[top] - q[rec]):.2g}, "
            f"inside the intervals (a tie, not a win), at {cost[top] / cost[rec]:.2g}× the cost."
        )
    return " ".join(out)


def config_label(row: pd.Series) -> str:
    """A run's name in every table and sentence: its label (harness.summary), plus its weights."""
    weights = "" if missing(row.get("weights_kind")) else f" ({row.get('weights_kind')} weights)"
    return run_label({k: (None if missing(v) else v) for k, v in row.items()}) + weights


_name = config_label


def _unpriced(a: Answer) -> bool:
    """Runs finished `ok` and none of them has a cost: no price for this hardware."""
    ok = a.rows["status"].astype(str) == "ok" if "status" in a.rows else pd.Series(False, index=a.rows.index)
    return bool(ok.any()) and bool(num(a.rows.loc[ok], a.cost.column).isna().all())


def sentences(a: Answer) -> list[str]:
    """The answer as HTML sentences (every value escaped)."""
    out: list[str] = []
    rec = a.pick.get("cost")
    if not a.eligible.any():
        out.append("No run can be recommended: none finished undisturbed at or above the quality floor.")
    elif not a.quality_known:
        out.append(
            "Quality not measured or not meaningful here (random weights, or quality.enabled=false): these runs "
            "are ranked on cost and speed only."
        )
    elif len(a.tied) > 1:
        names = ", ".join(_name(a.rows.loc[i]) for i in a.tied)
        out.append(
            f"{len(a.tied)} configurations tie for the best {a.spec.quality.label} (their intervals overlap): {names}."
        )
    lead = "Best quality per dollar" if a.quality_known else "Cheapest"
    if rec is not None:
        row = a.rows.loc[rec]
        out.append(f"<b>{lead}: {esc(_name(row))}</b>: {esc(_figures(a, row))}.")
        if a.quality_known:
            out.append(esc(_trade(a, rec)))
        out.append(f"Reproduce: <code>{esc(row['command'])}</code>")
    elif a.eligible.any() or _unpriced(a):  # said even when no run is eligible (all disturbed, say)
        out.append(f"No {esc(a.cost.label)} measured (no price for this hardware): no per-dollar answer.")
    for name, lead_text in (("energy", "per joule"), ("speed", "per second")):
        idx = a.pick.get(name)
        if idx is None:
            continue
        axis = a.spec.energy if name == "energy" else a.speed
        what = "the same configuration" if idx == rec else esc(_name(a.rows.loc[idx]))
        shown = axis.text(float(a.rows.loc[idx, axis.column]))
        out.append(f"Best quality {lead_text}: {what} ({esc(shown)}).")
    out.append(esc(_left_out(a)))
    return [s for s in out if s]


def _left_out(a: Answer) -> str:
    """The runs never recommended, grouped by why."""
    groups: dict[str, list[str]] = {}
    for idx, why in a.excluded.items():
        if why:
            groups.setdefault(str(why), []).append(_name(a.rows.loc[idx]))
    if not groups:
        return ""
    parts = [f"{len(v)} {k} ({'; '.join(v)})" for k, v in sorted(groups.items())]
    return "Not recommended: " + ", ".join(parts) + "."


def html(answers: Sequence[tuple[str, Answer]]) -> str:
    """The answer block: one paragraph per answer, led by its heading (the sweep, when there are several)."""
    parts = []
    for heading, a in answers:
        lead = f"<b>{esc(heading)}.</b> " if heading else ""
        parts.append(f'<div class="answer"><p>{lead}' + " ".join(sentences(a)) + "</p></div>")
    return "".join(parts)
