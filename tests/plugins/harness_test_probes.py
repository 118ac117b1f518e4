"""A probe defined by the test suite, registered through HARNESS_PLUGINS (harness/plugins.py): the energy of
a device's rated power over the timed window, an estimate (never shown as a measurement), as a stand-in
power model does where no counter can be read."""

from __future__ import annotations

import time
from typing import Any

from harness import probes
from harness.probes.base import Reading

RATED_W = 15.0  # the stand-in's rated power, in watts


class RatedPower:
    name = "rated-power"
    measures_energy = True
    reads_mid_window = False  # an estimate of the whole window only

    def __init__(self, watts: float):
        self.watts, self._t0 = watts, None

    def begin(self) -> None:
        self._t0 = time.perf_counter()

    def read(self) -> Reading | None:
        return None

    def end(self) -> Reading:
        window_s = time.perf_counter() - self._t0
        joules = self.watts * window_s
        component = {
            "name": f"rated power {self.watts:g} W",
            "covers": "test stand-in device",
            "method": "estimated",
            "energy_j": joules,
            "avg_power_w": self.watts,
            "window_s": window_s,
        }
        return Reading(self.name, energy_j=joules, components=(component,))

    def close(self) -> None:
        pass


@probes.register
def rated_power(config: dict[str, Any], device: Any, place: Any) -> RatedPower | None:
    """On every run that measures energy."""
    return RatedPower(RATED_W) if config["energy"]["enabled"] else None
