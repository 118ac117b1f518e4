"""Per-run fixed cost, preload (runs forked from the fork server) vs spawn (a fresh interpreter per run), and
whether the figures the runs measure agree between the two (not a test: `nox -s fixed_cost`).

Sweeps of the same configurations (tiny, trained weights, batch_size=1,2,4,8 by default) alternate between
`launcher.preload=true` and `launcher.preload=false`, round by round, each sweep in a folder of its own, with
real `python -m harness -m ...` commands. Reported:

(a) timing.fixed_cost_s (the launcher's request to ready to measure) per mode: median over every run, the
    first run of each sweep (for preload it waits for the server's imports), and the later runs. Target: the
    later runs' median <= 0.25 s preloaded. Beside it, each sweep's wall time.
(b) per configuration, preload vs spawn: decode tok/s (each run's repeats as samples, the gate's bootstrap
    ratio with a 95 % interval over processes, then repeats), peak_rss_bytes (one sample per run), held-out
    loss (deterministic: the same weights on the same text). "Agree within noise": the interval holds 1.0.
    The yardstick beside each: the same ratio between a mode's own sweeps (even rounds over odd rounds, spawn
    and preload each: an A/A comparison), i.e. how far two sets of runs of one mode differ on this machine.

Prints a JSON summary; `--out FILE` also writes it. The load average at start and end is in it: figures
taken while the machine was loaded are that, not benchmark results.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _output import emit  # benchmarks/_output.py (scripts run as python benchmarks/<name>.py)

from harness.gate import stats

MODES = {"preload": "launcher.preload=true", "spawn": "launcher.preload=false"}
RUN = ["repeats=3", "workload.min_time_s=0.5", "quality.eval_tokens=1024", "seq_len=64", "workload.decode_tokens=16"]


def sweep(root: Path, name: str, mode: str, overrides: list[str]) -> tuple[float, list[dict]]:
    """One multirun in `mode` with `overrides`; (its wall time in s, its results in launch order). Every run
    must be ok and started in that mode (benchmarks/sweep_wall.py and adaptive_repeats.py use it too)."""
    cmd = [sys.executable, "-m", "harness", "-m", f"results_dir={root}", f"sweep={name}", MODES[mode], *overrides]
    started = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=root)  # its reports/<sweep> go under root too
    wall_s = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"sweep {name} failed ({proc.returncode}): {proc.stderr.strip()[-2000:]}")
    records = [json.loads(p.read_text()) for p in sorted((root / name).rglob("result.json"))]
    for r in records:
        if r["status"] != "ok" or r["launcher"]["mode"] != mode:
            raise SystemExit(f"{name}: {r['status']} {r['launcher']['mode']} {r['reason']}")
    return wall_s, sorted(records, key=lambda r: r["timing"]["spawned_at"])


def _fixed_costs(sweeps: list[list[dict]]) -> dict:
    first = [s[0]["timing"]["fixed_cost_s"] for s in sweeps]
    later = [r["timing"]["fixed_cost_s"] for s in sweeps for r in s[1:]]
    every = first + later
    return {
        "runs": len(every),
        "fixed_cost_s_median": statistics.median(every),
        "first_run_of_sweep_fixed_cost_s_median": statistics.median(first),
        "later_runs_fixed_cost_s_median": statistics.median(later) if later else None,
        "startup_s_median": statistics.median(r["timing"]["startup_s"] for s in sweeps for r in s),
        "model_build_s_median": statistics.median(r["timing"]["model_build_s"] for s in sweeps for r in s),
    }


def _ratio(base: list[list[float]], other: list[list[float]], name: str = "preload_over_spawn") -> dict:
    est = stats.bootstrap_ratio(base, other, resamples=4000, rng=np.random.default_rng(0))
    return {name: est.ratio, "ci95": [est.low, est.high], "agree": est.low <= 1.0 <= est.high}


def _aa(groups: list[list[float]], rounds: list[int]) -> dict | None:
    """A mode against itself: its even rounds' runs over its odd rounds' (None with fewer than 2 rounds)."""
    even = [g for g, r in zip(groups, rounds, strict=True) if r % 2 == 0]
    odd = [g for g, r in zip(groups, rounds, strict=True) if r % 2 == 1]
    return _ratio(odd, even, "even_over_odd") if even and odd else None


def compare(by_mode: dict[str, list[list[dict]]]) -> list[dict]:
    """Per batch size: decode tok/s, peak RSS and held-out loss, preload vs spawn (and each mode's A/A)."""
    rows = []
    sizes = sorted({r["config"]["batch_size"] for s in by_mode["spawn"] for r in s})
    for bs in sizes:
        runs = {m: [r for s in sweeps for r in s if r["config"]["batch_size"] == bs] for m, sweeps in by_mode.items()}
        rounds = {
            m: [i for i, s in enumerate(sweeps) for r in s if r["config"]["batch_size"] == bs]
            for m, sweeps in by_mode.items()
        }
        decode = {m: [[rep["decode_tok_per_s"] for rep in r["repeats"]] for r in rs] for m, rs in runs.items()}
        rss = {m: [[r["metrics"]["peak_rss_bytes"]] for r in rs] for m, rs in runs.items()}
        loss = {m: sorted({r["quality"]["loss_nats"] for r in rs}) for m, rs in runs.items()}
        rows.append(
            {
                "batch_size": bs,
                "decode_tok_per_s_median": {m: statistics.median(x for g in v for x in g) for m, v in decode.items()},
                "decode_tok_per_s": _ratio(decode["spawn"], decode["preload"]),
                "decode_tok_per_s_aa": {m: _aa(decode[m], rounds[m]) for m in MODES},
                "peak_rss_bytes_median": {m: statistics.median(g[0] for g in v) for m, v in rss.items()},
                "peak_rss_mb_each": {m: [round(g[0] / 1e6, 1) for g in v] for m, v in rss.items()},  # round by round
                "peak_rss_bytes": _ratio(rss["spawn"], rss["preload"]),
                "peak_rss_bytes_aa": {m: _aa(rss[m], rounds[m]) for m in MODES},
                "held_out_loss_nats": loss,
                "held_out_loss_equal": loss["preload"] == loss["spawn"],
            }
        )
    return rows


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=3, help="sweeps per mode, alternated")
    p.add_argument("--batch-sizes", default="1,2,4,8", help="the sweep's configurations (batch_size values)")
    p.add_argument("--out", type=Path)
    a = p.parse_args()
    summary: dict = {"load_average_start": os.getloadavg(), "run_settings": RUN, "batch_sizes": a.batch_sizes}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        sweep(root, "warmup", "spawn", [*RUN, "batch_size=1"])  # trains the tiny checkpoint (cached), unmeasured
        by_mode: dict[str, list[list[dict]]] = {m: [] for m in MODES}
        walls: dict[str, list[float]] = {m: [] for m in MODES}
        for i in range(a.rounds):
            for mode in MODES if i % 2 == 0 else reversed(MODES):
                wall_s, records = sweep(root, f"{mode}{i}", mode, [*RUN, f"batch_size={a.batch_sizes}"])
                by_mode[mode].append(records)
                walls[mode].append(wall_s)
    summary["fixed_cost"] = {m: _fixed_costs(s) for m, s in by_mode.items()}
    summary["fixed_cost"]["target_s"] = 0.25
    # the target is per run; the first run of a sweep also waits for the server's imports, once per sweep
    later = summary["fixed_cost"]["preload"]["later_runs_fixed_cost_s_median"]
    summary["fixed_cost"]["preload_later_runs_meet_target"] = None if later is None else later <= 0.25  # 1 config
    summary["sweep_wall_s"] = {m: {"each": w, "median": statistics.median(w)} for m, w in walls.items()}
    summary["preload_vs_spawn"] = compare(by_mode)
    summary["load_average_end"] = os.getloadavg()
    return emit(summary, a.out)


if __name__ == "__main__":
    sys.exit(main())
