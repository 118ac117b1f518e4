"""After the timed window: merge ranks, then MFU, energy and cost — pure functions of the measured figures.

Every function takes typed records (harness.scenarios.base.Measured, Phase) or plain figures and
returns the result's sections; nothing here times, reads hardware or writes files.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from harness import cost, energy
from harness.scenarios.base import DATA_PARALLEL, Phase

# per-rank figures kept in metrics.ranks (docs/results.md)
RANK_FIGURES = (
    "prefill_tok_per_s",
    "decode_tok_per_s",
    "e2e_tok_per_s",
    "samples_per_s",
    "train_tok_per_s",
    "peak_rss_bytes",
    "cuda_max_allocated_bytes",
    "cuda_max_reserved_bytes",
    "threads",
)
RANK_MEDIANS = ("step_time_s", "decode_latency_s", "prefill_latency_s")
# metrics the worker adds to every scenario's (probes, the model, the peak, the clock); with each
# scenario's `writes`, every name here is in harness.metrics (tests/test_metrics.py)
COMMON_METRICS = (
    *("peak_rss_bytes", "peak_rss_scope", "process_peak_rss_bytes"),  # probes.memory.CpuMemory
    *("cuda_max_allocated_bytes", "cuda_max_reserved_bytes"),  # probes.memory.CudaMemory
    *("nvml_used_bytes", "nvml_process_used_bytes", "nvml_other_processes"),  # probes.memory.NvmlMemory
    *("peak_flop_per_s", "peak_source", "calibration_flop_per_s"),  # catalog or calibrate
    # catalog or calibrate, for scenarios that write mbu_decode (harness.traffic)
    *("peak_bandwidth_bytes_per_s", "bandwidth_source", "calibration_bandwidth_bytes_per_s"),
    *("params", "params_embedding", "params_non_embedding", "matmul_params", "params_nonzero"),  # describe()
    *("threads", "timing_method", "ranks"),
    "compile_s",  # backend=compile (priced in the cost section as compile_usd)
)


def mfu(phases: Sequence[Phase], peak_flop_per_s: float | None) -> dict[str, float | None]:
    """achieved_flop_per_s_<phase> and mfu_<phase>: achieved / peak for this dtype (PaLM, appendix B), per
    device; null when either is unknown."""
    out: dict[str, float | None] = {}
    for p in phases:
        achieved = p.flop_per_token * p.tok_per_s if p.flop_per_token and p.tok_per_s else None
        out[f"achieved_flop_per_s_{p.name}"] = achieved
        out[f"mfu_{p.name}"] = achieved / (peak_flop_per_s * p.devices) if achieved and peak_flop_per_s else None
    return out


def mbu(metrics: Mapping[str, Any], peak_bytes_per_s: float | None) -> dict[str, Any]:
    """achieved_bytes_per_s_decode and mbu_decode from the scenario's bytes per decode step and steps/s
    (harness.traffic), per device, as MFU is; null where either or the peak is unknown."""
    from harness import traffic

    return traffic.mbu(metrics.get("bytes_per_decode_step"), metrics.get("decode_steps_per_s"), peak_bytes_per_s)


def rank_summary(metrics: Mapping[str, Any]) -> dict[str, Any]:
    """The figures of one rank that rank 0 keeps in metrics.ranks."""
    out = {k: metrics[k] for k in RANK_FIGURES if k in metrics}
    for k in RANK_MEDIANS:
        if k in metrics:
            out[f"{k}_p50"] = metrics[k]["p50"]
    return out


def merge_ranks(
    metrics: dict[str, Any], units: dict[str, float], ranks: list[dict[str, Any]], parallel: str, summed: Sequence[str]
) -> dict[str, float]:
    """Rank 0's metrics gain `ranks`; replicas add their throughputs (`summed`) and work units up.
    Returns the units of the whole run. DDP figures are already global (synchronous steps)."""
    if len(ranks) <= 1:
        return units
    metrics["ranks"] = [r["metrics"] | {"rank": r["rank"]} for r in ranks]
    if parallel == DATA_PARALLEL:
        return units
    for k in summed:
        values = [r["metrics"].get(k) for r in ranks]
        metrics[k] = sum(values) if all(v is not None for v in values) else None
    return {k: v * len(ranks) for k, v in units.items()}


def energy_section(
    components: list[dict[str, Any]], window_s: float, units: Mapping[str, float], energy_cfg: Mapping[str, Any]
) -> dict[str, Any] | None:
    return energy.account(components, window_s, units, energy_cfg) if energy_cfg["enabled"] else None


def cost_section(
    price: Mapping[str, Any] | None,
    devices: int,
    timing: Mapping[str, float],
    metrics: Mapping[str, Any],
    energy_sec: Mapping[str, Any] | None,
    cost_cfg: Mapping[str, Any],
    scenario: Any,
) -> dict[str, Any] | None:
    """The cost section: harness.cost over the run, plus the scenario's own figures (cost to target)."""
    out = cost.compute(price, devices, timing, metrics, energy_sec, cost_cfg)
    if out is not None:
        out.update(scenario.price(out, metrics, timing))
    return out


def price_repeats(
    repeats: list[dict[str, Any]], cost_sec: Mapping[str, Any] | None, scenario: Any, pue: float | None, ranks: int
) -> None:
    """Each repeat priced on its own (the gate's cost samples), as the run is priced."""
    if scenario.repeat_cost is None:
        return
    rate_key, cost_key = scenario.repeat_cost
    scale = getattr(scenario, "repeat_cost_scale", 1e6)  # units per price: 1e6 tokens, or 1e3 examples (classify)
    for rep in repeats:
        rep[cost_key] = cost.per_repeat(cost_sec, rep, rate_key, pue, ranks, scale)
