"""The GPU checks of benchmarks/gpu_smoke.sh, one subcommand each; every check prints one verdict line,
"PASS|WARN|FAIL <check>: <what was seen>", and the exit code is 1 when any check failed.

    python benchmarks/gpu_smoke.py identity        torch's device vs NVML's (name, UUID, memory, MIG), catalog entry
    python benchmarks/gpu_smoke.py energy [S]      NVML energy counter vs sampled power over S s of matmul load
    python benchmarks/gpu_smoke.py procs           NVML's process list vs this process's PID
    python benchmarks/gpu_smoke.py int8            torchao int8 kernel path at batch 1 and 32 (model=125m)
    python benchmarks/gpu_smoke.py verdict DIR     the harness runs under DIR: status, MFU, energy method
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ENERGY_AGREEMENT = 0.10  # counter vs integrated power: within ~10 % over a few seconds (NVML ~100 ms updates)
MS_PER_S = 1e3
MW_PER_W = 1e3
MJ_PER_J = 1e3


def line(verdict: str, check: str, detail: str) -> str:
    return f"{verdict} {check}: {detail}"


def energy_verdict(counter_j: float | None, sampled_j: float | None) -> str:
    """PASS when the counter and the integrated power agree within ENERGY_AGREEMENT."""
    if counter_j is None or sampled_j is None or sampled_j <= 0:
        return line("WARN", "energy", f"cannot compare: counter {counter_j} J, sampled power {sampled_j} J")
    gap = abs(counter_j - sampled_j) / sampled_j
    verdict = "PASS" if gap <= ENERGY_AGREEMENT else "FAIL"
    return line(verdict, "energy", f"counter {counter_j:.1f} J vs sampled power {sampled_j:.1f} J ({gap:.1%} apart)")


def int8_verdict(batch: int, kernels: dict[str, Any]) -> str:
    """PASS when the decode path is what torchao's rules predict: int8 above 16 rows, a fallback below."""
    decode = kernels["decode"]
    expect_int8 = batch > 16
    ok = (decode["path"] == "int8 (torch._int_mm)") == expect_int8
    detail = f"batch {batch}: prefill {kernels['prefill']['path']}, decode {decode['path']}"
    if decode["reasons"]:
        detail += f" ({decode['reasons'][0]})"
    return line("PASS" if ok else "FAIL", f"int8-path-b{batch}", detail)


def run_verdicts(results: list[dict[str, Any]]) -> list[str]:
    """One line per harness run: ok, MFU within (0, 1], GPU energy from the counter, no identity warning."""
    out = []
    for r in results:
        kf = r["key_fields"]
        name = f"{kf['workload']} {kf['model']} {kf['precision']} bs={kf['batch_size']}"
        if r["status"] != "ok":
            out.append(line("FAIL", f"run {name}", f"{r['status']}: {r['reason']}"))
            continue
        m = r["metrics"]
        mfu = [v for k, v in m.items() if k.startswith("mfu_") and isinstance(v, float)]
        gpu = [c for c in (r.get("energy") or {}).get("components", []) if c.get("covers") == "gpu-board"]
        problems = [f"MFU {v:.3f} outside (0, 1]" for v in mfu if not 0 < v <= 1]
        problems += [f"GPU energy by {c['method']}" for c in gpu if c["method"] != "nvml-counter"]
        problems += [w for w in r.get("warnings", []) if "NVML device" in w]
        verdict = "FAIL" if problems else "PASS"
        detail = "; ".join(problems) or f"MFU {', '.join(f'{v:.3f}' for v in mfu) or 'null'}"
        out.append(line(verdict, f"run {name}", detail))
    return out


def _device() -> tuple[Any, Any, Any]:
    import torch

    from harness import hardware
    from harness.probes.nvml import NvmlGpu

    device = hardware.select("cuda", torch.cuda)
    return torch, device, NvmlGpu(device)


def identity() -> list[str]:
    from harness import catalog

    _, device, gpu = _device()
    info = gpu.info()
    out = [line("PASS" if gpu.available else "FAIL", "nvml", info["nvml_error"] or f"matched by {gpu.how}")]
    same = info["nvml_uuid"] == device.uuid
    out.append(line("PASS" if same else "WARN", "uuid", f"torch {device.uuid} / NVML {info['nvml_uuid']}"))
    warnings = gpu.identity_warnings()
    out.append(
        line(
            "FAIL" if warnings else "PASS",
            "name+memory",
            "; ".join(warnings) or f"torch '{device.name}' = NVML '{info['nvml_name']}'",
        )
    )
    out.append(line("PASS", "mig", f"MIG mode {info['mig_mode']}, scope {info['nvml_scope']}"))
    facts = catalog.resolve({"name": "auto", "device": "auto", "price_unit": "device"}, "cuda", device.name)
    verdict = "PASS" if facts.entry else "WARN"
    out.append(line(verdict, "catalog", f"'{device.name}' -> {facts.entry or 'unknown'} ({facts.how})"))
    gpu.close()
    return out


def _sampled_j(power_mw: Callable[[], int | None], stop: threading.Event, interval_s: float, out: list) -> None:
    while not stop.is_set():
        mw = power_mw()
        if mw is not None:
            out.append((time.perf_counter(), mw / MW_PER_W))
        stop.wait(interval_s)


def energy(seconds: float = 6.0) -> list[str]:
    torch, device, gpu = _device()
    a = torch.randn(8192, 8192, device=device.torch_device, dtype=torch.bfloat16)
    samples: list[tuple[float, float]] = []
    stop = threading.Event()
    thread = threading.Thread(target=_sampled_j, args=(gpu.power_mw, stop, 0.05, samples), daemon=True)
    e0, t0 = gpu.energy_mj(), time.perf_counter()
    thread.start()
    while time.perf_counter() - t0 < seconds:
        for _ in range(20):
            a = (a @ a).clamp_(-1, 1)
        torch.cuda.synchronize()
    stop.set()
    thread.join()
    e1 = gpu.energy_mj()
    sampled = sum((t1 - ta) * (p0 + p1) / 2 for (ta, p0), (t1, p1) in zip(samples, samples[1:], strict=False))
    counter = (e1 - e0) / MJ_PER_J if e0 is not None and e1 is not None else None
    gpu.close()
    return [energy_verdict(counter, sampled if len(samples) > 1 else None)]


def procs() -> list[str]:
    import os

    torch, device, gpu = _device()
    torch.ones(1, device=device.torch_device)  # hold a CUDA context, so that NVML lists this process
    used = gpu.memory_used()
    gpu.close()
    if used["nvml_process_used_bytes"] is not None:
        return [line("PASS", "procs", f"PID {os.getpid()} listed, {used['nvml_other_processes']} other process(es)")]
    return [line("WARN", "procs", f"PID {os.getpid()} not listed: {used['nvml_process_note']}")]


def int8() -> list[str]:
    from omegaconf import OmegaConf

    from harness import models, precision
    from harness.config import CONF_DIR

    torch, device, gpu = _device()
    gpu.close()
    cfg = OmegaConf.to_container(OmegaConf.load(CONF_DIR / "model" / "125m.yaml"))
    model = models.build(cfg, precision.build_dtype("int8", "cuda"), device.torch_device, 0)
    precision.apply(model, "int8")
    return [int8_verdict(b, precision.observe_int8(model, b, 128, device.torch_device, "cuda")) for b in (1, 32)]


def verdict(root: str) -> list[str]:
    from harness import results

    found = [r for _, r in results.iter_results(Path(root))]
    return run_verdicts(found) if found else [line("FAIL", "runs", f"no result.json under {root}")]


def main(argv: list[str]) -> int:
    checks = {"identity": identity, "energy": energy, "procs": procs, "int8": int8, "verdict": verdict}
    if not argv or argv[0] not in checks:
        print(__doc__, file=sys.stderr)
        return 2
    args = [float(a) if argv[0] == "energy" else a for a in argv[1:]]
    try:
        lines = checks[argv[0]](*args)
    except Exception as exc:  # a check that cannot run is a failed check, said in one line
        lines = [line("FAIL", argv[0], f"{type(exc).__name__}: {exc}")]
    print("\n".join(lines), flush=True)
    return 1 if any(s.startswith("FAIL") for s in lines) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
