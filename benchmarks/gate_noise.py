"""Does the gate separate signal from noise on this machine? (a benchmark, not a test: `nox -s gate_noise`)

Each trial makes three result sets of the same configuration with the real CLI, in a rotating order:
  base  - the code as it is
  aa    - the code as it is again (A vs A: the gate must say pass)
  slow  - a real slowdown (the gate must say regression), one of
          spin:F    every forward pass of the model is followed by a busy wait of F x its own duration,
                    injected from outside through a sitecustomize module (nothing in harness/ changes), so
                    latencies grow by about F and throughputs fall by about F/(1+F). A busy wait, not
                    time.sleep: a sleeping process gives its core away and, on a loaded machine, waits to get
                    it back, which would make the slowdown larger than F and depend on the load;
          threads   base and aa run with --threads-base threads, slow with 1 thread (needs threads-base >= 2).
With --processes K each set is K sweeps (one process each), interleaved, which the gate pools by key.
Then `python -m harness gate` judges base vs aa and base vs slow. Prints a JSON summary: how many A/A
trials passed (exit 0), how many slowdowns were flagged (exit 1), and the medians of the measured ratios.

--slow-processes K' (default K) measures the slowdown side with fewer processes, spread evenly among the
others: noise only ever slows a run down, so a short slow side can only look slower, never faster.
Sides are always interleaved process by process: host load that lasts minutes then hits all sides alike
(a design that gated each set against one measured minutes earlier gave a false regression when the host
stayed slow for two minutes).
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

from _output import emit  # benchmarks/_output.py (scripts run as python benchmarks/<name>.py)

SITECUSTOMIZE = '''\
"""Injected by benchmarks/gate_noise.py: every forward pass of the built model is followed by a busy wait."""
import importlib.abc, importlib.util, os, sys, time

FACTOR = float(os.environ["HARNESS_GATE_NOISE_SPIN"])


def _slow(build):
    def slow_build(*args, **kwargs):
        model = build(*args, **kwargs)
        forward = model.forward

        def slow_forward(*a, **k):
            t0 = time.perf_counter()
            out = forward(*a, **k)
            t1 = time.perf_counter()
            end = t1 + FACTOR * (t1 - t0)
            while time.perf_counter() < end:
                pass
            return out

        model.forward = slow_forward
        return model

    return slow_build


class _Finder(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name != "harness.models":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        run = spec.loader.exec_module

        def exec_module(module):
            run(module)
            module.build = _slow(module.build)

        spec.loader.exec_module = exec_module
        return spec


sys.meta_path.insert(0, _Finder())
'''
# the figures reported per comparison (ratios candidate/baseline of the medians, from verdicts.json)
LOAD: list[float] = []  # 1-minute load average at the start of each sweep
REPORTED = ("request_latency_s_p50", "decode_latency_s_p50", "prefill_latency_s_p50", "decode_tok_per_s")


def sweep(dest: Path, a: argparse.Namespace, threads: int, env: dict | None = None) -> None:
    cmd = [
        sys.executable,
        "-m",
        "harness",
        f"results_dir={dest.parent}",
        f"sweep={dest.name}",
        f"model={a.model}",
        f"threads={threads}",
        f"repeats={a.repeats}",
        f"workload.min_time_s={a.min_time_s}",
        "workload.min_iters=2",
        f"workload.decode_tokens={a.decode_tokens}",
        *a.sweep_override,
    ]
    LOAD.append(os.getloadavg()[0])  # what else the machine was doing, for the record
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise SystemExit(f"sweep failed: {' '.join(cmd)}\n{proc.stderr[-2000:]}")


def gate(base: Path, cand: Path, out: Path, overrides: list[str]) -> dict:
    cmd = [sys.executable, "-m", "harness", "gate", "--baseline", str(base), "--candidate", str(cand)]
    proc = subprocess.run([*cmd, "--out", str(out), *overrides], capture_output=True, text=True)
    if proc.returncode == 2:
        raise SystemExit(f"gate usage error: {proc.stderr}")
    verdicts = json.loads((out / "verdicts.json").read_text())
    ratios = {c["metric"]: c["ratio"] for c in verdicts["checks"] if c["metric"] in REPORTED}
    flagged = sorted({f"{c['metric']}:{c['verdict']}" for c in verdicts["checks"] if c["verdict"] != "pass"})
    return {"exit_code": proc.returncode, "outcome": verdicts["outcome"], "ratios": ratios, "flagged": flagged}


def trial(i: int, root: Path, a: argparse.Namespace, slow_env: dict) -> dict:
    sides = {
        "base": (a.threads_base, None),
        "aa": (a.threads_base, None),
        "slow": (1, None) if a.slowdown == "threads" else (a.threads_base, slow_env),
    }
    names = list(sides)
    slow_rounds = {round(k * a.processes / a.slow_processes) for k in range(a.slow_processes)}
    for j in range(a.processes):
        shift = (i + j) % 3  # rotate the order so that no side always runs first (drift hits all alike)
        for name in names[shift:] + names[:shift]:
            if name == "slow" and j not in slow_rounds:
                continue
            threads, env = sides[name]
            sweep(root / name / f"p{j}", a, threads, env)
    settings = ["--config", a.gate_config, *a.gate_override]
    return {
        "loadavg_1min": statistics.median(LOAD[-(2 * a.processes + a.slow_processes) :]),
        "aa": gate(root / "base", root / "aa", root / "gate-aa", settings),
        "slow": gate(root / "base", root / "slow", root / "gate-slow", settings),
    }


def _ratio_summary(rows: list[dict]) -> dict:
    out = {}
    for metric in REPORTED:
        xs = [r["ratios"][metric] for r in rows if r["ratios"].get(metric) is not None]
        if xs:
            out[metric] = {"median": statistics.median(xs), "min": min(xs), "max": max(xs)}
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--trials", type=int, default=20)
    p.add_argument("--processes", type=int, default=8, help="sweeps (processes) per side, interleaved")
    p.add_argument("--slowdown", default="spin:0.25", help="spin:F (a busy wait of F x each forward pass) or threads")
    p.add_argument("--threads-base", type=int, default=1, help="torch threads of base and aa")
    p.add_argument("--model", default="tiny")
    p.add_argument("--slow-processes", type=int, help="processes of the slowdown side (default: --processes)")
    p.add_argument("--repeats", type=int, default=16)
    p.add_argument(
        "--sweep-override", action="append", default=[], help="passed to every sweep, e.g. energy.enabled=false"
    )
    p.add_argument("--min-time-s", type=float, default=0.1)
    p.add_argument("--decode-tokens", type=int, default=32)
    p.add_argument("--gate-config", default="noisy", help="the gate's --config (default, noisy or a file)")
    p.add_argument("--gate-override", action="append", default=[], help="passed to the gate, e.g. confidence=0.9")
    p.add_argument("--keep", type=Path, help="keep every result set and verdict under this folder")
    p.add_argument("--out", type=Path, help="also write the JSON summary here")
    p.add_argument("--regate", type=Path, help="measure nothing: gate the trials kept (--keep) in this folder again")
    a = p.parse_args()
    a.slow_processes = a.slow_processes or a.processes
    if not 1 <= a.slow_processes <= a.processes:
        p.error(f"--slow-processes {a.slow_processes} is not valid: choose 1 to --processes ({a.processes})")
    if a.slowdown != "threads" and not a.slowdown.startswith("spin:"):
        p.error(f"--slowdown {a.slowdown} is not valid: choose spin:F (e.g. spin:0.25) or threads")
    if a.slowdown == "threads" and a.threads_base < 2:
        p.error("--slowdown threads needs --threads-base 2 or more")

    work = Path(a.keep) if a.keep else Path(tempfile.mkdtemp(prefix="gate-noise-"))
    if a.regate:
        a.keep, work = None, Path(tempfile.mkdtemp(prefix="gate-noise-"))
    inject = work / "inject"
    slow_env = None
    if a.slowdown.startswith("spin:"):
        inject.mkdir(parents=True, exist_ok=True)
        (inject / "sitecustomize.py").write_text(SITECUSTOMIZE)
        path = os.pathsep.join(x for x in (str(inject), os.environ.get("PYTHONPATH", "")) if x)
        slow_env = dict(os.environ, PYTHONPATH=path, HARNESS_GATE_NOISE_SPIN=a.slowdown.split(":", 1)[1])
    rows, t0 = [], time.time()
    if a.regate:  # other gate settings on the same measurements (verdicts go to a scratch folder)
        settings, scratch = ["--config", a.gate_config, *a.gate_override], Path(tempfile.mkdtemp(prefix="regate-"))
        kept = sorted(a.regate.glob("trial*"))
        if not kept:
            p.error(f"--regate {a.regate} is not valid: it holds no trial* folders (made with --keep)")
        for root in kept:
            aa = gate(root / "base", root / "aa", scratch / root.name / "aa", settings)
            slow = gate(root / "base", root / "slow", scratch / root.name / "slow", settings)
            rows.append({"loadavg_1min": float("nan"), "aa": aa, "slow": slow})
        a.trials = len(rows)
    for i in range(0 if a.regate else a.trials):
        row = trial(i, work / f"trial{i:02d}", a, slow_env)
        rows.append(row)
        print(
            f"trial {i + 1}/{a.trials} (load {row['loadavg_1min']:.1f}): "
            f"A/A exit {row['aa']['exit_code']} {row['aa']['flagged']}, "
            f"slow exit {row['slow']['exit_code']} (request latency ratio {row['slow']['ratios'].get(REPORTED[0])})",
            file=sys.stderr,
            flush=True,
        )
    aa, slow = [r["aa"] for r in rows], [r["slow"] for r in rows]
    summary = {
        "machine": {
            "cpus": os.cpu_count(),
            "loadavg_1min_at_sweep_starts": (
                {"median": statistics.median(LOAD), "min": min(LOAD), "max": max(LOAD)} if LOAD else None
            ),
        },
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(a).items()},
        "trials": a.trials,
        "aa_pass": sum(r["exit_code"] == 0 for r in aa),
        "aa_every_check_pass": sum(not r["flagged"] for r in aa),  # not even a (false) improvement
        "aa_false_regression": sum(r["exit_code"] == 1 for r in aa),
        "aa_exit_codes": [r["exit_code"] for r in aa],
        "slow_regression": sum(r["exit_code"] == 1 for r in slow),
        "slow_exit_codes": [r["exit_code"] for r in slow],
        "aa_ratios": _ratio_summary(aa),
        "slow_ratios": _ratio_summary(slow),
        "trial_loadavg_1min": [round(r["loadavg_1min"], 2) for r in rows],
        "aa_flagged": [r["flagged"] for r in aa],
        "slow_flagged": [r["flagged"] for r in slow],
        "wall_s": round(time.time() - t0, 1),
    }
    return emit(summary, a.out)


if __name__ == "__main__":
    sys.exit(main())
