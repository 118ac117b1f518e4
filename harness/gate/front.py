"""`gate --front`: did the candidate sweep's Pareto front get worse than the baseline's beyond noise?

Each side's front is the report's (harness.report.pareto, the default objectives of its workload, failed and
below-floor runs off it), over its runs pooled by key. Two points are compared objective by objective with
the statistics the gate already has, so "beyond noise" means what it means for the per-metric verdicts:
- a timed metric with per-repeat samples on both points (decode tok/s, USD per 1 M tokens, ...): the bootstrap
  ratio of the two points' repeats, judged against that metric's threshold (`gate.stats.decide_timed`);
- a figure with a 95 % interval (held-out loss): the intervals do not overlap;
- any other figure: the counted rule, max(threshold × |baseline|, floor), with the gate's setting for the
  metric where it has one (peak memory: max(2 %, 64 MiB)) and `FALLBACK_THRESHOLD` otherwise (p99 latency).

A candidate point *covers* a baseline point when it is worse beyond noise on no objective. The candidate points
*near* a baseline point are those better than it beyond noise on no objective (its corner of the trade-off).
A baseline front point that no candidate point covers, while every candidate point near it is dominated by it
(worse beyond noise somewhere, better nowhere), is a `regression`: the front lost that point. Not covered and
nothing near (each candidate point trades a better figure for a worse one) is `inconclusive`: the front moved.
A candidate front point no baseline point covers, with a baseline point near it, is an `improvement`.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from harness import metrics, summary
from harness.gate import stats as gstats
from harness.gate.baseline import Side, fingerprint
from harness.gate.compare import Check, counted_value, timed_samples
from harness.gate.settings import GateSettings
from harness.report import aggregate, pareto
from harness.report.build import annotate, quality_floor

FALLBACK_THRESHOLD = 0.10  # objectives without a gate setting (p99 latency: the gate's 10 % for p99s)
INTERVALS = {"heldout_loss_nats": "quality_loss_nats"}  # objective column → its `_lo`/`_hi` interval columns
PEAK_MEMORY_METRICS = metrics.DERIVED_COLUMNS["peak_memory_bytes"]


@dataclass(frozen=True)
class Point:
    """One configuration of a side (its runs pooled): the objective values and its runs."""

    key: str
    label: str
    workload: str
    values: dict[str, float]  # objective column → value (pooled median)
    intervals: dict[str, tuple[float, float]]  # objective column → 95 % interval, where there is one
    runs: tuple[dict[str, Any], ...]


def _points(side: Side, floor: float | None) -> tuple[pd.DataFrame, dict[str, list[dict[str, Any]]]]:
    """The side as the report's annotated frame, one row per key (figures pooled by median)."""
    rows = []
    for key, runs in side.by_key.items():
        flat = [aggregate.flatten_result(r, "") for r in runs]
        row = dict(flat[0])
        for col in flat[0]:
            nums = [f.get(col) for f in flat]
            if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in nums) and len(flat) > 1:
                row[col] = statistics.median(nums)
        row["status"] = next((f["status"] for f in flat if f["status"] != "ok"), "ok")
        row["key"] = key
        rows.append(row)
    frame = pd.DataFrame(rows)
    return annotate(frame, quality_floor(frame, floor)), side.by_key


def _number(x: Any) -> float | None:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def _point(row: pd.Series, columns: Sequence[str], runs: list[dict[str, Any]]) -> Point:
    values = {c: _number(row.get(c)) for c in columns}
    intervals = {}
    for col, base in INTERVALS.items():
        lo, hi = _number(row.get(f"{base}_lo")), _number(row.get(f"{base}_hi"))
        if col in columns and lo is not None and hi is not None:
            intervals[col] = (lo, hi)
    label = summary.label(runs[0]["key_fields"])
    return Point(row["key"], label, str(row["workload"]), values, intervals, tuple(runs))


def _rule(column: str, s: GateSettings) -> tuple[str, str | None, float, float]:
    """How one objective's difference is judged: (kind, gate metric, threshold, floor)."""
    if column in INTERVALS:
        return "interval", None, 0.0, 0.0
    name = next((m.name for m in metrics.METRICS if m.column == column), None)
    if column == "peak_memory_bytes":
        name = next((m for m in PEAK_MEMORY_METRICS if m in s.metrics), None)
    spec = s.metrics.get(name) if name else None
    if spec is None:
        return "counted", None, FALLBACK_THRESHOLD, 0.0
    return spec.kind, name, spec.threshold, spec.floor


def compare_values(b: Point, c: Point, column: str, sense: str, s: GateSettings) -> int:
    """+1 when candidate point c is worse than baseline point b on this objective beyond noise, -1 when better,
    0 within noise."""
    better = gstats.LOWER if sense == "min" else gstats.HIGHER
    kind, name, threshold, floor = _rule(column, s)
    if kind == "interval" and column in b.intervals and column in c.intervals:
        (b_lo, b_hi), (c_lo, c_hi) = b.intervals[column], c.intervals[column]
        if c_lo > b_hi or c_hi < b_lo:
            worse_higher = (c_lo > b_hi) == (better == gstats.LOWER)
            return 1 if worse_higher else -1
        return 0
    if kind == "timed" and name:
        base, cand = timed_samples(b.runs, name), timed_samples(c.runs, name)
        if sum(map(len, base)) >= s.min_repeats and sum(map(len, cand)) >= s.min_repeats:
            q = s.quantile if better == gstats.LOWER else 1 - s.quantile
            rng = gstats.seed_for(s.seed, "front", b.key, c.key, name)
            est = gstats.bootstrap_ratio(
                base, cand, confidence=s.confidence, resamples=s.resamples, rng=rng, quantile=q, resample=s.resample
            )
            verdict = gstats.decide_timed(est, threshold, better)
            return {"regression": 1, "improvement": -1}.get(verdict, 0)
    bv, cv = b.values[column], c.values[column]
    if kind == "counted" and name and name in PEAK_MEMORY_METRICS:
        bv, cv = counted_value(b.runs, name) or bv, counted_value(c.runs, name) or cv
    verdict = gstats.decide_counted(bv, cv, threshold, floor, better)
    return {"regression": 1, "improvement": -1}.get(verdict, 0)


Active = list[tuple[pareto.Objective, str]]


def _signs(b: Point, c: Point, active: Active, s: GateSettings) -> dict[str, int]:
    return {obj.label: compare_values(b, c, col, obj.sense, s) for obj, col in active}


def _describe(b: Point, c: Point, signs: dict[str, int], active: Active, word: str) -> str:
    """'tiny bf16 ...: decode throughput 120 vs 100' for the objectives where `signs` is +1."""
    parts = []
    for obj, col in active:
        if signs[obj.label] > 0:
            parts.append(f"{obj.label} {b.values[col]:.4g} vs {c.values[col]:.4g}")
        elif signs[obj.label] < 0 and word == "trades":
            parts.append(f"{obj.label} {b.values[col]:.4g} vs {c.values[col]:.4g} (better)")
    return f"{c.label} ({word} " + ", ".join(parts) + ")"


def judge(b: Point, others: Sequence[Point], active: Active, s: GateSettings, lost: str) -> tuple[str, str]:
    """(verdict, note) for a front point `b` of one side against the eligible points of the other: `pass` when
    covered; `lost` (regression, or improvement for a candidate point) when it dominates every point near it, or
    nothing is near and its own configuration is not eligible there; else inconclusive (the front moved)."""
    if not others:
        return lost, "no eligible run on the other side (failed, below the quality floor or not measured)"
    signs = [(c, _signs(b, c, active, s)) for c in others]
    covering = sorted((c for c, sg in signs if max(sg.values()) <= 0), key=lambda c: c.key != b.key)  # itself first
    if covering:
        return "pass", f"covered by {covering[0].label}" + (" (itself)" if covering[0].key == b.key else "")
    near = [(c, sg) for c, sg in signs if min(sg.values()) >= 0]
    if near:
        described = "; ".join(_describe(b, c, sg, active, "is worse on") for c, sg in near)
        return lost, f"dominates every point near it: {described}"
    closest = sorted(signs, key=lambda cs: (cs[0].key != b.key, sum(v > 0 for v in cs[1].values())))[:3]
    trades = "; ".join(_describe(b, c, sg, active, "trades") for c, sg in closest)
    if all(c.key != b.key for c in others):
        return lost, f"its configuration is not eligible on the other side and no point covers it; nearest: {trades}"
    return "inconclusive", f"the front moved: no point covers it and every point trades: {trades}"


def _fingerprints(side: Side, fields: Sequence[str]) -> set[str]:
    return {repr(sorted(fingerprint(r.get("environment"), fields).items())) for r in side.all_results()}


def _eligible(frame: pd.DataFrame, workload: str, active: Active, runs: dict) -> tuple[list[Point], list[Point]]:
    """(eligible points, front points) of one workload of a side."""
    rows = frame[frame["workload"] == workload]
    fr = pareto.front(rows, [o for o, _ in active], rows["quality_ok"])
    cols = [c for _, c in active]
    ok = fr.eligible & rows[cols].apply(pd.to_numeric, errors="coerce").notna().all(axis=1)
    points = {i: _point(rows.loc[i], cols, runs[rows.loc[i, "key"]]) for i in rows.index[ok]}
    return list(points.values()), [p for i, p in points.items() if fr.on_front.get(i, False)]


def _active(base: pd.DataFrame, cand: pd.DataFrame, workload: str) -> tuple[Active, list[str]]:
    """The objectives measured by ok runs on both sides (the others are named and skipped)."""
    objs = pareto.DEFAULT_OBJECTIVES.get(workload, ())
    b_active, _ = pareto.resolve(base[base["workload"] == workload], objs)
    c_active, _ = pareto.resolve(cand[cand["workload"] == workload], objs)
    both = [(o, col) for o, col in b_active if (o, col) in c_active]
    used = {o for o, _ in both}
    return both, [o.label for o in objs if o not in used]


def front_checks(base: Side, cand: Side, s: GateSettings, floor: float | None = None) -> tuple[list[Check], dict]:
    """The `front` checks (one per baseline front point; one per candidate front point that is an improvement)
    and the verdicts.json `front` section."""
    section: dict[str, Any] = {"workloads": {}}
    if _fingerprints(base, s.environment.strict) != _fingerprints(cand, s.environment.strict):
        note = "the two sides ran in different environments (environment.strict): fronts not compared"
        return [Check("*", "front", "front", "front", "incomparable", note=note)], section
    b_frame, b_runs = _points(base, floor)
    c_frame, c_runs = _points(cand, floor)
    checks: list[Check] = []
    for workload in sorted(set(b_frame["workload"].dropna()) | set(c_frame["workload"].dropna())):
        if workload not in set(c_frame["workload"]) or workload not in set(b_frame["workload"]):
            continue  # a whole workload on one side only: the per-run checks say missing/new
        active, skipped = _active(b_frame, c_frame, workload)
        if not active:
            continue
        b_all, b_front = _eligible(b_frame, workload, active, b_runs)
        c_all, c_front = _eligible(c_frame, workload, active, c_runs)
        for p in b_front:
            verdict, note = judge(p, c_all, active, s, "regression")
            checks.append(Check(p.key, p.label, "front", "front", verdict, baseline="on the front", note=note))
        for p in c_front:
            verdict, note = judge(p, b_all, active, s, "improvement")
            if verdict == "improvement":
                checks.append(Check(p.key, p.label, "front", "front", verdict, candidate="on the front", note=note))
        section["workloads"][workload] = {
            "objectives": [
                {"label": o.label, "column": c, "sense": o.sense, "rule": _rule(c, s)[0]} for o, c in active
            ],
            "skipped": skipped,
            "baseline_front": [p.key for p in b_front],
            "candidate_front": [p.key for p in c_front],
        }
    return checks, section
