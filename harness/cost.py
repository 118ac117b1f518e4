"""Dollar cost of a run from its measured time (and energy), with every price input written beside it.

cloud mode: device-hours x USD per device-hour (rental).
onprem mode: that, plus energy x USD/kWh x PUE.
No price ⇒ no cost section (null), never an invented number.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

J_PER_KWH = 3.6e6
S_PER_HOUR = 3600.0


def _per(usd_per_s: float, rate: float | None, scale: float) -> float | None:
    """USD per `scale` units produced at `rate` units per second."""
    return usd_per_s / rate * scale if rate else None


def compute(
    price: Mapping[str, Any] | None,
    devices: int,
    timing: Mapping[str, float],
    rates: Mapping[str, float | None],
    energy: Mapping[str, Any] | None,
    cost_cfg: Mapping[str, Any],
) -> dict[str, Any] | None:
    """The result's `cost` section.

    `rates` are throughputs of the timed window: prefill_tok_per_s, decode_tok_per_s, e2e_tok_per_s,
    samples_per_s (per second, whole run: all devices). `timing` holds timed_window_s and run_wall_s.
    """
    if price is None:
        return None
    device_usd_per_s = price["usd_per_hour"] * devices / S_PER_HOUR
    usd_per_s = device_usd_per_s
    out: dict[str, Any] = {
        "mode": cost_cfg["mode"],
        "price": dict(price),
        "devices": devices,
        "device_usd_per_s": device_usd_per_s,
    }
    if cost_cfg["mode"] == "onprem":
        power = (energy or {}).get("avg_power_w")
        pue = (energy or {}).get("pue")
        if power is None:
            out["warning"] = "onprem mode without an energy figure: the energy share of the cost is missing"
            out["energy_usd_per_s"] = None
        else:
            out["energy_usd_per_s"] = power / J_PER_KWH * cost_cfg["usd_per_kwh"] * pue
            usd_per_s += out["energy_usd_per_s"]
            out["energy_method"] = energy.get("total_method")
        out["usd_per_kwh"] = cost_cfg["usd_per_kwh"]
        out["usd_per_kwh_source"] = cost_cfg["usd_per_kwh_source"]
    out["usd_per_s"] = usd_per_s
    out["timed_window_usd"] = usd_per_s * timing["timed_window_s"]
    # the whole run rents the devices from process start to the end; energy is only measured in the window
    out["run_usd"] = device_usd_per_s * timing["run_wall_s"] + (usd_per_s - device_usd_per_s) * timing["timed_window_s"]
    if "compile_s" in timing:  # backend=compile: the devices rented while compiling (already inside run_usd)
        out["compile_usd"] = device_usd_per_s * timing["compile_s"]
    if "train_tok_per_s" in rates:  # training
        out["usd_per_1m_tokens_train"] = _per(usd_per_s, rates["train_tok_per_s"], 1e6)
    else:  # inference
        out["usd_per_1m_tokens_prefill"] = _per(usd_per_s, rates.get("prefill_tok_per_s"), 1e6)
        out["usd_per_1m_tokens_decode"] = _per(usd_per_s, rates.get("decode_tok_per_s"), 1e6)
        out["usd_per_1m_tokens_generated"] = _per(usd_per_s, rates.get("e2e_tok_per_s"), 1e6)
    out["usd_per_1k_samples"] = _per(usd_per_s, rates.get("samples_per_s"), 1e3)
    return out


def per_repeat(
    cost: Mapping[str, Any] | None,
    repeat: Mapping[str, Any],
    rate_key: str,
    pue: float | None,
    ranks: int = 1,
    scale: float = 1e6,
) -> float | None:
    """USD per `scale` units for one repeat (the gate's cost samples), priced as the run: the devices' rate,
    plus in onprem mode the repeat's own energy (null where the repeat has no energy figure). With several
    ranks the repeat is rank 0's, and so is the price: an equal share (1/ranks) of the devices."""
    if cost is None:
        return None
    usd_per_s = cost["device_usd_per_s"] / ranks
    if cost["mode"] == "onprem":
        energy, seconds = repeat.get("energy_j"), repeat.get("wall_s")
        if energy is None or not seconds or pue is None:
            return None
        usd_per_s += energy / seconds / J_PER_KWH * cost["usd_per_kwh"] * pue
    return _per(usd_per_s, repeat.get(rate_key), scale)


def training(usd_per_s: float, metrics: Mapping[str, Any], timing: Mapping[str, float]) -> dict[str, Any]:
    """Training figures: the training loop's cost, and the cost to reach the target eval loss (MLPerf's
    time-to-train, priced) — null, with the reason, when the target was not reached."""
    target = metrics.get("target") or {}
    out: dict[str, Any] = {"training_usd": usd_per_s * timing["timed_window_s"]}
    if target.get("target_eval_loss") is not None:
        out["usd_to_target"] = usd_per_s * target["time_s"] if target.get("reached") else None
    return out


def device_count(price_unit: str, device_type: str, gpus: int, vcpus: int, nodes: int = 1) -> int:
    """How many priced units a run rents, on all its nodes: GPUs (gpus per node x nodes, the world
    size), one whole CPU machine per node, or every node's vCPUs (`vcpus` per node)."""
    if device_type == "cuda":
        return gpus * nodes
    return (vcpus if price_unit == "vcpu" else 1) * nodes
