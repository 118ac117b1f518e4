"""How much of the grid's Pareto front a search finds with a third of the runs (hydra/sweeper=pareto).

    python benchmarks/search_hypervolume.py [--fast] [--axes ...] [--fraction 0.333] [--seeds 0,...,9]
        [--samplers tpe,gp,nsga2,random] [--live-seeds 0] [--live-sampler tpe] [--out F]

1. The grid: every configuration of --axes run once through the CLI into --cache/grid (default
   results/search-grid; a rerun re-reads complete results instead of measuring again, so the grid runs once).
2. REPLAY (a tabular benchmark, as HPOBench and YAHPO do): harness.search.study.run_search, the sweeper's own
   loop, once per sampler and seed with a budget of fraction × the grid's size; each trial looks up the grid's
   measured result of its configuration instead of measuring it again. It judges the sampler alone, free of the
   machine's noise (the same figures as the grid), and seeds cost nothing. Labelled `replay` in the output.
3. LIVE (--live-seeds): the real `python -m harness -m hydra/sweeper=pareto ...` with the same budget, each trial
   really run (fresh results in --cache/live-<sampler>-<seed>); its front is scored on its own measurements.
4. Hypervolume of a feasible front (status ok, quality verdict not `fail`) over the search's objectives: each
   objective turned into a minimisation and scaled to [0, 1] by the min and max of the grid's feasible runs;
   reference point 1.1 on every objective (a point at the grid's worst still adds volume), clipped there. The
   same rule, the same scaling and the same reference point for the grid and every search. The figure is
   HV(search) / HV(grid): 1.0 means the search found a front as good as the whole grid's. Goal: >= 0.95.
   A live search's points can beat the grid's own measurement of the same configuration (noise): its ratio can
   exceed 1 by that much.

The default space is 60 CPU configurations (model 2 × precision 3 × batch size 5 × seq_len 2).
"""

from __future__ import annotations

import argparse
import json
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


def _cli(space_: space.Space, fast: bool, cache: Path, sweep: str) -> list[str]:
    cmd = [sys.executable, "-m", "harness", "-m", *space_.fixed, *(f"{k}={','.join(v)}" for k, v in space_.axes)]
    return cmd + [*(FAST if fast else []), f"results_dir={cache}", f"sweep={sweep}"]


def _read(space_: space.Space, folder: Path) -> dict[tuple[str, ...], dict[str, Any]]:
    return {tuple(_value(r, k) for k, _ in space_.axes): r for _, r in results.iter_results(folder)}


def grid(space_: space.Space, cache: Path, fast: bool) -> dict[tuple[str, ...], dict[str, Any]]:
    """Every configuration's result, run once (the CLI re-reads complete ones)."""
    cmd = _cli(space_, fast, cache, "grid")
    print("grid:", " ".join(cmd[2:]), file=sys.stderr, flush=True)
    subprocess.run(cmd, check=True, stdout=sys.stderr)
    found = _read(space_, cache / "grid")
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


class Scorer:
    """The grid's front and scaling for one set of objectives (fixed by the grid: the same for every search)."""

    def __init__(self, cached: dict[tuple[str, ...], dict[str, Any]], active: list[objectives.Active], floor: float):
        self.active, self.floor = active, floor
        self.senses = [a.objective.sense for a in active]
        self.outcomes = [objectives.outcome(r, active, floor) for r in cached.values()]
        full = _points(self.outcomes, self.senses)
        self.lo, hi = full.min(axis=0), full.max(axis=0)
        self.span = np.where(hi > self.lo, hi - self.lo, 1.0)
        self.hv_grid = hypervolume(full, self.lo, self.span)
        self.front_size = int(_front_mask(full).sum())

    def greedy(self, k: int) -> float:
        """The ratio of the best k grid runs picked greedily by hypervolume gained: about the most any search of
        k runs could reach (greedy subset selection is within 1 − 1/e of the optimum, usually much closer)."""
        full = _points(self.outcomes, self.senses)
        full = full[_front_mask(full)]
        chosen: list[int] = []
        for _ in range(min(k, len(full))):
            gains = [
                (hypervolume(full[[*chosen, i]], self.lo, self.span), i) for i in range(len(full)) if i not in chosen
            ]
            chosen.append(max(gains)[1])
        return hypervolume(full[chosen], self.lo, self.span) / self.hv_grid

    def ratio(self, outcomes: list[objectives.Outcome]) -> tuple[float, float]:
        hv = hypervolume(_points(outcomes, self.senses), self.lo, self.span)
        return hv, hv / self.hv_grid


def _front_mask(points: np.ndarray) -> np.ndarray:
    from harness.report.pareto import pareto_mask

    return np.array(pareto_mask([tuple(p) for p in points], ["min"] * points.shape[1]), dtype=bool)


def replay(space_, cached, settings: dict[str, Any], floor: float) -> tuple[study.Search, list[objectives.Outcome]]:
    def lookup(batch: list[list[str]]) -> list[dict[str, Any]]:
        return [cached[tuple(line.split("=", 1)[1] for line in o[len(space_.fixed) :])] for o in batch]

    found = study.run_search(space_, lookup, settings, floor)
    return found, [t.outcome for t in found.trials if not t.duplicate]


def live(space_, args, budget: int, seed: int, active: list[objectives.Active]) -> tuple[dict, bool]:
    """A real search through the CLI; the outcomes of the runs it launched, read from their result files, and
    whether it ended (--live-no-run: the runs of a search still going or stopped, scored as they are)."""
    name = f"live-{args.live_sampler}-{seed}"
    cmd = _cli(space_, args.fast, args.cache, name) + [
        "hydra/sweeper=pareto",
        f"hydra.sweeper.n_trials={budget}",
        f"hydra.sweeper.seed={seed}",
        f"hydra.sweeper.sampler={args.live_sampler}",
    ]
    if not args.live_no_run:
        print("live:", " ".join(cmd[2:]), file=sys.stderr, flush=True)
        subprocess.run(cmd, check=True, stdout=sys.stderr)
    runs = _read(space_, args.cache / name)
    record = args.cache / name / "search.json"  # written when the search ends; before that, every result so far
    if record.is_file():
        trials = json.loads(record.read_text())["trials"]
        launched = {tuple(t["params"][k] for k, _ in space_.axes) for t in trials if not t["duplicate"]}
        runs = {key: r for key, r in runs.items() if key in launched}
    return {key: objectives.outcome(r, active, args.floor) for key, r in runs.items()}, record.is_file()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--axes", nargs="+", default=AXES, help="sweep overrides (the space)")
    ap.add_argument("--fast", action="store_true", help="the test suite's short runs (tests/conftest.py FAST)")
    ap.add_argument("--cache", type=Path, default=Path("results/search-grid"))
    ap.add_argument("--fraction", type=float, default=1 / 3, help="the search's runs as a share of the grid's")
    ap.add_argument("--seeds", default="0,1,2,3,4,5,6,7,8,9", help="replay seeds")
    ap.add_argument("--samplers", default="tpe,gp,nsga2,random", help="replayed samplers (hydra.sweeper.sampler)")
    ap.add_argument("--ordinal", default="true", help="hydra.sweeper.ordinal for the replays: true, false or both")
    ap.add_argument("--live-seeds", default="", help="seeds of live searches (really run), e.g. 0")
    ap.add_argument("--live-sampler", default="tpe")
    ap.add_argument("--live-no-run", action="store_true", help="score the live searches' results so far, run none")
    ap.add_argument("--floor", type=float, default=0.99)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    space_ = space.from_overrides(args.axes)
    cached = grid(space_, args.cache, args.fast)
    budget = max(1, int(space_.size * args.fraction))
    seeds = [int(s) for s in args.seeds.split(",") if s]
    ordinals = {"true": [True], "false": [False], "both": [True, False]}[args.ordinal]
    scorer: Scorer | None = None
    replays = []
    for sampler in args.samplers.split(","):
        for ordinal in ordinals:
            per_seed = []
            for seed in seeds:
                settings = {"n_trials": budget, "sampler": sampler, "seed": seed, "n_jobs": 1, "ordinal": ordinal}
                found, outs = replay(space_, cached, settings, args.floor)
                scorer = scorer or Scorer(cached, found.active, args.floor)
                hv, ratio = scorer.ratio(outs)
                per_seed.append({"seed": seed, "runs": found.launched, "hv_search": hv, "ratio": round(ratio, 4)})
            ratios = [r["ratio"] for r in per_seed]
            replays.append(
                {
                    "mode": "replay",
                    "sampler": sampler,
                    "ordinal": ordinal,
                    "per_seed": per_seed,
                    "ratio_median": float(np.median(ratios)),
                    "ratio_min": float(np.min(ratios)),
                    "ratio_max": float(np.max(ratios)),
                }
            )
            print(
                f"replay {sampler} ordinal={ordinal}: median {np.median(ratios):.3f} "
                f"[{' '.join(f'{r:.2f}' for r in ratios)}]",
                file=sys.stderr,
                flush=True,
            )
    lives = []
    for seed in [int(s) for s in args.live_seeds.split(",") if s]:
        assert scorer is not None
        found, ended = live(space_, args, budget, seed, scorer.active)
        hv, ratio = scorer.ratio(list(found.values()))
        # the same configurations scored on the grid's measurements of them: the live search's choices, apart
        # from how differently loaded the machine was while it ran (throughput and latency move with load)
        _, on_grid = scorer.ratio([objectives.outcome(cached[k], scorer.active, args.floor) for k in found])
        lives.append(
            {
                "mode": "live",
                "sampler": args.live_sampler,
                "seed": seed,
                "runs": len(found),
                "ended": ended,
                "ratio": ratio,
                "ratio_of_its_configurations_on_the_grid": on_grid,
            }
        )
    assert scorer is not None
    summary = {
        "space": args.axes,
        "fast": args.fast,
        "grid_runs": space_.size,
        "grid_feasible": int(sum(objectives.outcome(r, scorer.active, args.floor).feasible for r in cached.values())),
        "grid_front_size": scorer.front_size,
        "greedy_best_of_budget": scorer.greedy(budget),
        "budget": budget,
        "objectives": [f"{a.column}:{a.objective.sense}" for a in scorer.active],
        "reference_point": REFERENCE,
        "hv_grid": scorer.hv_grid,
        "replay": replays,
        "live": lives,
        "goal": 0.95,
    }
    return emit(summary, args.out)


if __name__ == "__main__":
    sys.exit(main())
