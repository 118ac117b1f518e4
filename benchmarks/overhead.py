"""The harness's own overhead, measured (not a test: run it with `nox -s benchmarks`).

1. Throughput ratio: tokens/s the harness reports vs a bare loop doing the same requests on the same
   model in the same process, alternated round by round so drift hits both; median of the ratios.
   Target >= 0.98.
2. Per-run fixed cost: process start + imports + model build for the tiny model, as recorded by real
   `python -m harness` runs (timing.fixed_cost_s). Target <= 5 s on a 2-core CPU machine. Each is a launcher
   of its own, so with launcher.preload (the default) it includes the fork server's start; the per-run figure
   of a sweep, preload vs spawn, is benchmarks/fixed_cost.py's.
3. Tracker overhead: the same timed work with the memory and energy trackers on vs off, in short blocks
   alternated round by round (same process, same model). Each block's repeats are samples; the ratio
   on/off of the median request latency (and of the minimum: the least disturbed repeats) comes with the
   gate's two-stage bootstrap interval (blocks, then repeats), so "within 2 %" is a statement with its
   confidence, not a single noisy ratio. Beside it, the CPU time the trackers' own threads took per
   second of the window (process CPU time minus the measuring thread's, on minus off).
   Target: trackers cost <= 2 % of throughput.

Prints a JSON summary; `--out FILE` also writes it.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from _output import emit  # benchmarks/_output.py (scripts run as python benchmarks/<name>.py)

from harness import data, models
from harness.backends.hf import HFEager
from harness.gate import stats
from harness.probes import ProbeSet
from harness.probes.energy import CodecarbonEnergy, RaplEnergy, rapl_zones
from harness.probes.memory import CpuMemory
from harness.probes.timing import CpuTimer
from harness.scenarios import inference

TINY = models.preset("tiny")  # the shipped preset, conf/model/tiny.yaml


def bare_tok_per_s(model, ids, decode_tokens: int, seconds: float) -> float:
    """Generated tokens per second of a plain prefill+decode loop: no marks, no bookkeeping."""
    batch, keyword = ids.shape[0], models.cache_keyword(model)
    n, start = 0, time.perf_counter()
    with torch.inference_mode():
        while time.perf_counter() - start < seconds:
            out = model(input_ids=ids, use_cache=True, logits_to_keep=1)
            token, cache = out.logits[:, -1:].argmax(-1), models.output_cache(out)
            for _ in range(decode_tokens):
                out = model(input_ids=token, use_cache=True, logits_to_keep=1, **{keyword: cache})
                token, cache = out.logits[:, -1:].argmax(-1), models.output_cache(out)
            n += 1
        elapsed = time.perf_counter() - start
    return batch * (decode_tokens + 1) * n / elapsed


def throughput_ratio(rounds: int, seconds: float, seq_len: int, decode_tokens: int) -> dict:
    model = models.build(TINY, torch.float32, "cpu", seed=0)
    ids = data.prompt_ids(1, seq_len, seed=0)
    policy = inference.Policy(warmup_iters=0, min_iters=1, min_time_s=seconds, max_iters=10**9, repeats=1)
    bare_tok_per_s(model, ids, decode_tokens, 1.0)  # warm-up for both
    ratios, harness_tps, bare_tps = [], [], []
    for i in range(rounds):
        order = ("harness", "bare") if i % 2 == 0 else ("bare", "harness")
        got = {}
        for which in order:
            if which == "harness":
                got[which] = inference.run(HFEager.around(model).forward, ids, decode_tokens, policy, CpuTimer())[
                    "metrics"
                ]["e2e_tok_per_s"]
            else:
                got[which] = bare_tok_per_s(model, ids, decode_tokens, seconds)
        harness_tps.append(got["harness"])
        bare_tps.append(got["bare"])
        ratios.append(got["harness"] / got["bare"])
    return {
        "rounds": rounds,
        "seconds_per_side": seconds,
        "harness_e2e_tok_per_s_median": statistics.median(harness_tps),
        "bare_e2e_tok_per_s_median": statistics.median(bare_tps),
        "ratio_median": statistics.median(ratios),
        "ratio_min": min(ratios),
        "ratio_max": max(ratios),
    }


def tracker_overhead(rounds: int, seconds: float, seq_len: int, decode_tokens: int, repeats: int = 5) -> dict:
    model = models.build(TINY, torch.float32, "cpu", seed=0)
    ids = data.prompt_ids(1, seq_len, seed=0)
    policy = inference.Policy(1, 1, seconds / repeats, 10**9, repeats)
    zones = rapl_zones()

    def trackers() -> list:
        return [CpuMemory(), RaplEnergy(zones) if zones else CodecarbonEnergy()]

    latencies: dict[str, list[list[float]]] = {"on": [], "off": []}
    tok_s: dict[str, list[float]] = {"on": [], "off": []}
    others_cpu: dict[str, list[float]] = {"on": [], "off": []}  # CPU s of other threads per window second
    for i in range(rounds):
        for which in ("on", "off") if i % 2 == 0 else ("off", "on"):
            chosen = ProbeSet(trackers() if which == "on" else [])
            p0, t0 = time.process_time(), time.thread_time()
            out = inference.run(HFEager.around(model).forward, ids, decode_tokens, policy, CpuTimer(), chosen)
            p1, t1 = time.process_time(), time.thread_time()
            window = out["timed_window_s"]  # begin()'s hardware probe (codecarbon, ~1-2 s) is outside it
            latencies[which].append([r["request_latency_s_p50"] for r in out["repeats"]])
            tok_s[which].append(out["metrics"]["e2e_tok_per_s"])
            # threads other than this one: the trackers' samplers (started by begin(), stopped by end(), so
            # they live about as long as the window) and torch's idle pool
            others_cpu[which].append(((p1 - p0) - (t1 - t0)) / window)
    # median, and minimum (the least disturbed repeats: host noise only slows work down), each with its interval
    est = stats.bootstrap_ratio(latencies["off"], latencies["on"], resamples=4000, rng=np.random.default_rng(0))
    fast = stats.bootstrap_ratio(
        latencies["off"], latencies["on"], resamples=4000, rng=np.random.default_rng(0), quantile=0.0
    )
    return {
        "rounds": rounds,
        "seconds_per_block": seconds,
        "repeats_per_block": repeats,
        "energy_tracker": "rapl" if zones else "codecarbon (estimate; no readable RAPL here)",
        "request_latency_ratio_on_over_off": est.ratio,
        "request_latency_ratio_ci95": [est.low, est.high],
        "request_latency_min_ratio_on_over_off": fast.ratio,
        "request_latency_min_ratio_ci95": [fast.low, fast.high],
        "slowdown_within_2pct_with_95pct_confidence": {"median": est.high <= 1.02, "minimum": fast.high <= 1.02},
        "on_e2e_tok_per_s_median": statistics.median(tok_s["on"]),
        "off_e2e_tok_per_s_median": statistics.median(tok_s["off"]),
        "per_round_tok_s_ratio_median": statistics.median(
            a / b for a, b in zip(tok_s["on"], tok_s["off"], strict=True)
        ),
        "tracker_threads_cpu_s_per_window_s_median": statistics.median(
            a - b for a, b in zip(others_cpu["on"], others_cpu["off"], strict=True)
        ),
    }


def fixed_cost(runs: int) -> dict:
    figures = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(runs):
            cmd = [
                sys.executable,
                "-m",
                "harness",
                f"results_dir={tmp}",
                f"sweep=fc{i}",
                "repeats=1",
                "workload.min_time_s=0.1",
                "workload.min_iters=1",
            ]
            subprocess.run(cmd, check=True, capture_output=True)
            (path,) = Path(tmp, f"fc{i}").rglob("result.json")
            t = json.loads(path.read_text())["timing"]
            figures.append(t)
    med = lambda k: statistics.median(f[k] for f in figures)
    return {
        "runs": runs,
        "fixed_cost_s_median": med("fixed_cost_s"),
        "fixed_cost_s_max": max(f["fixed_cost_s"] for f in figures),
        "startup_s_median": med("startup_s"),
        "model_build_s_median": med("model_build_s"),
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=6)
    p.add_argument("--seconds", type=float, default=2.0)
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--out", type=Path)
    p.add_argument("--threads", type=int, help="torch threads (default: torch's own)")
    p.add_argument("--parts", default="throughput,trackers,fixed", help="which measurements, comma-separated")
    a = p.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    parts = set(a.parts.split(","))
    if parts - {"throughput", "trackers", "fixed"}:
        p.error(f"--parts {a.parts} is not valid: choose from throughput, trackers, fixed (comma-separated)")
    summary: dict = {"machine": {"threads": torch.get_num_threads(), "torch": torch.__version__}}
    if "throughput" in parts:
        summary["throughput"] = throughput_ratio(a.rounds, a.seconds, seq_len=128, decode_tokens=32)
    if "trackers" in parts:
        summary["tracker_overhead"] = tracker_overhead(a.rounds, a.seconds, seq_len=128, decode_tokens=32)
    if "fixed" in parts:
        summary["fixed_cost"] = fixed_cost(a.runs)
    return emit(summary, a.out)


if __name__ == "__main__":
    sys.exit(main())
