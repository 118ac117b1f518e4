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
    env = {
        "torch_threads": torch.get_num_threads(),
        "torch_interop_threads": torch.get_num_interop_threads(),
        "cuda_version": torch.version.cuda,
        "device": device.as_dict() if device is not None else None,
    }
    return env


def measure(config: dict[str, Any], timing: dict[str, float], sections: dict[str, Any]) -> None:
    """Run the configured workload, filling `timing` and the result `sections` as it goes. Raises on failure."""
    import torch
    import transformers  # noqa: F401 - imported here so that startup_s holds the whole import cost

    from harness import data, flops, hardware, models, precision
    from harness.trackers.memory import CpuMemory, CudaMemory
    from harness.trackers.nvml import NvmlGpu
    from harness.trackers.timing import timer_for
    from harness.workloads import inference

    timing["startup_s"] = time.time() - timing["spawned_at"]
    if config["threads"]:
        torch.set_num_threads(config["threads"])
    cuda = torch.cuda if torch.cuda.is_available() else None
    device = hardware.select(config["hardware"]["device"], cuda)
    sections["environment_extra"] = _torch_environment(device, torch)
    if config["gpus"] > 1:
        raise UnsupportedError(
            f"gpus={config['gpus']}: multi-device runs are not implemented yet (they arrive with torchrun support)"
        )
    prec = config["precision"]["name"]
    precision.check_supported(prec, device.type, cuda)

    nvml = NvmlGpu(device.index) if device.type == "cuda" else None
    try:
        if nvml is not None:
            sections["environment_extra"]["gpu"] = nvml.info()
        t = time.perf_counter()
        model = models.build(
            config["model"], precision.build_dtype(prec, device.type), device.torch_device, config["seed"]
        )
        timing["model_build_s"] = time.perf_counter() - t
        desc = models.describe(model)
        t = time.perf_counter()
        sections["precision"] = precision.apply(model, prec)
        timing["precision_apply_s"] = time.perf_counter() - t
        timing["fixed_cost_s"] = time.time() - timing["spawned_at"]

        tokenizer = data.local_tokenizer(config["model"].get("path"))
        ids = data.prompt_ids(config["batch_size"], config["seq_len"], config["seed"], tokenizer).to(
            device.torch_device
        )
        w = config["workload"]
        policy = inference.Policy(w["warmup_iters"], w["min_iters"], w["min_time_s"], w["max_iters"], config["repeats"])
        timer = timer_for(device.type, cuda, device.torch_device)
        trackers = [CudaMemory(cuda, device.torch_device)] if device.type == "cuda" else [CpuMemory()]
        out = inference.run(model, ids, w["decode_tokens"], policy, timer, trackers)
        if nvml is not None:
            out["metrics"].update(nvml.memory_used())
    finally:
        if nvml is not None:
            nvml.close()
    timing["warmup_s"] = out["warmup_s"]
    timing["timed_window_s"] = out["timed_window_s"]

    # quality beside speed (MLPerf): the same prompt through the fp32 reference, after the timed window
    from harness import quality

    t = time.perf_counter()
    sections["quality"] = quality.evaluate(model, config, ids, tokenizer, device.torch_device)
    timing["quality_s"] = time.perf_counter() - t

    metrics = out["metrics"]
    fl = flops.inference_flops(desc, config["seq_len"], w["decode_tokens"])
    for phase in ("prefill", "decode"):
        per_token, rate = fl[f"flops_per_token_{phase}"], metrics[f"{phase}_tok_per_s"]
        metrics[f"achieved_flop_per_s_{phase}"] = per_token * rate if per_token and rate else None
    metrics.update(fl)
    metrics.update({k: desc[k] for k in ("params", "params_embedding", "params_non_embedding", "matmul_params")})
    metrics["threads"] = torch.get_num_threads()
    metrics["timing_method"] = timer.method
    sections["model"] = {k: desc[k] for k in ("model_type", "n_layers", "d_model", "vocab_size")}
    sections["metrics"] = metrics
    sections["repeats"] = out["repeats"]


def execute(spec: dict[str, Any]) -> dict[str, Any]:
    """One run, never raising: a failure becomes a result with its status and reason."""
    config = spec["config"]
    timing: dict[str, float] = {"spawned_at": spec.get("spawned_at", _T_START)}
    status, reason = "ok", None
    sections: dict[str, Any] = {}
    try:
        measure(config, timing, sections)
    except UnsupportedError as exc:
        status, reason = "unsupported", str(exc)
    except BaseException as exc:  # noqa: BLE001 - the run is data: every failure is recorded
        tb = traceback.format_exc().strip().splitlines()[-TRACEBACK_LINES:]
        status = "oom" if _is_oom(exc) else "error"
        reason = f"{type(exc).__name__}: {exc}".strip()[:2000]
        sections["traceback"] = tb
    timing["run_wall_s"] = time.time() - timing["spawned_at"]
    env = environment.capture()
    env.update(sections.pop("environment_extra", {}))
    return results.make_result(config, status, reason, env, timing=timing, **sections)


def main(argv: list[str]) -> int:
    spec_path = Path(argv[0])
    spec = json.loads(spec_path.read_text())
    result = execute(spec)
    results.write_atomic(Path(spec["result_path"]), result)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    sys.exit(main(sys.argv[1:]))
