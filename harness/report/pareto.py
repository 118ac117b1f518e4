"""Pareto fronts: the non-dominated runs over N objectives, each minimized or maximized.

A run dominates another when it is at least as good on every objective and strictly better on one.
Equal points do not dominate each other, so ties stay on the front together. A run with a missing
value (NaN: failed, or not measured) on an active objective is never on the front.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from harness import metrics

SENSES = ("min", "max")


@dataclass(frozen=True)
class Objective:
    """One axis of the front: the first of `columns` that has data is used."""

    label: str
    columns: tuple[str, ...]
    sense: str
    unit: str = ""

    def __post_init__(self) -> None:
        if self.sense not in SENSES:
            raise ValueError(f"objective {self.label}: sense={self.sense!r} is not valid: choose one of min, max")


# Defaults per scenario, from the metric registry (harness.metrics.OBJECTIVES), as columns of the
# aggregated frame (docs/results.md). Override with `python -m harness report --objective COL:min|max`.
DEFAULT_OBJECTIVES: dict[str, tuple[Objective, ...]] = {
    scenario: tuple(Objective(label, columns, sense, unit) for label, columns, sense, unit in specs)
    for scenario, specs in metrics.OBJECTIVES.items()
}


def parse_objective(spec: str) -> Objective:
    """`COLUMN:min` or `COLUMN:max` (e.g. `decode_tok_per_s:max`) → an Objective."""
    column, sep, sense = spec.rpartition(":")
    if not sep or not column:
        raise ValueError(f"--objective {spec} is not valid: write COLUMN:min or COLUMN:max")
    if sense not in SENSES:
        raise ValueError(f"--objective {spec} is not valid: the sense must be min or max, not {sense!r}")
    return Objective(column, (column,), sense, _unit_of(column))


def _unit_of(column: str) -> str:
    for suffix, unit in (("_tok_per_s", "tokens/s"), ("_bytes", "bytes"), ("_usd", "USD"), ("_j", "J")):
        if column.endswith(suffix):
            return unit
    if column.startswith("cost_usd"):
        return "USD"
    if column.endswith("_s") or "_s_p" in column:
        return "s"
    return ""


def pareto_mask(values: np.ndarray, senses: Sequence[str]) -> np.ndarray:
    """Boolean mask of the non-dominated rows of `values` (n runs × k objectives); NaN rows are False."""
    values = np.asarray(values, dtype=float)
    if values.ndim != 2 or values.shape[1] != len(senses):
        raise ValueError(f"values of shape {values.shape} do not match {len(senses)} objectives")
    sign = np.array([1.0 if s == "min" else -1.0 for s in senses])
    cost = values * sign  # every objective minimized
    valid = ~np.isnan(cost).any(axis=1)
    mask = np.zeros(len(cost), dtype=bool)
    pts = cost[valid]
    if len(pts):
        # dominated[i] when some j is <= on every objective and < on at least one
        le = (pts[None, :, :] <= pts[:, None, :]).all(axis=2)
        lt = (pts[None, :, :] < pts[:, None, :]).any(axis=2)
        mask[np.flatnonzero(valid)] = ~(le & lt).any(axis=1)
    return mask


def knee_index(values: np.ndarray, senses: Sequence[str]) -> int | None:
    """The front point closest to the ideal point after scaling each objective to [0, 1] over the front
    (a common knee definition: the best compromise); ties go to the first. None for an empty set."""
    values = np.asarray(values, dtype=float)
    if len(values) == 0:
        return None
    sign = np.array([1.0 if s == "min" else -1.0 for s in senses])
    cost = values * sign
    lo, hi = cost.min(axis=0), cost.max(axis=0)
    span = np.where(hi > lo, hi - lo, 1.0)
    dist = np.sqrt((((cost - lo) / span) ** 2).sum(axis=1))
    return int(np.argmin(dist))


@dataclass
class Front:
    """The front of one group of runs (one workload × model)."""

    active: list[tuple[Objective, str]]  # (objective, the column used)
    skipped: list[tuple[Objective, str]]  # (objective, why)
    on_front: pd.Series  # bool per row of the group
    eligible: pd.Series  # ok, quality not below the floor, every active objective present
    knee: object | None = None  # the frame index of the knee
    best: dict[str, object] = field(default_factory=dict)  # objective label → frame index of the best run


def resolve(frame: pd.DataFrame, objectives: Sequence[Objective]) -> tuple[list, list]:
    """Which objectives have data among the ok runs of `frame`: (active, skipped-with-reason)."""
    ok = frame[frame["status"] == "ok"] if "status" in frame else frame
    active, skipped = [], []
    for obj in objectives:
        column = next((c for c in obj.columns if c in ok and pd.to_numeric(ok[c], errors="coerce").notna().any()), None)
        if column is not None:
            active.append((obj, column))
        else:
            what = "cost not measured" if any(c.startswith("cost_") for c in obj.columns) else "not measured"
            skipped.append((obj, f"no ok run has a value in {' / '.join(obj.columns)} ({what}); skipped, not invented"))
    return active, skipped


def front(frame: pd.DataFrame, objectives: Sequence[Objective], quality_ok: pd.Series | None = None) -> Front:
    """Non-dominated runs of `frame` among the eligible ones; quality_ok False keeps a run off the front."""
    active, skipped = resolve(frame, objectives)
    eligible = frame["status"].eq("ok") if "status" in frame else pd.Series(True, index=frame.index)
    if quality_ok is not None:
        eligible &= quality_ok.reindex(frame.index).fillna(True).astype(bool)
    on = pd.Series(False, index=frame.index)
    result = Front(active, skipped, on, eligible)
    if not active:
        return result
    values = np.column_stack([pd.to_numeric(frame[c], errors="coerce").to_numpy(dtype=float) for _, c in active])
    values[~eligible.to_numpy()] = np.nan
    senses = [o.sense for o, _ in active]
    mask = pareto_mask(values, senses)
    result.on_front = pd.Series(mask, index=frame.index)
    result.eligible = eligible & ~np.isnan(values).any(axis=1)
    if mask.any():
        idx = frame.index[mask]
        result.knee = idx[knee_index(values[mask], senses)]
    for (obj, _), col in zip(active, values.T, strict=True):
        if np.isnan(col).all():
            continue
        best = np.nanmin(col) if obj.sense == "min" else np.nanmax(col)
        tied = np.flatnonzero(col == best)
        on_front = [i for i in tied if mask[i]]  # among equal bests, one that no other run dominates
        result.best[obj.label] = frame.index[on_front[0] if on_front else tied[0]]
    return result
