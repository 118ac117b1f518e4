"""Synthetic result files for report tests: real records (results.make_result), made-up figures."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from harness import cost, energy, interference, reproduce, results

ENV = {"hostname": "test-host", "cpu_model": "Test CPU", "packages": {"torch": "2.13.0+cpu", "harness": "0.1.0"}}


def config(**over: Any) -> dict[str, Any]:
    """A resolved config as a run records it: the shipped defaults, tiny model, fp32; `over` by dotted key
    with `__` for the dot (model__name="small")."""
    cfg = copy.deepcopy(reproduce._defaults())
    cfg["model"] = {**cfg["model"], **reproduce._preset("model", "tiny")}
    cfg["precision"] = {"name": "fp32"}
    cfg["workload"]["name"] = "inference"
    cfg["sweep"] = "synthetic"
    for key, value in over.items():
        node, *rest = key.split("__")
        if rest:
            cfg[node][rest[0]] = value
        else:
            cfg[node] = value
    return cfg


def dist(p50: float, p99: float, n: int = 20) -> dict[str, float]:
    return {"n": n, "p50": p50, "p90": (p50 + p99) / 2, "p99": p99, "mean": p50, "stdev": 0.0, "min": p50, "max": p99}


def result(
    precision: str = "fp32",
    batch_size: int = 1,
    tok_s: float | None = 100.0,
    p99_s: float = 0.1,
    peak_bytes: int = 100 * 2**20,
    agreement: float | None = 1.0,
    status: str = "ok",
    reason: str | None = None,
    quality: dict | None = None,
    cost: dict | None = None,
    energy: dict | None = None,
    **over: Any,
) -> dict[str, Any]:
    """One result record; `agreement` None ⇒ quality not measured."""
    cfg = config(precision={"name": precision}, batch_size=batch_size, **over)
    metrics = {}
    if status == "ok":
        metrics = {
            "decode_tok_per_s": tok_s,
            "e2e_tok_per_s": tok_s,
            "request_latency_s": dist(p99_s / 2, p99_s),
            "peak_rss_bytes": peak_bytes,
            "timing_method": "perf_counter",
        }
    if quality is None and agreement is not None and status == "ok":
        quality = {
            "status": "ok",
            "next_token_agreement": agreement,
            "kl_divergence_nats_mean": 0.0 if agreement == 1 else 1e-5,
            "relative_quality": agreement,
            "floor": cfg["quality"]["floor"],
            "passes_floor": agreement >= cfg["quality"]["floor"],
        }
    return results.make_result(
        cfg, status, reason, ENV, metrics=metrics, quality=quality, cost=cost, energy=energy, repeats=[{}, {}]
    )


def write(root: Path, sweep: str, records: list[dict[str, Any]]) -> Path:
    """results/<sweep>/<run>/result.json for each record; returns the sweep folder."""
    sweep_dir = Path(root) / sweep
    for i, record in enumerate(records):
        results.write_atomic(sweep_dir / f"{i:03d}-{results.run_slug(record['config'])}" / results.RESULT_FILE, record)
    return sweep_dir


def held_out(loss: float, accuracy: float, ratio: float, half: float, verdict: str, tokens: int = 4096) -> dict:
    """A quality section as harness.quality writes it (held-out metrics, intervals, verdict), made-up figures."""
    q = {
        "status": "ok",
        "weights": "trained",
        "quality_meaningful": True,
        "floor": 0.99,
        "eval_tokens": tokens,
        "loss_nats": loss,
        "loss_nats_lo": loss - 0.05,
        "loss_nats_hi": loss + 0.05,
        "accuracy": accuracy,
        "accuracy_lo": accuracy - 0.01,
        "accuracy_hi": accuracy + 0.01,
        "next_token_agreement": 0.99,
        "kl_divergence_nats_mean": 1e-3,
        "relative_quality": ratio,
        "verdict": verdict,
        "passes_floor": verdict != "fail",
    }
    for name in ("accuracy_ratio", "perplexity_ratio"):
        q.update({name: ratio, f"{name}_lo": ratio - half, f"{name}_hi": ratio + half})
    if verdict == "inconclusive":
        q["tokens_to_decide_estimate"] = 16384
    return q


def priced(tok_s: float, joules: float | None = None, usd_per_hour: float = 2.5) -> tuple[dict, dict | None]:
    """The cost and energy sections the worker writes (harness.cost, harness.energy), for made-up figures."""
    price = {"usd_per_hour": usd_per_hour, "unit": "device", "provider": "test-cloud", "as_of": "2026-11-01",
             "source": "price list", "how": "user (hardware.usd_per_hour)"}  # fmt: skip
    energy_cfg = {"enabled": True, "pue": 1.0, "pue_source": "test", "carbon_intensity_g_per_kwh": 400.0,
                  "carbon_intensity_source": "test"}  # fmt: skip
    timing = {"timed_window_s": 2.0, "run_wall_s": 5.0}
    rates = {"prefill_tok_per_s": 10 * tok_s, "decode_tok_per_s": tok_s, "e2e_tok_per_s": tok_s}
    energy_sec = None
    if joules is not None:
        components = [{"name": "cpu", "covers": "cpu-package", "method": "estimated", "energy_j": joules,
                       "avg_power_w": joules / 2.0, "window_s": 2.0, "flags": []}]  # fmt: skip
        energy_sec = energy.account(components, 2.0, {"token": 2.0 * tok_s}, energy_cfg)
    return cost.compute(price, 1, timing, rates, energy_sec, {"mode": "cloud"}), energy_sec


def disturb(record: dict[str, Any], share: float = 0.6) -> dict[str, Any]:
    """The record as measured beside other load: an interference section over the threshold, and its warning."""
    from harness.interference import Thresholds

    sec = interference.section([{"cpu": {"n_cores": 2, "other_cpu_share": share, "steal_share": 0.0}}], Thresholds())
    record["interference"] = sec
    record["warnings"] = [*record.get("warnings", []), interference.warning(sec)]
    return record
