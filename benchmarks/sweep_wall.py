"""A 24-run sweep's wall time, preload (runs forked from the fork server) vs spawn (a fresh interpreter per run,
the launcher before the fork server), with real `python -m harness -m ...` commands (not a test:
`nox -s sweep_wall`).

The sweep: tiny, trained weights (the default), precision=fp32,bf16,int8 x batch_size=1,2,4,8 x seq_len=32,64,
short windows. Each mode runs it `--rounds` times, alternated (preload first in even rounds), each in a folder
of its own. Reported per mode: each sweep's wall time and their median, and the runs' timing.fixed_cost_s
(median over every run; the first run of a forked sweep also waits for the server's imports) and run_wall_s.
The load average at start and end is in the summary: a figure taken while the machine was loaded is not one.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

from _output import emit  # benchmarks/_output.py (scripts run as python benchmarks/<name>.py)
from fixed_cost import MODES, sweep

GRID = ["precision=fp32,bf16,int8", "batch_size=1,2,4,8", "seq_len=32,64"]
RUN = ["repeats=3", "workload.min_time_s=0.3", "quality.eval_tokens=1024", "workload.decode_tokens=16"]


def _median(records: list[dict], key: str) -> float:
    return statistics.median(r["timing"][key] for r in records)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=1, help="sweeps per mode, alternated")
    p.add_argument("--out", type=Path)
    a = p.parse_args()
    summary: dict = {"load_average_start": os.getloadavg(), "grid": GRID, "run_settings": RUN}
    walls: dict[str, list[float]] = {m: [] for m in MODES}
    runs: dict[str, list[dict]] = {m: [] for m in MODES}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        sweep(root, "warmup", "spawn", [*RUN, "batch_size=1"])  # trains the tiny checkpoint once (cached), unmeasured
        for i in range(a.rounds):
            for mode in MODES if i % 2 == 0 else reversed(MODES):
                wall_s, records = sweep(root, f"{mode}{i}", mode, [*RUN, *GRID])
                walls[mode].append(wall_s)
                runs[mode].extend(records)
    summary["runs_per_sweep"] = len(runs["spawn"]) // a.rounds
    summary["by_mode"] = {
        m: {
            "sweep_wall_s": walls[m],
            "sweep_wall_s_median": statistics.median(walls[m]),
            "fixed_cost_s_median": _median(runs[m], "fixed_cost_s"),
            "run_wall_s_median": _median(runs[m], "run_wall_s"),
            "timed_window_s_median": _median(runs[m], "timed_window_s"),
        }
        for m in MODES
    }
    summary["spawn_over_preload_wall"] = (
        summary["by_mode"]["spawn"]["sweep_wall_s_median"] / summary["by_mode"]["preload"]["sweep_wall_s_median"]
    )
    summary["load_average_end"] = os.getloadavg()
    return emit(summary, a.out)


if __name__ == "__main__":
    sys.exit(main())
