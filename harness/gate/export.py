"""Results in pytest-benchmark's JSON format, so `pytest-benchmark compare` and its dashboards read them.

One benchmark per (run, latency): its rounds are the run's repeats, each datum the median latency of one
repeat in seconds (so `ops` is requests, prefills or decode steps per second). Throughputs, counts and
memory ride along in `extra_info`. Runs that did not finish `ok` have no data and are listed under
`harness.skipped`. The statistics follow pytest_benchmark.stats.Stats (quartiles included), which a test
checks; pytest-benchmark itself is not needed to export.
"""

from __future__ import annotations

import statistics
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timezone
from typing import Any

from harness import metrics, results

# from the metric registry (harness.metrics, export=...)
LATENCIES = metrics.export_names("latency")
EXTRA = metrics.export_names("extra")
FORMAT_VERSION = "5.1.0"  # the pytest-benchmark file format these files follow (fields as of 5.x)


def _quartiles(d: Sequence[float]) -> tuple[float, float]:
    """q1, q3 as pytest-benchmark computes them (Wikipedia's methods 3 and 2)."""
    n = len(d)
    if n == 1:
        return d[0], d[0]
    if n % 2:
        k, r = n // 4, n % 4
        if r == 1:
            return 0.25 * d[k - 1] + 0.75 * d[k], 0.75 * d[3 * k] + 0.25 * d[3 * k + 1]
        return 0.75 * d[k] + 0.25 * d[k + 1], 0.25 * d[3 * k + 1] + 0.75 * d[3 * k + 2]
    return statistics.median(d[: n // 2]), statistics.median(d[n // 2 :])


def stats(data: Sequence[float]) -> dict[str, Any]:
    """pytest-benchmark's `stats` object for one benchmark (seconds per round)."""
    d = sorted(data)
    mean = statistics.fmean(d)
    stddev = statistics.stdev(d) if len(d) > 1 else 0
    q1, q3 = _quartiles(d)
    iqr = q3 - q1
    iqr_out = sum(x < q1 - 1.5 * iqr or x > q3 + 1.5 * iqr for x in d)
    sd_out = sum(x < mean - stddev or x > mean + stddev for x in d)
    return {
        "min": d[0],
        "max": d[-1],
        "mean": mean,
        "stddev": stddev,
        "rounds": len(d),
        "median": statistics.median(d),
        "iqr": iqr,
        "q1": q1,
        "q3": q3,
        "iqr_outliers": iqr_out,
        "stddev_outliers": sd_out,
        "outliers": f"{sd_out};{iqr_out}",
        "ld15iqr": d[0] if len(d) == 1 else d[bisect_left(d, q1 - 1.5 * iqr)],
        "hd15iqr": d[0] if len(d) == 1 else d[bisect_right(d, q3 + 1.5 * iqr) - 1],
        "ops": 1 / mean if mean else 0,
        "total": sum(d),
        "data": list(data),
        "iterations": 1,
    }


def _benchmark(result: Mapping[str, Any], metric: str, data: list[float]) -> dict[str, Any]:
    config, m = result.get("config") or {}, result.get("metrics") or {}
    slug = results.run_slug(config) if config else result["key"]
    workload = config.get("workload") or {}
    return {
        "group": metric.removesuffix("_p50"),
        "name": f"{metric}[{slug}]",
        "fullname": f"harness::{metric}[{slug}]",
        "params": dict(result["key_fields"]),
        "param": slug,
        "extra_info": {"key": result["key"], "status": result["status"], **{k: m[k] for k in EXTRA if k in m}},
        "options": {
            "disable_gc": False,
            "timer": m.get("timing_method", "perf_counter"),
            # repeats=auto: the count it took is the number of samples
            "min_rounds": config["repeats"] if isinstance(config.get("repeats"), int) else len(data),
            "max_time": workload.get("min_time_s"),
            "min_time": 0,
            "precision": None,
            "confidence": None,
            "warmup": bool(workload.get("warmup_iters")),
        },
        "stats": stats(data),
    }


def _machine_info(env: Mapping[str, Any]) -> dict[str, Any]:
    # environment.os is platform.platform(): "Linux-6.18.44-fc-v669-x86_64-with-glibc2.36"
    parts = str(env.get("os") or "").split("-")
    arch = next((i for i, p in enumerate(parts) if p in ("x86_64", "aarch64", "arm64", "ppc64le")), len(parts))
    return {
        "node": env.get("hostname"),
        "processor": env.get("cpu_model"),
        "machine": parts[arch] if arch < len(parts) else "",
        "python_implementation": "CPython",
        "python_version": env.get("python"),
        "system": parts[0],
        "release": "-".join(parts[1:arch]),
        "cpu": {"brand_raw": env.get("cpu_model"), "count": env.get("cpu_logical_cores")},
        "harness_environment": {k: env.get(k) for k in ("device", "packages", "torch_threads", "cuda_version")},
    }


def to_pytest_benchmark(found: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """A pytest-benchmark JSON document (the `--benchmark-json` shape) of harness results."""
    found = list(found)
    env = next((r.get("environment") for r in found if r.get("environment")), {}) or {}
    git = env.get("git") or {}
    benchmarks, skipped = [], []
    for r in found:
        if r["status"] != "ok":
            skipped.append({"key": r["key"], "status": r["status"], "reason": r.get("reason")})
            continue
        for metric in LATENCIES:
            data = [float(rep[metric]) for rep in r.get("repeats") or [] if isinstance(rep.get(metric), (int, float))]
            if data:
                benchmarks.append(_benchmark(r, metric, data))
    created = min((r.get("created_at") for r in found if r.get("created_at")), default=None)
    return {
        "machine_info": _machine_info(env),
        "commit_info": {
            "id": git.get("commit") or "unversioned",
            "time": None,
            "author_time": None,
            "dirty": bool(git.get("dirty")),
            "project": "harness",
            "branch": "(unknown)",
        },
        "benchmarks": benchmarks,
        "datetime": created or datetime.now(timezone.utc).isoformat(),
        "version": FORMAT_VERSION,
        "harness": {"schema": "harness.pytest-benchmark/1", "runs": len(found), "skipped": skipped},
    }
