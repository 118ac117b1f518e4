"""How much of the grid's Pareto front a search finds with a third of the runs (hydra/sweeper=pareto).

    python benchmarks/search_hypervolume.py [--fast] [--axes ...] [--fraction 0.333] [--seeds 0,1,2] [--out F]

1. The grid: every configuration of --axes run once through the CLI into --cache/grid (default
   results/search-grid; a rerun re-reads complete results instead of measuring again, so the grid runs once).
2. The searches: harness.search.study.run_search, the sweeper's own loop, once per seed with a budget of
   fraction × the grid's size; each trial reads the grid's measured result of its configuration instead of
   measuring it again (same figures as the grid, seeds cost nothing).
3. Hypervolume of the feasible front (status ok, quality verdict not `fail`) over the search's objectives:
   each objective turned into a minimisation and scaled to [0, 1] by the min and max of the grid's feasible
   runs; reference point 1.1 on every objective (a point at the grid's worst still adds volume). The figure
   is HV(search) / HV(grid): 1.0 means the search found a front as good as the whole grid's. Goal: >= 0.95.

The default space is 60 CPU configurations (model 2 × precision 3 × batch size 5 × seq_len 2).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from _output import emit  # benchmarks/_output.py (scripts run as python benchmarks/<name>.py)

from harness import results
from harness.search import objectives, space, study

AXES = ["model=tiny,small", "precision=fp32,bf16,int8", "batch_size=1,2,4,8,16", "seq_len=64,128"]
FAST = [
    "workload.decode_tokens=4",
    "workload.warmup_iters=1",
    "workload.min_iters=2",
    "workload.min_time_s=0.05",
    "repeats=2",
    "quality.eval_tokens=1024",
]
REFERENCE = 1.1  # the reference point on every normalised objective


def _value(result: Mapping[str, Any], key: str) -> str:
    kf = result.get("key_fields") or {}
    if key in kf:
        return str(kf[key])
    node: Any = result.get("config") or {}
    for part in key.split("."):
        node = node.get(part) if isinstance(node, Mapping) else None
    return str(node.get("name") if isinstance(node, Mapping) else node)


def grid(space_: space.Space, cache: Path, fast: bool) -> dict[tuple[str, ...], dict[str, Any]]:
    """Every configuration's result, run once (the CLI re-reads complete ones)."""
    cmd = [sys.executable, "-m", "harness", "-m", *space_.fixed, *(f"{k}={','.join(v)}" for k, v in space_.axes)]
    cmd += [*(FAST if fast else []), f"results_dir={cache}", "sweep=grid"]
    print("grid:", " ".join(cmd[2:]), file=sys.stderr, flush=True)
    subprocess.run(cmd, check=True, stdout=sys.stderr)
    found = {}
    for _, r in results.iter_results(cache / "grid"):
        found[tuple(_value(r, k) for k, _ in space_.axes)] = r
    missing = [p for p in space_.all_params() if space_.key(p) not in found]
    if missing:
        raise SystemExit(f"the grid has no result for {missing[:3]} ({len(missing)} in all): matched by key fields")
    return found


def hypervolume(points: np.ndarray, lo: np.ndarray, span: np.ndarray) -> float:
    """Hypervolume of minimisation `points` scaled by the grid's (lo, span), against REFERENCE."""
    from optuna._hypervolume import compute_hypervolume  # Optuna's exact WFG (a private module)

    if len(points) == 0:
        return 0.0
    scaled = np.minimum((points - lo) / span, REFERENCE)
    return float(compute_hypervolume(scaled, np.full(points.shape[1], REFERENCE)))


def _points(outcomes: list[objectives.Outcome], senses: list[str]) -> np.ndarray:
    sign = np.array([1.0 if s == "min" else -1.0 for s in senses])
    vals = [o.values for o in outcomes if o.feasible]
    return np.array(vals, dtype=float).reshape(-1, len(senses)) * sign


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--axes", nargs="+", default=AXES, help="sweep overrides (the space)")
    ap.add_argument("--fast", action="store_true", help="the test suite's short runs (tests/conftest.py FAST)")
    ap.add_argument("--cache", type=Path, default=Path("results/search-grid"))
    ap.add_argument("--fraction", type=float, default=1 / 3, help="the search's runs as a share of the grid's")
    ap.add_argument("--seeds", default="0,1,2,3,4")
    ap.add_argument("--sampler", default="tpe", choices=("tpe", "nsga2", "random"))
    ap.add_argument("--floor", type=float, default=0.99)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    space_ = space.from_overrides(args.axes)
    cached = grid(space_, args.cache, args.fast)
    budget = max(1, int(space_.size * args.fraction))

    def lookup(batch: list[list[str]]) -> list[dict[str, Any]]:
        return [cached[tuple(line.split("=", 1)[1] for line in o[len(space_.fixed) :])] for o in batch]

    runs = []
    for seed in [int(s) for s in args.seeds.split(",")]:
        settings = {"n_trials": budget, "sampler": args.sampler, "seed": seed, "n_jobs": 1}
        found = study.run_search(space_, lookup, settings, args.floor)
        senses = [a.objective.sense for a in found.active]
        every = [objectives.outcome(r, found.active, args.floor) for r in cached.values()]
        full = _points(every, senses)
        lo, hi = full.min(axis=0), full.max(axis=0)
        span = np.where(hi > lo, hi - lo, 1.0)
        mine = _points([t.outcome for t in found.trials if not t.duplicate], senses)
        hv_grid, hv_search = hypervolume(full, lo, span), hypervolume(mine, lo, span)
        runs.append(
            {
                "seed": seed,
                "runs": found.launched,
                "objectives": [f"{a.column}:{a.objective.sense}" for a in found.active],
                "hv_grid": hv_grid,
                "hv_search": hv_search,
                "ratio": hv_search / hv_grid if hv_grid else None,
            }
        )
    ratios = [r["ratio"] for r in runs if r["ratio"] is not None]
    summary = {
        "space": args.axes,
        "fast": args.fast,
        "grid_runs": space_.size,
        "budget": budget,
        "sampler": args.sampler,
        "reference_point": REFERENCE,
        "per_seed": runs,
        "ratio_mean": float(np.mean(ratios)) if ratios else None,
        "ratio_min": float(np.min(ratios)) if ratios else None,
        "goal": 0.95,
    }
    return emit(summary, args.out)


if __name__ == "__main__":
    sys.exit(main())
