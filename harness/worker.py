"""The measured run, inside its own fresh process: backend → transforms → scenario → accounting → result.json.

Started by harness.launch as `python -m harness.worker <spec.json>`. Whatever happens, it tries to
write a result with a status and a reason; the launcher covers the cases where it cannot (killed).
"""

from __future__ import annotations

import time

_T_START = time.time()  # before the heavy imports: part of the per-run fixed cost

import json  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402
import traceback  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

from harness import distributed, environment, results  # noqa: E402
from harness.errors import UnsupportedError  # noqa: E402

TRACEBACK_LINES = 15


@dataclass
class Record:
    """What the worker has found, section by section, as the run goes (docs/results.md): a field per section
    the worker writes; `extra` holds the transforms' and the scenario's own (precision, quality, serving,
    finetune ...) by name. A failure keeps whatever was filled before it."""

    warnings: list[str] = field(default_factory=list)
    environment: dict[str, Any] = field(default_factory=dict)  # this process's (joins environment.capture())
    hardware: dict[str, Any] | None = None
    distributed: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    checkpoint: dict[str, Any] | None = None
    model: dict[str, Any] | None = None
    weights: dict[str, Any] | None = None
    repeats: list[dict[str, Any]] | None = None
    metrics: dict[str, Any] | None = None
    energy: dict[str, Any] | None = None
    cost: dict[str, Any] | None = None
    interference: dict[str, Any] | None = None
    traceback: list[str] | None = None
    main: bool = True  # False on ranks other than 0, which report through rank 0

    _FIELDS = ("hardware", "distributed", "checkpoint", "model", "weights", "repeats", "metrics", "energy", "cost")
    _FIELDS += ("interference", "traceback")

    def sections(self) -> dict[str, Any]:
        """The result's sections (harness.results.make_result's keywords): those filled, in the order of the run."""
        out: dict[str, Any] = {"warnings": self.warnings}
        for name in self._FIELDS:
            if name == "checkpoint":
                out.update(self.extra)  # after distributed, as the run filled them
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        return out

    def take(self, sections: dict[str, Any]) -> None:
        """Back from a scenario's `finish`, which reads and changes the sections (Scenario.finish)."""
        for name, value in sections.items():
            if name in self._FIELDS or name == "warnings":
                setattr(self, name, value)
            else:
                self.extra[name] = value


def _is_oom(exc: BaseException) -> bool:
    import torch

    if isinstance(exc, (MemoryError, torch.OutOfMemoryError)):
        return True
    text = str(exc).lower()
    # the CPU allocator raises a plain RuntimeError ("DefaultCPUAllocator: can't allocate memory")
    return isinstance(exc, RuntimeError) and ("can't allocate memory" in text or "out of memory" in text)


def _torch_environment(device: Any, torch: Any) -> dict[str, Any]:
    try:
        affinity = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        affinity = None
    env = {
        "cpu_affinity_cores": affinity,
        "torch_threads": torch.get_num_threads(),
        "torch_interop_threads": torch.get_num_interop_threads(),
        "cuda_version": torch.version.cuda,
        "device": device.as_dict() if device is not None else None,
    }
    return env


def _place(config: dict[str, Any], torch: Any, record: Record) -> tuple[Any, Any, Any, Any]:
    """This rank's place, device, torch.cuda (or None) and catalog facts; threads set; the record filled."""
    from harness import catalog, distributed, hardware

    place = distributed.place()
    cuda = torch.cuda if torch.cuda.is_available() else None
    if cuda is not None and place.world_size > 1:
        cuda.set_device(place.local_rank)
    device = hardware.select(config["hardware"]["device"], cuda)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if config["threads"]:
        torch.set_num_threads(config["threads"])
    elif place.local_world_size > 1 and device.type == "cpu":
        torch.set_num_threads(distributed.threads_per_rank(cores, place.local_world_size))
    record.environment = _torch_environment(device, torch)
    distributed.check_fits(config["gpus"], device.type, device.count if device.type == "cuda" else 0, cores)
    facts = catalog.resolve(config["hardware"], device.type, device.name)
    record.warnings.extend(facts.warnings)
    keys = ("family", "memory_gb", "memory_bandwidth_gb_per_s", "board_power_w", "peak_tflops", "peak_source")
    record.hardware = {"entry": facts.entry, "how": facts.how, "device_name": device.name}
    record.hardware.update({k: facts.hardware.get(k) for k in keys})
    return place, device, cuda, facts


def _distributed(config: dict[str, Any], place: Any, device: Any, torch: Any) -> dict[str, Any]:
    from harness import distributed

    timeout_s = distributed.collective_timeout_s(config["dist"], config["timeout_s"])
    return {
        "world_size": place.world_size,
        "ranks_per_node": place.local_world_size,
        "backend": distributed.init(place, device.type, timeout_s),
        "collective_timeout_s": timeout_s if place.world_size > 1 else None,
        "threads_per_rank": torch.get_num_threads(),
        "batch_semantics": "batch_size is per rank; the global batch is batch_size x world_size",
        "label": distributed.CPU_LABEL if device.type == "cpu" and place.world_size > 1 else None,
    }


def measure(config: dict[str, Any], timing: dict[str, float], record: Record, run_dir: Path) -> None:
    """place and device → backend → transforms → scenario → merge ranks → accounting, into `record`."""
    from harness import prepare

    prepare.ready()  # what a forked run starts with (its imports, harness.prepare): startup_s holds its cost
    import torch

    from harness import backends, calibrate, checkpoints, hardware, precision, probes, scenarios, transforms
    from harness.probes.nvml import NvmlGpu
    from harness.probes.timing import timer_for
    from harness.scenarios.base import DATA_PARALLEL, RunContext

    timing["startup_s"] = time.time() - timing["spawned_at"]
    scenario = scenarios.get(config["workload"]["name"])
    place, device, cuda, facts = _place(config, torch, record)
    backend = backends.for_run(scenario.backend(config), config)  # the `backend` group: eager or compile
    backends.check_capabilities(scenario.name, scenario.requires, backend)
    chain = transforms.for_run(config, scenario.precision_mode, device.type, cuda, backend.holds_weights)
    for transform in chain:
        transform.check()
    record.distributed = _distributed(config, place, device, torch)
    gpu = NvmlGpu(device) if device.type == "cuda" else None
    try:
        if gpu is not None:
            record.environment["gpu"] = gpu.info()
            record.warnings.extend(gpu.identity_warnings())
        t = time.perf_counter()
        # the preset, or (Spec.trained_weights) its cached checkpoint; then what the scenario adds to it
        model_cfg = scenario.model_config(config, checkpoints.model_config(config))
        model = backend.load(model_cfg, transforms.load_dtype(chain), device.torch_device, config["seed"])
        hardware.synchronize(cuda)  # CUDA work is asynchronous: the clock stops when the device is done
        timing["model_build_s"] = time.perf_counter() - t
        t = time.perf_counter()
        runtime, record.extra["transforms"] = _apply(chain, model, record.extra)
        facts_model = backend.describe()  # the model as transformed: counts, FLOPs and bytes of what runs
        if scenario.parallel == DATA_PARALLEL and place.world_size > 1:
            ids = [device.index] if device.type == "cuda" else None
            backend.distribute(ids)
        hardware.synchronize(cuda)
        timing["precision_apply_s"] = time.perf_counter() - t
        prec = config["precision"]["name"]
        prec_section = record.extra.setdefault("precision", {})
        if device.type == "cuda":
            prec_section.update(precision.tf32_state())
        if scenario.observes_int8_kernels(config):  # which matmul really runs, at this run's shapes
            prec_section["kernels"] = precision.observe_int8(
                model, config["batch_size"], config["seq_len"], device.torch_device, device.type
            )
        timing["fixed_cost_s"] = time.time() - timing["spawned_at"]
        peak_prec = runtime.get("peak_dtype", prec)  # int4 on a GPU casts the model to bf16: the bf16 peak
        t = time.perf_counter()
        if device.type == "cuda":
            peak_dtype = precision.peak_dtype(peak_prec, device.type, prec_section.get("tf32_matmul", False))
            peak = {
                "peak_flop_per_s": facts.peak_flop_per_s(peak_dtype),
                "peak_dtype": peak_dtype,
                "peak_source": facts.hardware.get("peak_source"),
            }
        else:
            peak = calibrate.cpu_peak_for(peak_prec)
        if "mbu_decode" in scenario.writes:  # MBU beside MFU: the bandwidth a decode step is bound by
            peak.update(_bandwidth_peak(device.type, facts))
        timing["calibration_s"] = time.perf_counter() - t
        timer = timer_for(device.type, cuda, device.torch_device)
        replicas = scenario.parallel != DATA_PARALLEL
        watch = probes.for_device(config, device, place, gpu, cuda, replicas=replicas)
        # per-repeat energy for a single process only: with several ranks, rank 0's counters do not cover the run
        energy_now = watch.energy_now() if place.world_size == 1 else None
        ctx = RunContext(config, backend, facts_model, device, place, timer, watch, runtime, energy_now, run_dir)
        measured = scenario.run(ctx)
        record.extra["backend"] = _backend_record(backend, config, timing)
        if config["workload"].get("save_checkpoint") and place.is_main:  # loadable: model=local model.path=<it>
            record.checkpoint = backend.save(run_dir)
    finally:
        if gpu is not None:
            gpu.close()
    _account(ctx, scenario, measured, peak, facts, timing, record)


def _apply(chain: list, model: Any, sections: dict[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Apply the transforms in order: the runtime facts they pass on, and how each was obtained (the result's
    `transforms` section, in order; precision's record also stays in its own `precision` section)."""
    runtime: dict[str, Any] = {}
    done: list[dict[str, Any]] = []
    for transform in chain:
        applied = transform.apply(model)
        if applied.section != "transforms":
            sections[applied.section] = dict(applied.how)
        done.append({"transform": type(transform).name, **applied.how})  # precision's `name` is its dtype
        runtime.update(applied.runtime)
    return runtime, done


def _backend_record(backend: Any, config: dict[str, Any], timing: dict[str, float]) -> dict[str, Any]:
    """The result's `backend` section; a compiled backend's compile time also goes to timing.compile_s."""
    record = getattr(backend, "record", None)
    out = record() if record is not None else {"name": (config.get("backend") or {}).get("name", "eager")}
    out.setdefault("implementation", backend.name)
    if "compile_s" in out:
        timing["compile_s"] = out["compile_s"]
    return out


def _bandwidth_peak(device_type: str, facts: Any) -> dict[str, Any]:
    """MBU's denominator: the catalog's memory bandwidth on a GPU (null when unknown), a calibrated copy on CPU."""
    from harness import calibrate

    if device_type != "cuda":
        return calibrate.cpu_bandwidth()
    gb_per_s = facts.hardware.get("memory_bandwidth_gb_per_s")
    return {
        "peak_bandwidth_bytes_per_s": gb_per_s * 1e9 if gb_per_s else None,
        "bandwidth_source": f"catalog (hardware={facts.entry}): memory_bandwidth_gb_per_s" if gb_per_s else None,
    }


def _account(
    ctx: Any, scenario: Any, measured: Any, peak: dict, facts: Any, timing: dict[str, float], record: Record
) -> None:
    """After the window: the measured record and the probes' readings → metrics; ranks merged on rank 0;
    energy, cost and per-repeat prices (harness.accounting) → the record."""
    import torch

    from harness import accounting, checkpoints, cost, distributed

    config, place, device, facts_model, watch = ctx.config, ctx.place, ctx.device, ctx.model_facts, ctx.probes

    timing["timed_window_s"] = measured.timed_window_s
    if measured.warmup_s is not None:
        timing["warmup_s"] = measured.warmup_s
    timing.update(measured.timing)
    record.take(measured.sections)  # the scenario's own sections (quality, serving, finetune ...)
    metrics = measured.metrics
    metrics.update(watch.values())
    metrics.update(peak)
    metrics.update(_mfu(measured.phases, peak, record.extra.get("precision") or {}, ctx.device, facts))
    if "peak_bandwidth_bytes_per_s" in peak:
        metrics.update(accounting.mbu(metrics, peak["peak_bandwidth_bytes_per_s"]))
    metrics.update({k: facts_model[k] for k in ("params", "params_embedding", "params_non_embedding", "matmul_params")})
    metrics["params_nonzero"] = facts_model.get("params_nonzero")
    if "compile_s" in timing:  # backend=compile: its compile time, outside the timed window
        metrics["compile_s"] = timing["compile_s"]
    metrics["threads"] = torch.get_num_threads()
    metrics["timing_method"] = ctx.timer.method
    record.model = {k: facts_model[k] for k in ("model_type", "n_layers", "d_model", "vocab_size")}
    record.weights = checkpoints.provenance(config)  # random / local / trained (+ what training cost)
    record.repeats = measured.repeats

    mine = {"rank": place.rank, "metrics": accounting.rank_summary(metrics), "components": watch.components()}
    mine["interference"] = watch.sections().get("interference")
    ranks = distributed.gather(mine, place)  # the process group is left in main(), once the model is gone
    if not place.is_main:
        record.main = False
        return
    units = accounting.merge_ranks(metrics, measured.units, ranks, scenario.parallel, scenario.summed_over_ranks)
    record.metrics = metrics
    components = [c for r in ranks for c in r["components"]]
    record.energy = accounting.energy_section(components, measured.timed_window_s, units, config["energy"])
    vcpus = record.environment.get("cpu_affinity_cores") or (os.cpu_count() or 1)
    devices = cost.device_count(
        facts.hardware.get("price_unit") or "device", device.type, config["gpus"], vcpus, config["dist"]["nnodes"]
    )
    timing["run_wall_s"] = time.time() - timing["spawned_at"]
    price = facts.price()
    record.cost = accounting.cost_section(price, devices, timing, metrics, record.energy, config["cost"], scenario)
    accounting.price_repeats(record.repeats, record.cost, scenario, config["energy"]["pue"], place.world_size)
    _interference([r.get("interference") for r in ranks], config, record)
    sections = record.sections()
    try:
        scenario.finish(sections, config)  # may raise: the run's status and reason, its figures kept
    finally:
        record.take(sections)


def _interference(parts: list, config: dict[str, Any], record: Record) -> None:
    """Every rank's interference reading → the `interference` section, judged; a warning when disturbed."""
    from harness import interference

    thresholds = interference.Thresholds(**(config.get("interference") or {}))
    record.interference = interference.section(parts, thresholds)
    warning = interference.warning(record.interference)
    if warning:
        record.warnings.append(warning)


def _mfu(phases: Any, peak: dict, prec: dict, device: Any, facts: Any) -> dict[str, Any]:
    """MFU per phase, each on the peak of what ran in it: an int8 phase whose matmuls fell back to a float
    matmul (precision.kernels) is divided by the fp32/tf32 peak or none, with mfu_peak_dtype_<phase> saying
    which; every other phase by the run's peak."""
    from harness import accounting, precision

    out: dict[str, Any] = {}
    peak_for = facts.peak_flop_per_s if device.type == "cuda" else None
    for p in phases:
        args = (prec, p.name, peak["peak_flop_per_s"], peak_for, prec.get("tf32_matmul", False))
        phase_peak, dtype = precision.phase_peak(*args)
        out.update(accounting.mfu([p], phase_peak))
        if dtype is not None or phase_peak != peak["peak_flop_per_s"]:
            out[f"mfu_peak_dtype_{p.name}"] = dtype
    return out


def execute(spec: dict[str, Any]) -> dict[str, Any] | None:
    """One run, never raising: a failure becomes a result with its status and reason."""
    config = spec["config"]
    timing: dict[str, float] = {"spawned_at": spec.get("spawned_at", _T_START)}
    status, reason = "ok", None
    record = Record()
    try:
        measure(config, timing, record, Path(spec["result_path"]).parent)
    except UnsupportedError as exc:
        status, reason = "unsupported", str(exc)
    except BaseException as exc:  # noqa: BLE001 - the run is data: every failure is recorded
        tb = traceback.format_exc().strip().splitlines()[-TRACEBACK_LINES:]
        status = "oom" if _is_oom(exc) else "error"
        reason = f"{type(exc).__name__}: {exc}".strip()[:2000]
        record.traceback = tb
    place = distributed.place()
    if status != "ok" and place.world_size > 1:
        # a failed rank never leaves the others waiting at the gather: the first to fail on node 0 writes the
        # run's result with the run's first failure (its own, or a peer node's), and every failed rank exits at
        # once so torchrun ends the group
        reason = distributed.rank_failure(reason, place, config["dist"])
        attempt = f"{timing['spawned_at']:.6f}"
        if distributed.writes_result(config["dist"]) and distributed.claim_failure(Path(spec["result_path"]), attempt):
            results.write_atomic(Path(spec["result_path"]), _result(config, status, reason, timing, record))
        distributed.exit_failed_rank()
    if not record.main:
        return None
    return _result(config, status, reason, timing, record)


def _result(config: dict, status: str, reason: str | None, timing: dict, record: Record) -> dict[str, Any]:
    timing.setdefault("run_wall_s", time.time() - timing["spawned_at"])
    env = environment.capture()
    env.update(record.environment)
    return results.make_result(config, status, reason, env, timing=timing, **record.sections())


def main(argv: list[str]) -> int:
    spec_path = Path(argv[0])
    spec = json.loads(spec_path.read_text())
    result = execute(spec)
    if result is not None:  # ranks other than 0 report through rank 0
        results.write_atomic(Path(spec["result_path"]), result)
    # after the figures are safe and measure()'s frame, DDP's Reducer included, is gone (distributed.shutdown)
    distributed.shutdown(distributed.place())
    return 0


if __name__ == "__main__":
    from harness.guard import die_with_parent

    die_with_parent()  # torchrun's ranks too: none outlives the process that started it
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    sys.exit(main(sys.argv[1:]))
