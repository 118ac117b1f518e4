"""A GPU's clocks over the timed window, and a warm-up that waits for them: SM and memory clocks (start, end, min),
the performance state, and NVML's clock-event ("throttle") reasons, read through harness.probes.nvml.

Why: a GPU left idle runs slow (seen on an H200: SM clock 345 MHz idle, 1980 MHz only under load), and one held
back by its power cap or heat runs slower than its figures elsewhere. A window measured at such clocks is not
comparable with one at full clock; harness.interference flags it `disturbed`, naming why.
Docs: docs/results.md (`interference.gpus[].clocks`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

# nvmlClocksEventReason* bits (pynvml, nvml.h; the older nvmlClocksThrottleReason* have the same values)
EVENT_REASONS = {
    0x1: "gpu_idle",
    0x2: "applications_clocks_setting",
    0x4: "sw_power_cap",
    0x8: "hw_slowdown",
    0x10: "sync_boost",
    0x20: "sw_thermal_slowdown",
    0x40: "hw_thermal_slowdown",
    0x80: "hw_power_brake_slowdown",
    0x100: "display_clock_setting",
}
# held back for power or heat: what makes a window `disturbed` (idle, sync boost, application clocks do not)
POWER_OR_HEAT = 0x4 | 0x8 | 0x20 | 0x40 | 0x80
STEADY_READINGS = 3  # the warm-up ends when this many SM clock readings in a row ...
STEADY_TOLERANCE = 0.02  # ... lie within this share of their highest
STEADY_SPACING_S = 0.05  # ... taken at least this far apart
WARMUP_MAX_S = 10.0  # the warm-up's extra time waiting for the clock, at most (then `until: cap`)
SAMPLE_S = 0.1  # the window's sampling interval (for the minimum clocks and the reasons seen)


def reason_names(mask: int | None) -> list[str] | None:
    """The names of the bits set in a clock-event reason mask (unknown bits as hex), or None when unread."""
    if mask is None:
        return None
    names = [name for bit, name in EVENT_REASONS.items() if mask & bit]
    rest = mask & ~sum(EVENT_REASONS)
    return names + ([f"0x{rest:x}"] if rest else [])


def steady(readings_mhz: Sequence[float], count: int = STEADY_READINGS, tolerance: float = STEADY_TOLERANCE) -> bool:
    """Whether the last `count` SM clock readings lie within `tolerance` of their highest."""
    last = list(readings_mhz)[-count:]
    return len(last) == count and max(last) > 0 and (max(last) - min(last)) <= tolerance * max(last)


class ClockWatch:
    """One GPU's clocks: `settled()` during the warm-up, then `begin()` / `end()` around the window.
    `gpu` is an open harness.probes.nvml.NvmlGpu (or a fake with `clocks()` and `max_clocks()`)."""

    def __init__(self, gpu: Any, interval_s: float = SAMPLE_S, clock: Callable[[], float] = time.monotonic):
        self._gpu, self._interval_s, self._clock = gpu, interval_s, clock
        self._warm_readings: list[tuple[float, float]] = []  # (time, SM MHz)
        self._warm_start: float | None = None
        self._warmup: dict[str, Any] = {"until": "not waited", "checks": 0, "s": 0.0, "cap_s": WARMUP_MAX_S}
        self._start: dict[str, Any] | None = None
        self._samples: list[dict[str, Any]] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def settled(self) -> bool:
        """After a warm-up iteration: True once the SM clock is steady, or unreadable, or WARMUP_MAX_S has passed
        since the first call (which of them is recorded in the window's `warmup`)."""
        now = self._clock()
        if self._warm_start is None:
            self._warm_start = now
        sm = self._gpu.clocks().get("sm_mhz")
        self._warmup["checks"] += 1
        self._warmup["s"] = now - self._warm_start
        if sm is None:
            self._warmup["until"] = "not readable"
            return True
        if not self._warm_readings or now - self._warm_readings[-1][0] >= STEADY_SPACING_S:
            self._warm_readings.append((now, float(sm)))
        self._warmup["sm_mhz"] = sm
        if steady([mhz for _, mhz in self._warm_readings]):
            self._warmup["until"] = "steady"
            return True
        if now - self._warm_start >= WARMUP_MAX_S:
            self._warmup["until"] = "cap"
            return True
        return False

    def _sample_loop(self) -> None:
        while not self._stop.wait(self._interval_s):
            self._samples.append(self._gpu.clocks())

    def begin(self) -> None:
        self._start = self._gpu.clocks()
        self._samples = [self._start]
        self._stop.clear()
        self._thread = threading.Thread(target=self._sample_loop, name="harness-gpu-clocks", daemon=True)
        self._thread.start()

    def end(self) -> dict[str, Any]:
        """The window's clocks (docs/results.md, `interference.gpus[].clocks`)."""
        self.close()
        end = self._gpu.clocks()
        samples = [*self._samples, end]
        start = self._start or end
        peak = self._gpu.max_clocks()

        def span(key: str) -> dict[str, Any]:
            values = [s[key] for s in samples if s.get(key) is not None]
            return {"start": start.get(key), "end": end.get(key), "min": min(values) if values else None}

        masks = [s["event_reasons"] for s in samples if s.get("event_reasons") is not None]
        mask = 0
        for m in masks:
            mask |= m
        pstates = [s["pstate"] for s in samples if s.get("pstate") is not None]
        return {
            "sm_mhz": span("sm_mhz"),
            "mem_mhz": span("mem_mhz"),
            "sm_max_mhz": peak.get("sm_mhz"),
            "mem_max_mhz": peak.get("mem_mhz"),
            "pstate_start": start.get("pstate"),
            "pstate_end": end.get("pstate"),
            "pstate_max": max(pstates) if pstates else None,  # P0 is the fastest: the highest number is the slowest
            "event_reasons": reason_names(mask) if masks else None,
            "event_reasons_mask": mask if masks else None,
            "samples": len(samples),
            "warmup": dict(self._warmup),
        }

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
