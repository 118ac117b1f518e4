"""repeats=auto vs a fixed count, measured (not a test: run it with `nox -s adaptive_repeats`).

A 12-run sweep (tiny, random weights, batch_size x precision x seq_len) is run three ways through the real
CLI, each sweep's wall time taken from outside:
1. `repeats=auto` at ±target (default 2 %): each run stops when its decode tok/s median is pinned down.
2. a discovery sweep with a fixed count as high as auto ever went: for each prefix k of its repeats, the
   median over runs of the interval half-width (harness.adaptive.half_width, the rule's own statistic)
   gives the smallest fixed k whose median half-width is as narrow as auto's.
3. a sweep with that fixed k, timed: what a fixed count costs to reach the same spread.
The summary has each sweep's wall time, repeats per run, median half-width and how many runs reached the
target. On a shared machine the figures move with the load: label them so.

Beside the sweeps, the machine's own floor: a bare prefill+decode loop (benchmarks/overhead.py's, no harness
code in it) on the tiny model in this process, `--repeats-max` windows of `--min-time-s` each, measured before
each sweep. Its half-width over k windows (the rule's statistic) is the spread this machine gives a loop with
nothing of the harness in it: where it stays above the target, no count of repeats reaches the target, and
`max repeats` is the right answer, not a fault of the rule.

Prints a JSON summary; `--out FILE` also writes it.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

import fixed_cost
from _output import emit  # benchmarks/_output.py (scripts run as python benchmarks/<name>.py)
from overhead import TINY, bare_tok_per_s

from harness import adaptive

GRID = ["batch_size=1,2,4", "precision=fp32,bf16", "seq_len=16,32"]  # 12 runs


def sweep(root: Path, name: str, extra: list[str], common: list[str]) -> tuple[float, list[dict]]:
    """Run one multirun sweep of GRID, forked (the default launcher); (its wall time in s, its 12 results)."""
    wall_s, records = fixed_cost.sweep(root, name, "preload", [*GRID, *common, *extra])
    if len(records) != 12:
        raise SystemExit(f"sweep {name}: {len(records)} results, not 12")
    return wall_s, records


def figures(records: list[dict], k: int | None = None) -> list[float | None]:
    """Each run's half-width over its first k repeats (all of them when k is None)."""
    return [adaptive.half_width([x["decode_tok_per_s"] for x in r["repeats"][:k]]) for r in records]


def describe(wall_s: float, records: list[dict], target: float, k: int | None = None) -> dict:
    widths = figures(records, k)
    counts = [len(r["repeats"][:k]) for r in records]
    return {
        "wall_s": round(wall_s, 1),
        "repeats_total": sum(counts),
        "repeats_per_run": counts,
        "median_half_width": statistics.median(w for w in widths if w is not None),
        "runs_within_target": sum(1 for w in widths if w is not None and w <= target),
    }


def machine_floor(windows: int, seconds: float, threads: int) -> dict:
    """The bare loop's tok/s over `windows` windows of `seconds`: the rule's half-width over its first k
    windows, and the windows' spread. Torch's thread count is set as the sweeps' `threads`."""
    import torch

    from harness import data, models

    torch.set_num_threads(threads)
    model = models.build(TINY, torch.float32, "cpu", seed=0)
    ids = data.prompt_ids(1, 16, seed=0)
    bare_tok_per_s(model, ids, 32, 1.0)  # warm-up
    tps = [bare_tok_per_s(model, ids, 32, seconds) for _ in range(windows)]
    widths = {str(k): adaptive.half_width(tps[:k]) for k in (adaptive.MIN_REPEATS, windows // 2, windows)}
    return {
        "config": f"tiny fp32 batch 1 seq_len 16, 32 decode tokens, threads {threads}, {seconds} s windows",
        "half_width_by_windows": widths,
        "max_over_min": round(max(tps) / min(tps), 3),
        "tok_per_s_median": round(statistics.median(tps), 1),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--target", type=float, default=0.02, help="repeats_target of the auto sweep")
    ap.add_argument("--min-time-s", type=float, default=0.2, help="workload.min_time_s of every repeat")
    ap.add_argument("--repeats-max", type=int, default=30)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path)
    a = ap.parse_args()
    common = [
        "model.weights=random",
        "quality.enabled=false",  # the same for every sweep; the benchmark is about the timed window
        f"workload.min_time_s={a.min_time_s}",
        f"threads={a.threads}",
    ]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        auto_args = ["repeats=auto", f"repeats_target={a.target}", f"repeats_max={a.repeats_max}"]
        floors = [machine_floor(a.repeats_max, a.min_time_s, a.threads)]
        auto_s, auto = sweep(root, "auto", auto_args, common)
        auto_summary = describe(auto_s, auto, a.target)
        reasons = [r["adaptive_repeats"]["reason"] for r in auto]
        deepest = max(len(r["repeats"]) for r in auto)
        floors.append(machine_floor(a.repeats_max, a.min_time_s, a.threads))
        _, discovery = sweep(root, "discovery", [f"repeats={deepest}"], common)
        by_k = {
            k: statistics.median(w for w in figures(discovery, k) if w is not None)
            for k in range(adaptive.MIN_REPEATS, deepest + 1)
        }
        k = next((k for k, w in by_k.items() if w <= auto_summary["median_half_width"]), deepest)
        floors.append(machine_floor(a.repeats_max, a.min_time_s, a.threads))
        fixed_s, fixed = sweep(root, "fixed", [f"repeats={k}"], common)
    summary = {
        "note": "12-run sweep, tiny, random weights, " + " ".join(GRID) + "; figures taken on this machine as it was",
        "target": a.target,
        "auto": auto_summary | {"stop_reasons": {r: reasons.count(r) for r in sorted(set(reasons))}},
        "discovery": {"repeats": deepest, "median_half_width_by_repeats": {str(k): w for k, w in by_k.items()}},
        "fixed": describe(fixed_s, fixed, a.target) | {"repeats": k},
        "auto_over_fixed_wall": round(auto_s / fixed_s, 3),
        "machine_floor_before_each_sweep": floors,
    }
    return emit(summary, a.out)


if __name__ == "__main__":
    sys.exit(main())
