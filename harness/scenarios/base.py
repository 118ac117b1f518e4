"""The scenario interface: what a workload is (`Spec`), what is timed and how (`Scenario`), and the typed
record of what it measured.

`Spec` holds what the launcher side asks of a workload without importing torch: its key fields and run
slug, the config it reads and checks, its objectives and summary columns, whether it runs on harness-trained
weights. `Scenario` adds what the worker needs: the backend capabilities, how it takes its precision, how
its ranks combine, the metric names it writes (each must be in harness.metrics) and `run`. The worker
gives it a RunContext and gets back a Measured; no module outside harness/scenarios/ (and the serving
scenario's harness/serving/) branches on a scenario's name.
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


class Spec:
    """What a workload is, declared without importing torch (the CLI, the launcher and the readers ask it).

    The defaults are those of a decode workload (inference, and any plugin scenario that says no more):
    what harness.results, harness.validation and the CLI did for a workload name they did not know."""

    name: ClassVar[str]
    # its `workload` node's schema, a dataclass of harness.scenarios.schemas (its fields, their defaults), stored as
    # `workload/<name>_schema` (harness.scenarios.store_schemas) for conf/workload/<name>.yaml's defaults list;
    # an override of a field it lacks is refused naming the workloads that have it (harness.cli). None: the
    # scenario runs on another's node (`workload.name=<it>` over conf/workload/inference.yaml, say)
    schema: ClassVar[Any] = None
    # config keys outside `workload` only this workload reads (dotted); another shipped workload's run refuses
    # them (harness.cli). None: not declared (a plugin scenario reads what it likes), nothing is refused.
    only_keys: ClassVar[tuple[str, ...] | None] = None
    reads_data: ClassVar[bool] = False  # data.* is its own input (else only the quality text: unused with it off)
    # top-level config sections this workload added after results existed: out of every other one's hash
    added_sections: ClassVar[tuple[str, ...]] = ()
    # Pareto objectives (label, report columns tried in order, sense, unit); summary: registry metric names
    # its terminal table shows, in registry order; scaling: its whole-run throughput (harness.scaling)
    objectives: ClassVar[tuple[tuple[str, tuple[str, ...], str, str], ...]] = ()
    summary: ClassVar[tuple[str, ...]] = ()
    scaling_throughput: ClassVar[str | None] = None
    # the summary's dollar column (metric, section) and whether held-out quality columns follow it
    summary_cost: ClassVar[tuple[str, str]] = ("usd_per_1m_tokens_generated", "cost")
    summary_quality: ClassVar[bool] = True
    # the summary's cells beside the registry's, when not the cost + quality ones: "classifier" (classify)
    summary_cells: ClassVar[str | None] = None
    repeats_refused: ClassVar[str | None] = None  # why repeats=auto is refused, where it is by design
    # what the report's answer (harness.report.answer) reads: {"quality": axis, "lo"/"hi": its interval's
    # columns or None, "cost": axes, "energy": axis, "speed": axes}, each axis (report column, registry metric,
    # section, "min" | "max"), the first with data of several used; None: no answer for this workload
    answer: ClassVar[dict[str, Any] | None] = None
    # a report section of its own: (anchor, title, "module:function"); function(frame, plotly_on_page) -> html,
    # empty without this workload's runs (harness.report.build)
    report_section: ClassVar[tuple[str, str, str] | None] = None

    def key_fields(self, config: Mapping[str, Any]) -> dict[str, Any]:
        """What a run of this workload is beyond the common fields (harness.results.key_fields), in key order."""
        return {"decode_tokens": config["workload"]["decode_tokens"]}

    def slug_work(self, fields: Mapping[str, Any]) -> str:
        """The run slug's part naming the work done (harness.results.run_slug), from the key fields."""
        return f"dec{fields['decode_tokens']}"

    def validate(self, cfg: Any) -> None:
        """Checks of this workload's own settings (cfg: the typed HarnessConfig); raise ConfigError. The data
        group is checked by harness.validation where it is only the quality text (reads_data false)."""

    def positions_needed(self, cfg: Any) -> int | None:
        """The model positions one sequence takes (checked against max_position_embeddings), or None."""
        return cfg.seq_len + getattr(cfg.workload, "decode_tokens", 0) + 1

    def backend(self, config: Mapping[str, Any]) -> str:
        """The backend that holds the model for this run (harness.backends); checked against `requires`."""
        from harness.backends import DEFAULT

        return DEFAULT

    def trained_weights(self, config: Mapping[str, Any]) -> bool:
        """Runs on harness-trained weights loaded in this process (harness.checkpoints.is_trained)."""
        return config["model"].get("weights") == "trained" and self.backend(config) == "hf"

    def finetuned_weights(self, config: Mapping[str, Any]) -> bool:
        """Whether the run loads a classifier the harness fine-tunes first (harness.finetuned), once, cached."""
        return False

    def repeats_figure(self, config: Mapping[str, Any]) -> str | None:
        """The per-repeat figure `repeats=auto` watches (harness.adaptive); None: this scenario's repeats are
        not independent windows it can add one at a time, and repeats=auto is refused (harness.config)."""
        return None

    def memory_shape(self, config: Mapping[str, Any]) -> tuple[str, int, int, int]:
        """(kind, sequences, prompt tokens, total tokens) a run holds at once, for harness.memory_model:
        kind `train` (weights, gradients, optimizer, activations) or `decode` (weights and a KV cache)."""
        seq = int(config["seq_len"])
        return "decode", int(config["batch_size"]), seq, seq + int(config["workload"].get("decode_tokens", 0))

    def observes_int8_kernels(self, config: Mapping[str, Any]) -> bool:
        """precision=int8: record which matmul really runs at this run's shapes (harness.precision)."""
        return False


class Scenario(Spec):
    """Subclass, set the class attributes, implement run(); register with harness.scenarios.register."""

    requires: ClassVar[frozenset[str]]  # backend capabilities (harness.backends.base)
    precision_mode: ClassVar[str]  # harness.transforms.precision WEIGHTS or AUTOCAST
    parallel: ClassVar[str] = REPLICAS  # REPLICAS: each rank serves its own load; DATA_PARALLEL: DDP
    writes: ClassVar[tuple[str, ...]] = ()  # metric names in result.metrics and repeats (harness.metrics)
    summed_over_ranks: ClassVar[tuple[str, ...]] = ()  # REPLICAS: throughputs that add up over ranks
    repeat_cost: ClassVar[tuple[str, str] | None] = None  # (repeat rate key, repeat cost key) for pricing

    def model_config(self, config: Mapping[str, Any], model: dict[str, Any]) -> dict[str, Any]:
        """The model node the backend builds, from `model`: the preset, or (Spec.trained_weights) its cached
        checkpoint (harness.checkpoints.model_config, asked by the worker). As it is by default."""
        return model

    def run(self, ctx: RunContext) -> Measured:
        raise NotImplementedError

    def price(self, cost: Mapping[str, Any], metrics: Mapping[str, Any], timing: Mapping[str, float]) -> dict:
        """Scenario-specific cost figures added to the cost section (none by default)."""
        return {}

    def finish(self, sections: dict[str, Any], config: Mapping[str, Any]) -> None:
        """Last, once metrics, energy and cost are in `sections`: figures that need them all. Raising here
        ends the run with that status and reason, its figures kept (none by default)."""
