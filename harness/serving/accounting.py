"""Dollars and joules per 1 M output tokens at the measured load (or at capacity), from the run's cost and
energy sections: $/1M = USD per second of the devices / output tokens per second x 1e6."""

from __future__ import annotations

from typing import Any

from harness.serving import scenario


def finish(sections: dict[str, Any], config: dict[str, Any]) -> None:
    """Add the per-1M-output-token figures to metrics and cost; then raise ServingFailed if the run fell short."""
    m, serving = sections["metrics"], sections["serving"]
    at = "capacity" if serving.get("capacity") else "measured load"
    rate = m.get("output_tok_per_s")
    cost = sections.get("cost")
    usd = cost["usd_per_s"] / rate * 1e6 if cost is not None and rate else None
    m["usd_per_1m_output_tokens"] = usd
    if cost is not None:
        cost.update(usd_per_1m_output_tokens=usd, usd_per_1m_output_tokens_at=at)
    if at == "measured load":
        energy = sections.get("energy") or {}
        per_token = energy.get("j_per_token")  # units["token"] = output tokens of the window
        m["j_per_1m_output_tokens"] = per_token * 1e6 if per_token is not None else None
        m["j_per_1m_output_tokens_method"] = energy.get("total_method")
    elif m.get("j_per_1m_output_tokens") is not None:  # the capacity probe's own, from a counter (NVML, RAPL)
        m["j_per_1m_output_tokens_method"] = "measured (counter around the capacity probe)"
    else:  # no counter reads one probe: the search's average power over the capacity probe's window
        energy = sections.get("energy") or {}
        power, tokens = energy.get("avg_power_w"), m.get("output_tokens")
        m["j_per_1m_output_tokens"] = power * m["window_s"] / tokens * 1e6 if power is not None and tokens else None
        m["j_per_1m_output_tokens_method"] = (
            f"{energy.get('total_method')}: the search's average power x the capacity probe's window"
            if m["j_per_1m_output_tokens"] is not None
            else None
        )
    m["per_1m_output_tokens_at"] = at
    m["slo"] = dict(serving["slo"])  # the bounds goodput was counted against (report: slo_ttft_ms, ...)
    scenario.check(m, serving, config["serving"])
