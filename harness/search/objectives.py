"""A result as the search sees it: feasible or not, and its objective values, read exactly as the report
reads them (harness.report.aggregate rows, the quality verdict of harness.report.quality_section)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from harness.report import aggregate, quality_section
from harness.report.pareto import DEFAULT_OBJECTIVES, Objective


@dataclass(frozen=True)
class Active:
    """One objective of the study: the registry's objective and the column that holds its value."""

    objective: Objective
    column: str

    @property
    def direction(self) -> str:
        return "minimize" if self.objective.sense == "min" else "maximize"


@dataclass(frozen=True)
class Outcome:
    """What one run tells the sampler. `values` is None for a run with no figures (failed, oom, predicted-oom,
    unsupported, timeout, error): Optuna's TrialState.FAIL, never a value. A measured run whose quality verdict
    is `fail` keeps its values and is infeasible (Optuna's constraint > 0)."""

    status: str
    values: tuple[float, ...] | None
    quality_ok: bool
    why: str = ""

    @property
    def feasible(self) -> bool:
        return self.values is not None and self.quality_ok


def registry_objectives(workload: str, chosen: Sequence[str] | None = None) -> tuple[Objective, ...]:
    """The workload's objectives from the metric registry, or those of them `chosen` names (label or column)."""
    objs = DEFAULT_OBJECTIVES.get(workload, ())
    if not objs:
        raise ValueError(f"workload={workload} has no objectives in harness.metrics.OBJECTIVES: nothing to search on")
    if not chosen:
        return objs
    picked = []
    for name in chosen:
        match = [o for o in objs if name == o.label or name in o.columns]
        if not match:
            known = "; ".join(f"{o.label} ({', '.join(o.columns)})" for o in objs)
            raise ValueError(f"hydra.sweeper.objectives={name} is not valid: not an objective of {workload}: {known}")
        picked.append(match[0])
    return tuple(dict.fromkeys(picked))


def row(result: Mapping[str, Any], floor: float) -> pd.Series:
    """The result as one annotated report row (`quality_ok`, `heldout_loss_nats`, every column)."""
    frame = pd.DataFrame([aggregate.flatten_result(result, sweep="")])
    return quality_section.annotate(frame, floor).iloc[0]


def _number(r: pd.Series, column: str) -> float | None:
    v = pd.to_numeric(pd.Series([r.get(column)]), errors="coerce").iloc[0]
    return None if v is None or math.isnan(v) or math.isinf(v) else float(v)


def activate(objectives: Sequence[Objective], r: pd.Series) -> list[Active]:
    """The objectives this ok run has a value for (first column with data), as report.pareto.resolve does."""
    active = []
    for obj in objectives:
        column = next((c for c in obj.columns if _number(r, c) is not None), None)
        if column is not None:
            active.append(Active(obj, column))
    return active


def outcome(result: Mapping[str, Any], active: Sequence[Active], floor: float) -> Outcome:
    """The run's status, its objective values (None unless `ok` with every active value) and quality."""
    status = str(result.get("status"))
    if status != "ok":
        return Outcome(status, None, True, (result.get("reason") or status).splitlines()[0][:160])
    r = row(result, floor)
    values = tuple(_number(r, a.column) for a in active)
    if any(v is None for v in values):
        missing = [a.column for a, v in zip(active, values, strict=True) if v is None]
        return Outcome(status, None, bool(r["quality_ok"]), f"no value for {', '.join(missing)}")
    return Outcome(status, values, bool(r["quality_ok"]))
