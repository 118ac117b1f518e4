"""Scaling efficiency across device counts: throughput at N / (N x throughput at 1), same config.

Written at the end of a multirun to results/<sweep>/scaling.json, where reports read it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

THROUGHPUT = {"training": "train_tok_per_s", "inference": "e2e_tok_per_s"}


def efficiency(records: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (config, N>1) where the same config also ran ok at gpus=1."""
    groups: dict[str, dict[int, dict[str, Any]]] = {}
    for r in records:
        if r.get("status") != "ok":
            continue
        f = r["key_fields"]
        metric = THROUGHPUT.get(f["workload"])
        value = (r.get("metrics") or {}).get(metric)
        if value is None:
            continue
        base = " ".join(f"{k}={v}" for k, v in f.items() if k != "gpus")
        groups.setdefault(base, {})[f["gpus"]] = {"value": value, "metric": metric, "cpu_ranks": _cpu_ranks(r)}
    rows = []
    for base, by_n in sorted(groups.items()):
        if 1 not in by_n:
            continue
        one = by_n[1]
        for n, at_n in sorted(by_n.items()):
            if n == 1:
                continue
            rows.append(
                {
                    "config": base,
                    "gpus": n,
                    "metric": one["metric"],
                    "throughput_1": one["value"],
                    "throughput_n": at_n["value"],
                    "efficiency": at_n["value"] / (n * one["value"]),
                    "cpu_ranks": at_n["cpu_ranks"],
                }
            )
    return rows


def _cpu_ranks(r: dict[str, Any]) -> bool:
    return bool((r.get("distributed") or {}).get("label"))
