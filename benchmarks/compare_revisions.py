"""Did a change make the harness slower? Another revision vs this checkout, alternated in one run
(not a test: `python benchmarks/compare_revisions.py --before <rev>`).

Per round and side, in alternating order so that drift hits both alike: the harness/bare-loop throughput
ratio of inference (benchmarks/overhead.py) and of training (benchmarks/training.py's `ratio`), and the
per-run fixed cost of the tiny model (timing.fixed_cost_s of real `python -m harness` runs). The other
revision runs from a temporary git worktree with this environment's packages (PYTHONPATH points at it).
Prints medians with n, min and max per side as JSON; `--out FILE` also writes it.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from _output import emit  # benchmarks/_output.py (scripts run as python benchmarks/<name>.py)

HERE = Path(__file__).resolve().parents[1]
INFER_RATIO = ("benchmarks/overhead.py", "--parts", "throughput", "--rounds", "4", "--seconds", "1.5")
TRAIN_RATIO = (
    "import sys, json; sys.path.insert(0, 'benchmarks'); import training; print(json.dumps(training.ratio(4, 15)))"
)


def _run(root: Path, *args: str) -> str:
    env = dict(os.environ, PYTHONPATH=str(root))
    return subprocess.run([sys.executable, *args], cwd=root, env=env, capture_output=True, text=True, check=True).stdout


def _fixed_cost(root: Path, results: Path, sweep: str, extra: list[str]) -> dict[str, float]:
    args = ["-m", "harness", f"results_dir={results}", f"sweep={sweep}", "repeats=1", "workload.min_time_s=0.1"]
    _run(root, *args, "workload.min_iters=1", *extra)
    (path,) = (results / sweep).rglob("result.json")
    return json.loads(path.read_text())["timing"]


def _side_extra(root: Path) -> list[str]:
    """Random weights where the revision knows model.weights (a trained checkpoint is another model load)."""
    return ["model.weights=random"] if "weights" in (root / "conf" / "model" / "tiny.yaml").read_text() else []


def compare(before: Path, rounds: int, runs: int) -> dict:
    sides = {"before": before, "after": HERE}
    keys = ("inference_ratio", "training_ratio", "fixed_cost_s", "startup_s", "model_build_s")
    got: dict[str, dict[str, list[float]]] = {s: {k: [] for k in keys} for s in sides}
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(rounds):
            for side in list(sides) if i % 2 == 0 else list(sides)[::-1]:
                root, out = sides[side], got[side]
                text = _run(root, *INFER_RATIO)
                out["inference_ratio"].append(json.loads(text[text.index("{") :])["throughput"]["ratio_median"])
                out["training_ratio"].append(json.loads(_run(root, "-c", TRAIN_RATIO).splitlines()[-1])["ratio_median"])
                for j in range(runs):
                    t = _fixed_cost(root, Path(tmp), f"{side}{i}x{j}", _side_extra(root))
                    for k in ("fixed_cost_s", "startup_s", "model_build_s"):
                        out[k].append(t[k])
    return {
        side: {k: {"median": statistics.median(v), "n": len(v), "min": min(v), "max": max(v)} for k, v in d.items()}
        for side, d in got.items()
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--before", required=True, help="the git revision to compare this checkout against")
    p.add_argument("--rounds", type=int, default=4)
    p.add_argument("--runs", type=int, default=2, help="fixed-cost runs per round and side")
    p.add_argument("--out", type=Path)
    a = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tree = Path(tmp) / "before"
        subprocess.run(["git", "worktree", "add", "-q", "--detach", str(tree), a.before], cwd=HERE, check=True)
        try:
            summary = {"before": a.before, "rounds": a.rounds, **compare(tree, a.rounds, a.runs)}
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=HERE, check=False)
    summary["loadavg_1m_end"] = os.getloadavg()[0]
    return emit(summary, a.out)


if __name__ == "__main__":
    sys.exit(main())
