"""Attainable peak FLOP/s (per dtype) and copy bandwidth of this CPU, measured: no vendor peak is meaningful on a CPU.

A square matmul is timed for the run's dtype (int8 through torch._int_mm) at the run's thread count.
Every run measures briefly and the best figure seen on this machine (CPU model, threads, torch version)
is kept in the harness cache ($HARNESS_CACHE, default ~/.cache/harness; HARNESS_CACHE_DIR, its older name,
still works): a calibration taken while the machine was busy does not stick, and the peak converges to
what the machine can attain.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import torch

from harness.hardware import cpu_name

SIZE = {"fp32": 1024, "bf16": 1024, "int8": 1024, "fp16": 256}  # fp16 matmul is ~100x slower on CPU
CHUNK_S = 0.1
CHUNKS = 2
_DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def cache_path() -> Path:
    """In the one harness cache the trained checkpoints use too (harness.checkpoints.cache_root)."""
    root = os.environ.get("HARNESS_CACHE") or os.environ.get("HARNESS_CACHE_DIR")
    return Path(root or Path.home() / ".cache" / "harness") / "cpu_peak_flops.json"


def _matmul(dtype_name: str, n: int):
    if dtype_name == "int8":
        a = torch.randint(-128, 127, (n, n), dtype=torch.int8)
        b = torch.randint(-128, 127, (n, n), dtype=torch.int8)
        return lambda: torch._int_mm(a, b)
    a = torch.randn(n, n, dtype=_DTYPES[dtype_name])
    b = torch.randn(n, n, dtype=_DTYPES[dtype_name])
    return lambda: a @ b


def measure(dtype_name: str) -> float:
    """Best sustained FLOP/s (OP/s for int8) of an n^3 matmul over CHUNKS chunks of >= CHUNK_S each."""
    n_ = SIZE[dtype_name]
    fn = _matmul(dtype_name, n_)
    fn()  # warm-up
    best = 0.0
    with torch.inference_mode():
        for _ in range(CHUNKS):
            n, start = 0, time.perf_counter()
            while n < 1 or time.perf_counter() - start < CHUNK_S:
                fn()
                n += 1
            best = max(best, 2 * n_**3 * n / (time.perf_counter() - start))
    return best


def _keep_best(key: str, now: float) -> tuple[float, Path]:
    """The best figure ever stored under `key` on this machine, `now` included (stored when it is higher)."""
    path = cache_path()
    try:
        cache = json.loads(path.read_text())
    except (OSError, ValueError):
        cache = {}
    best = max(now, cache.get(key, 0.0))
    if best > cache.get(key, 0.0):
        cache[key] = best
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(json.dumps(cache, indent=1, sort_keys=True))
            os.replace(tmp, path)
        except OSError:
            pass  # an unwritable cache only means this run's own calibration is used
    return best, path


def _machine_key(what: str) -> str:
    """A cache key: this CPU, the current thread count and torch version, and what was measured."""
    return f"{cpu_name()}|threads={torch.get_num_threads()}|torch={torch.__version__}|{what}"


def cpu_peak(dtype_name: str) -> dict[str, Any]:
    """{peak_flop_per_s, peak_source, calibration_flop_per_s} for this CPU at the current thread count."""
    n = SIZE[dtype_name]
    key = _machine_key(f"{dtype_name}|n={n}")
    now = measure(dtype_name)
    best, path = _keep_best(key, now)
    return {
        "peak_flop_per_s": best,
        "peak_source": f"measured on this machine: best {n}^3 {dtype_name} matmul at {torch.get_num_threads()} "
        f"threads seen by any run (cache {path})",
        "calibration_flop_per_s": now,
    }


def cpu_peak_for(precision: str) -> dict[str, Any]:
    """The MFU denominator on CPU for a run in `precision`: the higher of its own dtype's and fp32's
    calibrated peaks, since autocast and quantized models run some matmuls in fp32 (and a slow dtype's
    small calibration would otherwise let MFU exceed 1)."""
    own = cpu_peak(precision)
    if precision == "fp32":
        return own
    fp32 = cpu_peak("fp32")
    best = own if own["peak_flop_per_s"] >= fp32["peak_flop_per_s"] else fp32
    return {
        "peak_flop_per_s": best["peak_flop_per_s"],
        "peak_source": f"higher of the {precision} and fp32 calibrations: {best['peak_source']}",
        "calibration_flop_per_s": own["calibration_flop_per_s"],
    }


# The MBU denominator on CPU: no vendor figure fits a shared, cached machine, so a copy is timed. 2 x 32 MiB
# fp32 tensors, read + write bytes counted (write-allocate traffic is not). A last-level cache larger than
# that (COPY_BYTES) makes it the cache's bandwidth: the ceiling for working sets of that size.
COPY_BYTES = 32 * 2**20
COPY_CHUNK_S = 0.05  # shorter than the matmul's: every run pays it, and the cache keeps the best anyway


def measure_copy(nbytes: int = COPY_BYTES) -> float:
    """Best sustained bytes/s (read + write) of dst.copy_(src) over CHUNKS chunks of >= COPY_CHUNK_S each."""
    src = torch.ones(nbytes // 4, dtype=torch.float32)
    dst = torch.empty_like(src)
    dst.copy_(src)  # warm-up: the pages are touched before timing
    best = 0.0
    for _ in range(CHUNKS):
        n, start = 0, time.perf_counter()
        while n < 1 or time.perf_counter() - start < COPY_CHUNK_S:
            dst.copy_(src)
            n += 1
        best = max(best, 2 * src.nbytes * n / (time.perf_counter() - start))
    return best


def _llc_text() -> str:
    """The last-level cache size as Linux reports it, for the label ("" where not readable)."""
    caches = sorted(Path("/sys/devices/system/cpu/cpu0/cache").glob("index*/size"))
    try:
        return f"; last-level cache {caches[-1].read_text().strip()}" if caches else ""
    except OSError:
        return ""


def cpu_bandwidth(nbytes: int = COPY_BYTES) -> dict[str, Any]:
    """{peak_bandwidth_bytes_per_s, bandwidth_source, calibration_bandwidth_bytes_per_s} at this thread count:
    the best copy bandwidth any run has measured on this machine (cached beside the matmul peaks)."""
    threads = torch.get_num_threads()
    key = _machine_key(f"copy|bytes={nbytes}")
    now = measure_copy(nbytes)
    best, path = _keep_best(key, now)
    return {
        "peak_bandwidth_bytes_per_s": best,
        "bandwidth_source": f"measured on this machine: best copy of {nbytes // 2**20} MiB (read + write bytes) at "
        f"{threads} threads seen by any run{_llc_text()} (cache {path})",
        "calibration_bandwidth_bytes_per_s": now,
    }
