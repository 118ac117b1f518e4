"""The measured run, inside its own fresh process: build → precision → workload → result.json.

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
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

from harness import environment, results  # noqa: E402
from harness.errors import UnsupportedError  # noqa: E402

TRACEBACK_LINES = 15


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


def _energy_trackers(config: dict[str, Any], device: Any, nvml: Any, place: Any) -> list[Any]:
    """Energy trackers for this rank: its own GPU (NVML); the machine's RAPL counters once per node
    (local rank 0); or, without RAPL, codecarbon's estimate of this rank's own process."""
    from harness.trackers.energy import CodecarbonEnergy, NvmlEnergy, RaplEnergy, rapl_zones

    if not config["energy"]["enabled"]:
        return []
    prefix = f"rank{place.rank}:" if place.world_size > 1 else ""
    trackers: list[Any] = []
    if device.type == "cuda" and nvml is not None and nvml.available:
        trackers.append(
            NvmlEnergy(nvml, f"{prefix}gpu:{device.index} {device.name}", config["energy"]["sample_interval_s"])
        )
    zones = rapl_zones()
    if zones:
        if place.local_rank == 0:
            trackers.append(RaplEnergy(zones))
    else:
        trackers.append(CodecarbonEnergy(name_prefix=prefix))
    return trackers


def _energy_reader(trackers: list, place: Any) -> Any:
    """Per-repeat energy for a single process only: with several ranks, rank 0's counters do not cover the run."""
    from harness.trackers.energy import reader

    return reader(trackers) if place.world_size == 1 else None


def _inference(config: dict, model: Any, desc: dict, device: Any, timer: Any, trackers: list, place: Any) -> dict:
    from harness import data, flops, quality
    from harness.workloads import inference

    w = config["workload"]
    tokenizer = data.local_tokenizer(config["model"].get("path"))
    # each replica (rank) serves its own prompts
    ids = data.prompt_ids(config["batch_size"], config["seq_len"], config["seed"] + place.rank, tokenizer)
    policy = inference.Policy(w["warmup_iters"], w["min_iters"], w["min_time_s"], w["max_iters"], config["repeats"])
    energy_now = _energy_reader(trackers, place)
    out = inference.run(model, ids.to(device.torch_device), w["decode_tokens"], policy, timer, trackers, energy_now)
    # quality beside speed (MLPerf): the same prompt through the fp32 reference, after the timed window
    t = time.perf_counter()
    out["quality"] = quality.evaluate(model, config, ids.to(device.torch_device), tokenizer, device.torch_device)
    out["quality_s"] = time.perf_counter() - t
    m = out["metrics"]
    m.update(flops.inference_flops(desc, config["seq_len"], w["decode_tokens"]))
    out["phases"] = {"prefill": m["prefill_tok_per_s"], "decode": m["decode_tok_per_s"]}
    out["units"] = {
        "token": m["iterations"] * m["tokens_generated_per_request"],
        "sample": m["iterations"] * config["batch_size"],
    }
    return out


def _training(config: dict, model: Any, desc: dict, device: Any, timer: Any, trackers: list, place: Any) -> dict:
    from harness import data, flops
    from harness.workloads import training

    w = config["workload"]
    tokenizer = data.local_tokenizer(config["model"].get("path"))
    train_stream, eval_stream, info = data.training_streams(config["data"], config["seed"], tokenizer)
    # every precision of one seed sees the same batches; each rank draws its own
    batches = data.TrainBatches(
        train_stream, config["batch_size"], config["seq_len"], config["seed"] * 1000 + place.rank, device.torch_device
    )
    held_out = data.eval_batches(
        eval_stream, w["eval_batches"], config["batch_size"], config["seq_len"], device.torch_device
    )
    schedule = training.Schedule(
        w["max_steps"],
        w["warmup_steps"],
        w["lr"],
        w["lr_warmup_steps"],
        w["weight_decay"],
        w["grad_clip"],
        w["eval_interval"],
        w["target_eval_loss"],
        config["repeats"],
    )
    energy_now = _energy_reader(trackers, place)
    prec = config["precision"]["name"]
    out = training.run(model, batches, held_out, schedule, prec, device.type, timer, trackers, energy_now)
    m = out["metrics"]
    step_s = m["step_time_s"]["mean"]
    world_tokens = m["tokens_per_step"] * place.world_size  # DDP steps are synchronous: one step, all ranks
    m["train_tok_per_s"] = world_tokens / step_s if step_s else None
    m["samples_per_s"] = config["batch_size"] * place.world_size / step_s if step_s else None
    m["tokens_trained"] = world_tokens * m["steps"]
    m["flops_per_token_train"] = flops.training_flops_per_token(desc, config["seq_len"])
    out["phases"] = {"train": m["train_tok_per_s"]}
    out["units"] = {
        "token": world_tokens * m["steps"],
        "sample": config["batch_size"] * place.world_size * m["steps"],
        "step": m["steps"],
    }
    out["data"] = info
    return out


def measure(config: dict[str, Any], timing: dict[str, float], sections: dict[str, Any]) -> None:
    """Run the configured workload, filling `timing` and the result `sections` as it goes. Raises on failure."""
    import torch
    import transformers  # noqa: F401 - imported here so that startup_s holds the whole import cost

    from harness import calibrate, catalog, cost, distributed, energy, hardware, models, precision
    from harness.trackers.memory import CpuMemory, CudaMemory
    from harness.trackers.nvml import NvmlGpu
    from harness.trackers.timing import timer_for

    timing["startup_s"] = time.time() - timing["spawned_at"]
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
    sections["environment_extra"] = _torch_environment(device, torch)
    workload = config["workload"]["name"]
    prec = config["precision"]["name"]
    if workload == "training" and prec == "int8":
        raise UnsupportedError("int8 is an inference precision: training runs in fp32, bf16 or fp16")
    distributed.check_fits(config["gpus"], device.type, device.count if device.type == "cuda" else 0, cores)
    precision.check_supported(prec, device.type, cuda)
    backend = distributed.init(place, device.type)
    sections["distributed"] = {
        "world_size": place.world_size,
        "ranks_per_node": place.local_world_size,
        "backend": backend,
        "threads_per_rank": torch.get_num_threads(),
        "batch_semantics": "batch_size is per rank; the global batch is batch_size x world_size",
        "label": distributed.CPU_LABEL if device.type == "cpu" and place.world_size > 1 else None,
    }
    facts = catalog.resolve(config["hardware"], device.type, device.name)
    sections["warnings"].extend(facts.warnings)
    sections["hardware"] = {
        "entry": facts.entry,
        "how": facts.how,
        "device_name": device.name,
        **{
            k: facts.hardware.get(k)
            for k in ("family", "memory_gb", "memory_bandwidth_gb_per_s", "board_power_w", "peak_tflops", "peak_source")
        },
    }

    nvml = NvmlGpu(device.index) if device.type == "cuda" else None
    try:
        if nvml is not None:
            sections["environment_extra"]["gpu"] = nvml.info()
        t = time.perf_counter()
        # training builds in fp32 and runs mixed precision through autocast; inference builds in its dtype
        dtype = torch.float32 if workload == "training" else precision.build_dtype(prec, device.type)
        model = models.build(config["model"], dtype, device.torch_device, config["seed"])
        timing["model_build_s"] = time.perf_counter() - t
        desc = models.describe(model)
        t = time.perf_counter()
        if workload == "training":
            sections["precision"] = {
                "name": prec,
                "method": "autocast" if prec != "fp32" else "fp32",
                "weight_dtype": "float32",
                "grad_scaler": prec == "fp16",
            }
            if place.world_size > 1:
                model = torch.nn.parallel.DistributedDataParallel(
                    model, device_ids=[device.index] if device.type == "cuda" else None
                )
        else:
            sections["precision"] = precision.apply(model, prec)
        timing["precision_apply_s"] = time.perf_counter() - t
        timing["fixed_cost_s"] = time.time() - timing["spawned_at"]

        t = time.perf_counter()
        if device.type == "cuda":
            peak = {"peak_flop_per_s": facts.peak_flop_per_s(prec), "peak_source": facts.hardware.get("peak_source")}
        else:
            peak = calibrate.cpu_peak_for(prec)
        timing["calibration_s"] = time.perf_counter() - t

        timer = timer_for(device.type, cuda, device.torch_device)
        memory = CudaMemory(cuda, device.torch_device) if device.type == "cuda" else CpuMemory()
        energy_trackers = _energy_trackers(config, device, nvml, place)
        run = _training if workload == "training" else _inference
        out = run(config, model, desc, device, timer, [memory, *energy_trackers], place)
        if nvml is not None:
            out["metrics"].update(nvml.memory_used())
    finally:
        if nvml is not None:
            nvml.close()
    timing["timed_window_s"] = out["timed_window_s"]
    if "warmup_s" in out:
        timing["warmup_s"] = out["warmup_s"]

    if "quality" in out:
        sections["quality"], timing["quality_s"] = out["quality"], out["quality_s"]

    metrics = out["metrics"]
    metrics.update(out["tracked"][0])
    metrics.update(peak)
    per_token = {
        "prefill": "flops_per_token_prefill",
        "decode": "flops_per_token_decode",
        "train": "flops_per_token_train",
    }
    for phase, rate in out["phases"].items():
        flop = metrics.get(per_token[phase])
        achieved = flop * rate if flop and rate else None
        metrics[f"achieved_flop_per_s_{phase}"] = achieved
        # MFU = achieved / peak for this dtype (PaLM, appendix B), per device; null when either is unknown
        devices_used = place.world_size if phase == "train" else 1
        metrics[f"mfu_{phase}"] = (
            achieved / (peak["peak_flop_per_s"] * devices_used) if achieved and peak["peak_flop_per_s"] else None
        )
    metrics.update({k: desc[k] for k in ("params", "params_embedding", "params_non_embedding", "matmul_params")})
    metrics["threads"] = torch.get_num_threads()
    metrics["timing_method"] = timer.method
    sections["model"] = {k: desc[k] for k in ("model_type", "n_layers", "d_model", "vocab_size")}
    sections["repeats"] = out["repeats"]
    if "data" in out:
        sections["data"] = out["data"]

    components = [c for tracked in out["tracked"][1:] for c in tracked]
    ranks = distributed.gather({"rank": place.rank, "metrics": _rank_summary(metrics), "components": components}, place)
    distributed.shutdown(place)
    if not place.is_main:
        sections["_not_main"] = True
        return
    if place.world_size > 1:
        metrics["ranks"] = [r["metrics"] | {"rank": r["rank"]} for r in ranks]
        if workload == "inference":  # replicas: throughput adds up over ranks
            for k in ("prefill_tok_per_s", "decode_tok_per_s", "e2e_tok_per_s", "samples_per_s"):
                values = [r["metrics"].get(k) for r in ranks]
                metrics[k] = sum(values) if all(v is not None for v in values) else None
            out["units"] = {k: v * place.world_size for k, v in out["units"].items()}
        components = [c for r in ranks for c in r["components"]]
    sections["metrics"] = metrics
    if config["energy"]["enabled"]:
        sections["energy"] = energy.account(components, out["timed_window_s"], out["units"], config["energy"])
    vcpus = sections["environment_extra"].get("cpu_affinity_cores") or (os.cpu_count() or 1)
    devices = cost.device_count(facts.hardware.get("price_unit") or "device", device.type, config["gpus"], vcpus)
    timing["run_wall_s"] = time.time() - timing["spawned_at"]
    sections["cost"] = cost.compute(facts.price(), devices, timing, metrics, sections.get("energy"), config["cost"])
    if workload == "training" and sections["cost"] is not None:
        sections["cost"].update(cost.training(sections["cost"]["usd_per_s"], metrics, timing))
    # each repeat priced on its own (the gate's cost samples), as the run is priced
    rate_key, cost_key = (
        ("train_tok_per_s", "usd_per_1m_tokens_train")
        if workload == "training"
        else ("e2e_tok_per_s", "usd_per_1m_tokens_generated")
    )
    pue = config["energy"]["pue"]
    for rep in sections["repeats"]:
        rep[cost_key] = cost.per_repeat(sections["cost"], rep, rate_key, pue, place.world_size)


def _rank_summary(metrics: dict[str, Any]) -> dict[str, Any]:
    keep = (
        "prefill_tok_per_s",
        "decode_tok_per_s",
        "e2e_tok_per_s",
        "samples_per_s",
        "train_tok_per_s",
        "peak_rss_bytes",
        "cuda_max_allocated_bytes",
        "cuda_max_reserved_bytes",
        "threads",
    )
    out = {k: metrics[k] for k in keep if k in metrics}
    for k in ("step_time_s", "decode_latency_s", "prefill_latency_s"):
        if k in metrics:
            out[f"{k}_p50"] = metrics[k]["p50"]
    return out


def execute(spec: dict[str, Any]) -> dict[str, Any] | None:
    """One run, never raising: a failure becomes a result with its status and reason."""
    config = spec["config"]
    timing: dict[str, float] = {"spawned_at": spec.get("spawned_at", _T_START)}
    status, reason = "ok", None
    sections: dict[str, Any] = {"warnings": []}
    try:
        measure(config, timing, sections)
    except UnsupportedError as exc:
        status, reason = "unsupported", str(exc)
    except BaseException as exc:  # noqa: BLE001 - the run is data: every failure is recorded
        tb = traceback.format_exc().strip().splitlines()[-TRACEBACK_LINES:]
        status = "oom" if _is_oom(exc) else "error"
        reason = f"{type(exc).__name__}: {exc}".strip()[:2000]
        sections["traceback"] = tb
    if sections.pop("_not_main", False) or (status != "ok" and int(os.environ.get("RANK", 0)) != 0):
        return None
    timing.setdefault("run_wall_s", time.time() - timing["spawned_at"])
    env = environment.capture()
    env.update(sections.pop("environment_extra", {}))
    return results.make_result(config, status, reason, env, timing=timing, **sections)


def main(argv: list[str]) -> int:
    spec_path = Path(argv[0])
    spec = json.loads(spec_path.read_text())
    result = execute(spec)
    if result is not None:  # ranks other than 0 report through rank 0
        results.write_atomic(Path(spec["result_path"]), result)
    return 0


if __name__ == "__main__":
    from harness.guard import die_with_parent

    die_with_parent()  # torchrun's ranks too: none outlives the process that started it
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    sys.exit(main(sys.argv[1:]))
