"""Synthetic result files for the gate's tests: real configs and result records, made-up measurements."""

from __future__ import annotations

import copy
import functools
import json
from pathlib import Path
from typing import Any

import numpy as np
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from harness import app, results
from harness.config import CONF_DIR

ENV = {
    "hostname": "ci-runner",
    "os": "Linux-6.1.0-x86_64-with-glibc2.36",
    "python": "3.11.7",
    "cpu_model": "AMD EPYC",
    "cpu_logical_cores": 2,
    "cpu_physical_cores": 2,
    "cpu_affinity_cores": 2,
    "memory_total_bytes": 25 * 2**30,
    "omp_num_threads_env": None,
    "packages": {"torch": "2.13.0+cpu", "transformers": "5.23.0", "torchao": "0.18.0", "harness": "0.1.0"},
    "git": {"commit": "0123456789abcdef", "dirty": False},
    "torch_threads": 2,
    "torch_interop_threads": 2,
    "cuda_version": None,
    "device": {"type": "cpu", "name": "AMD EPYC", "index": None, "count": 2, "capability": None},
}
# medians of the synthetic per-repeat figures (seconds, tokens/s)
TIMED = {
    "prefill_latency_s_p50": 0.006,
    "ttft_s_p50": 0.006,
    "decode_latency_s_p50": 0.001,
    "request_latency_s_p50": 0.04,
    "prefill_tok_per_s": 20000.0,
    "decode_tok_per_s": 900.0,
    "e2e_tok_per_s": 800.0,
    "samples_per_s": 25.0,
}


@functools.cache
def _composed(overrides: tuple[str, ...]) -> dict[str, Any]:
    app.register()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("config", overrides=["sweep=synthetic", *overrides])
    return OmegaConf.to_container(cfg, resolve=True)


def make(
    *overrides: str,
    slowdown: float = 1.0,
    noise: float = 0.01,
    repeats: int = 10,
    seed: int = 0,
    status: str = "ok",
    env: dict | None = None,
    metrics: dict | None = None,
    drop: tuple[str, ...] = (),
    sections: dict | None = None,
) -> dict[str, Any]:
    """A result record of the config `overrides`; timed figures are lognormal around TIMED (× slowdown)."""
    config = copy.deepcopy(_composed(tuple(overrides)))
    rng = np.random.default_rng(seed)
    reps = []
    for _ in range(repeats):
        rep = {"iterations": 5, "wall_s": 1.0}
        for name, median in TIMED.items():
            factor = slowdown if "latency" in name or "ttft" in name else 1 / slowdown
            rep[name] = median * factor * float(rng.lognormal(0, noise))
        reps.append({k: v for k, v in rep.items() if k not in drop})
    m = {"params": 1_115_264, "matmul_params": 1_081_344, "flops_per_token_prefill": 2_293_760.0}
    m |= {"flops_per_token_decode": 2_310_656.0, "peak_rss_bytes": 380 * 2**20}
    m |= metrics or {}
    ok = status == "ok"
    return results.make_result(
        config,
        status,
        None if ok else f"injected {status}",
        copy.deepcopy(env or ENV),
        metrics={k: v for k, v in m.items() if k not in drop} if ok else {},
        repeats=reps if ok else [],
        **copy.deepcopy(sections or {}),  # e.g. interference
    )


def write(root: Path, *records: dict[str, Any]) -> Path:
    """Write records as a sweep folder: root/<run slug>/result.json (as the CLI lays them out)."""
    for r in records:
        results.write_atomic(root / results.run_slug(r["config"]) / results.RESULT_FILE, r)
    return root


def read_json(path: Path) -> Any:
    return json.loads(Path(path).read_text())
