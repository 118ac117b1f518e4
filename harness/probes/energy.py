"""Energy over the timed window, per component, each labelled with how it was obtained and what it covers.

- GPU board: NVML's total-energy counter; where the board has none, NVML power sampled and integrated.
- CPU package (+ DRAM): RAPL counters under /sys/class/powercap when readable.
- Otherwise CPU and RAM: codecarbon's offline estimate, labelled `estimated`.
Units are converted once, here: mJ and uJ become J.

Every probe follows harness.probes.base: begin() / read() / end() -> Reading (its components) / close();
close() is safe to call twice and stops any thread, so a failed run ends cleanly. Probes with a cumulative
counter (NVML's energy counter, RAPL) answer read() mid-window: joules since begin(), cheap enough to read
around each repeat, which gives the gate per-repeat energy samples. Sampled power reads None; codecarbon's
estimate cannot be read mid-window (it integrates over the whole window), so ProbeSet.energy_now is None
with it.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

from harness.probes.base import Reading

MJ_TO_J = 1e-3
UJ_TO_J = 1e-6
KWH_TO_J = 3.6e6
# NVML's energy counter updates about every 100 ms; windows under ~1-2 s are unreliable (team reference).
SHORT_WINDOW_S = 1.0


def _reading(probe: str, components: list[dict]) -> Reading:
    known = [c["energy_j"] for c in components]
    total = sum(known) if components and all(e is not None for e in known) else None
    return Reading(probe, energy_j=total, components=tuple(components))


def _component(name: str, covers: str, method: str, energy_j: float | None, window_s: float, **extra: Any) -> dict:
    return {
        "name": name,
        "covers": covers,
        "method": method,
        "energy_j": energy_j,
        "avg_power_w": energy_j / window_s if energy_j is not None and window_s > 0 else None,
        "window_s": window_s,
        **extra,
    }


class NvmlEnergy:
    """One GPU: the total-energy counter, or sampled power where the counter is missing."""

    name = "nvml-energy"
    measures_energy = True
    reads_mid_window = True

    def __init__(self, gpu: Any, name: str, sample_interval_s: float = 0.1):
        self._gpu, self._name, self._interval = gpu, name, sample_interval_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._samples: list[tuple[float, float]] = []  # (perf_counter s, watts)

    def _sample(self) -> None:
        while not self._stop.is_set():
            mw = self._gpu.power_mw()
            if mw is not None:
                self._samples.append((time.perf_counter(), mw * MJ_TO_J))  # mW -> W
            self._stop.wait(self._interval)

    def begin(self) -> None:
        self._t0 = time.perf_counter()
        self._e0 = self._gpu.energy_mj()
        if self._e0 is None:
            self._thread = threading.Thread(target=self._sample, name="nvml-power", daemon=True)
            self._thread.start()

    def read_j(self) -> float | None:
        """Joules since begin() from the counter; None without a counter or when it did not advance."""
        if self._e0 is None:
            return None
        e1 = self._gpu.energy_mj()
        return (e1 - self._e0) * MJ_TO_J if e1 is not None and e1 > self._e0 else None

    def read(self) -> Reading:
        return Reading(self.name, energy_j=self.read_j())

    def end(self) -> Reading:
        return _reading(self.name, self._end())

    def _end(self) -> list[dict]:
        e1 = self._gpu.energy_mj() if self._e0 is not None else None
        others_on_gpu = self._gpu.memory_used().get("nvml_other_processes")
        window_s = time.perf_counter() - self._t0
        self.close()
        flags = []
        if window_s < SHORT_WINDOW_S:
            flags.append(f"short-window: {window_s:.2f} s is below ~{SHORT_WINDOW_S:g} s, the NVML reading is coarse")
        if others_on_gpu:
            flags.append(f"shared-gpu: {others_on_gpu} other process(es) used this GPU; the board figure includes them")
        if self._e0 is not None:
            if e1 is None or e1 < self._e0:
                flags.append("counter-invalid: the energy counter could not be read again or went backwards")
                energy = None
            elif e1 == self._e0:
                flags.append("zero-reading: the energy counter did not advance during the window")
                energy = None
            else:
                energy = (e1 - self._e0) * MJ_TO_J
            return [_component(self._name, "gpu-board", "nvml-counter", energy, window_s, flags=flags)]
        samples = self._samples
        if len(samples) < 2:
            flags.append("too-few-samples: fewer than 2 power readings in the window")
            energy = None
        else:  # trapezoids between readings, held flat to the window's edges
            energy = sum((t1 - t0) * (p0 + p1) / 2 for (t0, p0), (t1, p1) in zip(samples, samples[1:], strict=False))
            energy += samples[0][1] * (samples[0][0] - self._t0) + samples[-1][1] * (
                self._t0 + window_s - samples[-1][0]
            )
            if all(p == 0 for _, p in samples):
                flags.append("zero-reading: every power reading was 0 W")
                energy = None
        return [
            _component(self._name, "gpu-board", "sampled-power", energy, window_s, samples=len(samples), flags=flags)
        ]

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
            self._thread = None


def rapl_zones(root: Path = Path("/sys/class/powercap")) -> list[tuple[str, Path]]:
    """Readable RAPL zones: (label, folder) for each CPU package and its DRAM sub-zone."""
    zones = []
    for folder in sorted(root.glob("intel-rapl:*")):
        try:
            label = (folder / "name").read_text().strip()
            int((folder / "energy_uj").read_text())
        except (OSError, ValueError):
            continue  # not readable (RAPL needs root on recent kernels): not usable
        if label.startswith("package") or label == "dram":
            zones.append((label, folder))
    return zones


class RaplEnergy:
    """CPU package and DRAM energy from the RAPL counters (wrap-around handled)."""

    name = "rapl"
    measures_energy = True
    reads_mid_window = True

    def __init__(self, zones: list[tuple[str, Path]]):
        self._zones = zones

    @staticmethod
    def _read(folder: Path) -> tuple[int, int]:
        energy = int((folder / "energy_uj").read_text())
        try:
            wrap = int((folder / "max_energy_range_uj").read_text())
        except (OSError, ValueError):
            wrap = 0
        return energy, wrap

    def begin(self) -> None:
        self._t0 = time.perf_counter()
        self._start = [self._read(f)[0] for _, f in self._zones]

    @staticmethod
    def _delta(e0: int, e1: int, wrap: int) -> int:
        return e1 - e0 if e1 >= e0 else e1 + wrap - e0  # the counter wrapped once

    def read_j(self) -> float | None:
        """Joules since begin() over every zone."""
        total = 0
        for (_, folder), e0 in zip(self._zones, self._start, strict=True):
            e1, wrap = self._read(folder)
            total += self._delta(e0, e1, wrap)
        return total * UJ_TO_J

    def read(self) -> Reading:
        return Reading(self.name, energy_j=self.read_j())

    def end(self) -> Reading:
        return _reading(self.name, self._end())

    def _end(self) -> list[dict]:
        window_s = time.perf_counter() - self._t0
        out = []
        for (label, folder), e0 in zip(self._zones, self._start, strict=True):
            e1, wrap = self._read(folder)
            delta = self._delta(e0, e1, wrap)
            covers = "dram" if label == "dram" else "cpu-package"
            out.append(_component(f"rapl:{folder.name}:{label}", covers, "rapl", delta * UJ_TO_J, window_s, flags=[]))
        return out

    def close(self) -> None:
        pass


class CodecarbonEnergy:
    """codecarbon's offline estimate for CPU and RAM (no network, no files). Labelled `estimated`."""

    name = "codecarbon"
    measures_energy = True
    reads_mid_window = False

    # codecarbon (3.x) samples CPU load every second in its own thread whatever this is, and at stop() it
    # integrates those samples, time-weighted, over the whole window: its periodic measurement adds nothing
    # to the estimate for a run, only a second wake-up per interval. So: rarely.
    def __init__(self, measure_power_secs: float = 60.0, name_prefix: str = ""):
        self._measure_power_secs = measure_power_secs
        self._prefix = name_prefix
        self._tracker = None
        self._error: str | None = None

    def begin(self) -> None:
        try:
            import logging

            from codecarbon import OfflineEmissionsTracker

            logging.getLogger("codecarbon").setLevel(logging.ERROR)
            self._tracker = OfflineEmissionsTracker(
                country_iso_code="USA",  # only codecarbon's own CO2 figure uses it; ours uses energy.* inputs
                output_methods=[],  # writes no files, calls no API
                log_level="error",
                tracking_mode="process",
                measure_power_secs=self._measure_power_secs,
                pue=1.0,  # PUE is applied once, by the harness
            )
            self._tracker.start()  # ~1-2 s of hardware probing; codecarbon's own clock starts after it
        except Exception as exc:  # codecarbon missing or failing: say so, never a zero
            self._error = f"codecarbon could not start: {type(exc).__name__}: {exc}"
            self._tracker = None
        self._t0 = time.perf_counter()

    def read(self) -> Reading | None:
        return None  # the estimate exists only once codecarbon stops

    def end(self) -> Reading:
        return _reading(self.name, self._end())

    def _end(self) -> list[dict]:
        window_s = time.perf_counter() - self._t0
        data = None
        if self._tracker is not None:
            try:
                emissions = self._tracker.stop()  # codecarbon swallows its own errors and returns None
                data = self._tracker.final_emissions_data if emissions is not None else None
                if data is None:
                    self._error = "codecarbon returned no data (it swallowed an internal error)"
            except Exception as exc:
                self._error = f"codecarbon failed: {type(exc).__name__}: {exc}"
            self._tracker = None
        if data is None:
            return [
                _component(
                    f"{self._prefix}cpu+ram", "cpu-package+ram", "estimated", None, window_s, flags=[self._error]
                )
            ]
        estimator = f"codecarbon {data.codecarbon_version} offline, tracking_mode=process"
        window_s = data.duration  # the span codecarbon integrated over
        return [
            _component(
                f"{self._prefix}cpu",
                "cpu-package",
                "estimated",
                data.cpu_energy * KWH_TO_J,
                window_s,
                estimator=f"{estimator}: CPU power from load x TDP or a constant ({data.cpu_model})",
                flags=[],
            ),
            _component(
                f"{self._prefix}ram",
                "ram",
                "estimated",
                data.ram_energy * KWH_TO_J,
                window_s,
                estimator=f"{estimator}: RAM power from installed memory",
                flags=[],
            ),
        ]

    def close(self) -> None:
        if self._tracker is not None:
            try:
                self._tracker.stop()
            except Exception:
                pass
            self._tracker = None


def between(before: float | None, after: float | None) -> float | None:
    """Joules between two ProbeSet.energy_now() values; None when either is unknown or the counter did not advance."""
    return after - before if before is not None and after is not None and after > before else None
