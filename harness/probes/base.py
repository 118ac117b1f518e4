"""The probe protocol: begin / read (mid-window, may be None) / end → a typed Reading / close.

A probe watches the timed window (memory peaks, energy counters, a GPU's memory use). Every probe is
closed whatever happens (close() is safe twice and stops threads), so a failed run ends cleanly.
Units are converted once, inside the probe: a Reading's names carry their units.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True)
class Reading:
    """What one probe saw. `values` are metrics (names with units: `peak_rss_bytes`); energy probes give
    `energy_j` (joules since begin, None when unknown) and, at end, their `components`
    (docs/results.md, energy.components)."""

    probe: str
    values: Mapping[str, Any] = field(default_factory=dict)
    energy_j: float | None = None
    components: tuple[Mapping[str, Any], ...] = ()
    sections: Mapping[str, Any] = field(default_factory=dict)  # result parts besides metrics (interference)


class Probe(Protocol):
    name: str
    measures_energy: bool  # its Reading carries energy (summed by ProbeSet.energy_now)
    reads_mid_window: bool  # read() can answer before end() (counters); False: read() is always None

    def begin(self) -> None: ...
    def read(self) -> Reading | None: ...
    def end(self) -> Reading: ...
    def close(self) -> None: ...


class ProbeSet:
    """The probes of one run, begun and ended together; their readings merged for the worker."""

    def __init__(self, probes: Sequence[Probe]):
        self.probes = list(probes)
        self.readings: list[Reading] = []

    def begin(self) -> None:
        for p in self.probes:
            p.begin()

    def end(self) -> list[Reading]:
        self.readings = [p.end() for p in self.probes]
        return self.readings

    def close(self) -> None:
        for p in self.probes:
            p.close()

    def settled(self) -> bool:
        """During the warm-up: whether every probe that waits for something (a GPU's clock: harness.probes.clocks)
        is ready for the window. Call after each warm-up iteration; it says when to stop (a cap included)."""
        return all(p.settled() for p in self.probes if hasattr(p, "settled"))

    def energy_now(self) -> Callable[[], float | None] | None:
        """Joules since begin summed over the energy probes (None when one cannot say at that moment);
        None itself when there is no energy probe or one can never be read mid-window (an estimate)."""
        energy = [p for p in self.probes if p.measures_energy]
        if not energy or not all(p.reads_mid_window for p in energy):
            return None

        def joules() -> float | None:
            values = [r.energy_j if r is not None else None for r in (p.read() for p in energy)]
            return None if any(v is None for v in values) else sum(values)  # type: ignore[arg-type]

        return joules

    def values(self) -> dict[str, Any]:
        """Every reading's metrics, merged (probes measure disjoint names)."""
        out: dict[str, Any] = {}
        for r in self.readings:
            out.update(r.values)
        return out

    def sections(self) -> dict[str, Any]:
        """Every reading's parts of the result besides metrics, by name (the interference probe's)."""
        out: dict[str, Any] = {}
        for r in self.readings:
            out.update(r.sections)
        return out

    def components(self) -> list[dict[str, Any]]:
        """Every energy component of the window, for harness.energy.account."""
        return [dict(c) for r in self.readings for c in r.components]
