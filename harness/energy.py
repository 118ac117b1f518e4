"""Energy accounting for a run: totals, per-unit figures and CO2e from the measured components.

Measured and estimated joules are kept apart; the total says which it holds. Carbon intensity and PUE
are inputs (energy.* config), written beside the figures they produced.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

J_PER_KWH = 3.6e6
MEASURED = ("nvml-counter", "sampled-power", "rapl")


def account(
    components: Sequence[Mapping[str, Any]],
    window_s: float,
    units: Mapping[str, float],
    energy_cfg: Mapping[str, Any],
) -> dict[str, Any]:
    """The result's `energy` section. `units` maps a name to a count in the window, e.g.
    {"token": 1234, "sample": 40}, giving `j_per_token`, `j_per_sample`."""
    known = [c for c in components if c.get("energy_j") is not None]
    missing = [c["name"] for c in components if c.get("energy_j") is None]
    measured = sum(c["energy_j"] for c in known if c["method"] in MEASURED)
    estimated = sum(c["energy_j"] for c in known if c["method"] not in MEASURED)
    methods = {("measured" if c["method"] in MEASURED else "estimated") for c in known}
    total = measured + estimated if known else None
    pue = energy_cfg["pue"]
    intensity = energy_cfg["carbon_intensity_g_per_kwh"]
    out: dict[str, Any] = {
        "scope": "timed_window",
        "window_s": window_s,
        "total_j": total,
        "total_method": (
            "measured"
            if methods == {"measured"}
            else "estimated"
            if methods == {"estimated"}
            else "measured+estimated"
            if methods
            else None
        ),
        "measured_j": measured if any(c["method"] in MEASURED for c in known) else None,
        "estimated_j": estimated if any(c["method"] not in MEASURED for c in known) else None,
        "incomplete": missing or None,  # components that gave no figure: the total leaves them out
        "avg_power_w": total / window_s if total is not None and window_s > 0 else None,
        "kwh": total / J_PER_KWH if total is not None else None,
        "components": [dict(c) for c in components],
        "pue": pue,
        "pue_source": energy_cfg["pue_source"],
        "carbon_intensity_g_per_kwh": intensity,
        "carbon_intensity_source": energy_cfg["carbon_intensity_source"],
        # CO2e of the facility: IT energy x PUE x grid intensity
        "co2e_g": total / J_PER_KWH * pue * intensity if total is not None else None,
    }
    for unit, count in units.items():
        out[f"j_per_{unit}"] = total / count if total is not None and count else None
    return out
