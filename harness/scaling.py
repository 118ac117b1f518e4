"""Scaling efficiency across device counts: throughput at N / (N x throughput at 1), same configuration.

The one implementation behind the terminal line and results/<sweep>/scaling.json (harness.callbacks)
and the report's scaling plot (harness.report.plots). A configuration is every key field but `gpus`
(seed included: each seed is its own line); the throughput is the scenario's whole-run rate from the
metric registry (harness.metrics.SCALING_THROUGHPUT); only configurations that also ran ok at gpus=1
have a figure.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from harness.metrics import SCALING_THROUGHPUT

THROUGHPUT = SCALING_THROUGHPUT  # kept for readers of the old name


@dataclass(frozen=True)
class Point:
    config: str  # the key fields but gpus, as `k=v` pairs
    gpus: int
    metric: str
    value: float
    cpu_ranks: bool  # CPU ranks simulating devices (harness.distributed.CPU_LABEL)


def point(fields: Mapping[str, Any], status: Any, metrics: Mapping[str, Any], cpu_ranks: bool) -> Point | None:
    """The throughput point of one run, or None when it did not finish ok or has no throughput."""
    metric = SCALING_THROUGHPUT.get(fields.get("workload"))
    value = metrics.get(metric) if metric else None
    if status != "ok" or value is None or value != value:  # NaN: a frame cell without a figure
        return None
    config = " ".join(f"{k}={v}" for k, v in fields.items() if k != "gpus")
    return Point(config, int(fields["gpus"]), metric, float(value), cpu_ranks)


def table(points: Iterable[Point]) -> list[dict[str, Any]]:
    """Every (config, N) whose config also has gpus=1, the gpus=1 row (efficiency 1) included."""
    groups: dict[str, dict[int, Point]] = {}
    for p in points:
        groups.setdefault(p.config, {})[p.gpus] = p
    rows = []
    for config, by_n in sorted(groups.items()):
        if 1 not in by_n:
            continue
        one = by_n[1]
        for n, at_n in sorted(by_n.items()):
            rows.append(
                {
                    "config": config,
                    "gpus": n,
                    "metric": one.metric,
                    "throughput_1": one.value,
                    "throughput_n": at_n.value,
                    "efficiency": at_n.value / (n * one.value),
                    "cpu_ranks": at_n.cpu_ranks,
                }
            )
    return rows


def efficiency(records: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One row per (config, N>1) where the same config also ran ok at gpus=1 (scaling.json's rows)."""
    points = [
        point(r["key_fields"], r.get("status"), r.get("metrics") or {}, bool((r.get("distributed") or {}).get("label")))
        for r in records
    ]
    return [row for row in table(p for p in points if p is not None) if row["gpus"] != 1]
