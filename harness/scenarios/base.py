"""The scenario interface: what is timed and how, and the typed record of what it measured.

A scenario declares the backend capabilities it needs, how it takes its precision, how its ranks
combine, and the metric names it writes (each must be in harness.metrics). The worker gives it a
RunContext and gets back a Measured; it never branches on a scenario's name.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

REPLICAS, DATA_PARALLEL = "replicas", "data_parallel"  # how ranks combine (Scenario.parallel)


@dataclass(frozen=True)
class RunContext:
    """Everything a scenario runs with: built and transformed by the worker before it is called."""

    config: Mapping[str, Any]
    backend: Any  # harness.backends.base.Backend, model loaded and transformed
    model_facts: Mapping[str, Any]  # backend.describe() before the transforms (params, shapes)
    device: Any  # harness.hardware.Device
    place: Any  # harness.distributed.Place
    timer: Any  # harness.probes.timing timer
    probes: Any  # harness.probes.ProbeSet: begin/end it around the timed window
    runtime: Mapping[str, Any]  # from the transforms (e.g. autocast_dtype)
    energy_now: Callable[[], float | None] | None  # joules since probes.begin(), or None
    run_dir: Path | None = None  # the run's folder (where a scenario may leave logs: a started server's)


@dataclass(frozen=True)
class Phase:
    """A part of the work whose FLOP rate gives an MFU figure: `mfu_<name>`."""

    name: str
    tok_per_s: float | None
    flop_per_token: float | None
    devices: int  # the devices that produced tok_per_s (MFU is per device)


@dataclass
class Measured:
    """A scenario's figures for one rank: metrics (names with units), repeats (the gate's samples)."""

    metrics: dict[str, Any]
    repeats: list[dict[str, Any]]
    timed_window_s: float
    phases: list[Phase]
    units: dict[str, float]  # work done in the window, for energy per unit: {"token": ..., "sample": ...}
    warmup_s: float | None = None
    sections: dict[str, Any] = field(default_factory=dict)  # extra result sections: quality, data
    timing: dict[str, float] = field(default_factory=dict)  # extra timing entries: quality_s


class Scenario:
    """Subclass, set the class attributes, implement run(); register with harness.scenarios.register."""

    name: ClassVar[str]
    requires: ClassVar[frozenset[str]]  # backend capabilities (harness.backends.base)
    precision_mode: ClassVar[str]  # harness.transforms.precision WEIGHTS or AUTOCAST
    parallel: ClassVar[str] = REPLICAS  # REPLICAS: each rank serves its own load; DATA_PARALLEL: DDP
    writes: ClassVar[tuple[str, ...]] = ()  # metric names in result.metrics and repeats (harness.metrics)
    summed_over_ranks: ClassVar[tuple[str, ...]] = ()  # REPLICAS: throughputs that add up over ranks
    repeat_cost: ClassVar[tuple[str, str] | None] = None  # (repeat rate key, repeat cost key) for pricing

    def backend(self, config: Mapping[str, Any]) -> str:
        """The backend that holds the model for this run (harness.backends); checked against `requires`."""
        from harness.backends import DEFAULT

        return DEFAULT

    def model_config(self, config: Mapping[str, Any]) -> dict[str, Any]:
        """The model node the backend builds: the preset, or (model.weights=trained) its cached checkpoint."""
        from harness import checkpoints

        return checkpoints.model_config(config)

    def repeats_figure(self, config: Mapping[str, Any]) -> str | None:
        """The per-repeat figure `repeats=auto` watches (harness.adaptive); None: this scenario's repeats are
        not independent windows it can add one at a time, and repeats=auto is refused (harness.config)."""
        return None

    def run(self, ctx: RunContext) -> Measured:
        raise NotImplementedError

    def price(self, cost: Mapping[str, Any], metrics: Mapping[str, Any], timing: Mapping[str, float]) -> dict:
        """Scenario-specific cost figures added to the cost section (none by default)."""
        return {}

    def finish(self, sections: dict[str, Any], config: Mapping[str, Any]) -> None:
        """Last, once metrics, energy and cost are in `sections`: figures that need them all. Raising here
        ends the run with that status and reason, its figures kept (none by default)."""
