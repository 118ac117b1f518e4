"""Micro-benchmarks of the gate's own cost (pytest-benchmark): `nox -s microbench`, or
`python -m pytest benchmarks/test_gate_bootstrap.py --benchmark-only`.

What a CI job pays per comparison: one bootstrap per (run, timed metric), and the whole matching of a
sweep. Not part of the default test run (it skips benchmarks).
"""

import numpy as np
import pytest

from harness.gate import compare, settings, stats
from harness.gate.baseline import Side

RESAMPLES = 2000


@pytest.fixture(scope="module")
def samples():
    rng = np.random.default_rng(0)
    return rng.lognormal(0, 0.05, 10), 1.1 * rng.lognormal(0, 0.05, 10)


def test_bootstrap_one_run_per_side(benchmark, samples):
    base, cand = samples
    est = benchmark(stats.bootstrap_ratio, base, cand, resamples=RESAMPLES, rng=np.random.default_rng(0))
    assert est.low < est.ratio < est.high


def test_bootstrap_three_pooled_runs_per_side(benchmark, samples):
    base, cand = samples
    groups_b, groups_c = [base[:4], base[4:7], base[7:]], [cand[:4], cand[4:7], cand[7:]]
    est = benchmark(stats.bootstrap_ratio, groups_b, groups_c, resamples=RESAMPLES, rng=np.random.default_rng(0))
    assert est.low < est.ratio < est.high


@pytest.mark.parametrize("resample", stats.RESAMPLING)
def test_bootstrap_minimum_of_8_pooled_runs_of_16_repeats(benchmark, resample):
    # the noisy preset's shape: 8 interleaved processes a side, 16 repeats each, the minimum
    rng = np.random.default_rng(2)
    base = [rng.lognormal(0, 0.05, 16) for _ in range(8)]
    cand = [1.1 * rng.lognormal(0, 0.05, 16) for _ in range(8)]
    est = benchmark(
        stats.bootstrap_ratio,
        base,
        cand,
        resamples=RESAMPLES,
        rng=np.random.default_rng(0),
        quantile=0.0,
        resample=resample,
    )
    assert est.low <= est.ratio <= est.high


def _record(key: str, rng: np.random.Generator, factor: float) -> dict:
    figures = ("prefill_latency_s_p50", "ttft_s_p50", "decode_latency_s_p50", "request_latency_s_p50")
    rates = ("prefill_tok_per_s", "decode_tok_per_s", "e2e_tok_per_s", "samples_per_s")
    reps = [
        {**{f: factor * 0.01 * rng.lognormal(0, 0.05) for f in figures}, **{r: 100 / factor for r in rates}}
        for _ in range(10)
    ]
    fields = {"model": "tiny", "precision": "fp32", "batch_size": key, "seq_len": 128, "gpus": 1}
    return {
        "key": key,
        "key_fields": fields,
        "status": "ok",
        "config": None,
        "environment": {"cpu_model": "x"},
        "metrics": {"params": 1000, "peak_rss_bytes": 2**28},
        "repeats": reps,
    }


def test_compare_a_sweep_of_24_runs(benchmark):
    rng = np.random.default_rng(1)
    base, cand = Side(["b"]), Side(["c"])
    for i in range(24):
        base.by_key[str(i)] = [_record(str(i), rng, 1.0)]
        cand.by_key[str(i)] = [_record(str(i), rng, 1.0)]
    gate_settings = settings.load()
    checks = benchmark(compare.compare, base, cand, gate_settings)
    assert len(checks) == 24 * 11  # status, 8 timed, 2 counted
