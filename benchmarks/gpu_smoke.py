"""The GPU checks of benchmarks/gpu_smoke.sh, one subcommand each; every check prints one verdict line,
"PASS|WARN|FAIL <check>: <what was seen>", and the exit code is 1 when any check failed.

    python benchmarks/gpu_smoke.py identity        torch's device vs NVML's (name, UUID, memory, MIG), catalog entry
    python benchmarks/gpu_smoke.py energy [S]      NVML energy counter vs sampled power over S s of matmul load
    python benchmarks/gpu_smoke.py procs           NVML's process list vs this process's PID
    python benchmarks/gpu_smoke.py int8            torchao int8 kernel path at batch 1 and 32 (model=125m)
    python benchmarks/gpu_smoke.py verdict DIR     the harness runs under DIR: status, launcher, MFU, energy, clocks
    python benchmarks/gpu_smoke.py stop-if-same DIR  one line and exit 3 when every run under DIR failed the same way
    python benchmarks/gpu_smoke.py table DIR [JSON]  a table of the runs under DIR (and of gpu_overhead.py's JSON)
"""

from __future__ import annotations

import json
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
        problems += [w for w in r.get("warnings", []) if "NVML device" in w or "fork server" in w]
        mode = (r.get("launcher") or {}).get("mode")
        if mode not in ("preload", "torchrun"):  # the default launcher forks every single-GPU run
            problems.append(f"launched by {mode}, not by the fork server (launcher.preload is on by default)")
        clocks = _clocks(r)
        if clocks is None:
            problems.append("no GPU clocks recorded (interference.gpus[].clocks)")
        verdict = "FAIL" if problems else "WARN" if _disturbed(r) else "PASS"
        detail = "; ".join(problems) or f"MFU {', '.join(f'{v:.3f}' for v in mfu) or 'null'}"
        if not problems and clocks is not None:
            detail += f"; SM {_clock_text(clocks)}"
        if verdict == "WARN":
            detail += f"; disturbed: {_disturbed(r)}"
        out.append(line(verdict, f"run {name}", detail))
    return out


def _clocks(r: dict[str, Any]) -> dict[str, Any] | None:
    gpus = (r.get("interference") or {}).get("gpus") or []
    return gpus[0].get("clocks") if gpus and gpus[0].get("clocks") else None


def _disturbed(r: dict[str, Any]) -> str | None:
    sec = r.get("interference") or {}
    return sec.get("reason") or "disturbed" if sec.get("disturbed") else None


def _clock_text(c: dict[str, Any]) -> str:
    sm = c.get("sm_mhz") or {}
    until = (c.get("warmup") or {}).get("until")
    return f"{sm.get('min')}/{sm.get('start')}/{sm.get('end')} of {c.get('sm_max_mhz')} MHz (warm-up: {until})"


def same_failure(results: list[dict[str, Any]]) -> str | None:
    """One line when there are runs, none ok, all with the same status and first line of reason; else None."""
    if not results or any(r["status"] == "ok" for r in results):
        return None
    ways = {(r["status"], ((r.get("reason") or "").strip().splitlines() or [""])[0][:300]) for r in results}
    if len(ways) != 1:
        return None
    status, reason = ways.pop()
    return line("FAIL", "all-runs", f"every run ({len(results)}) failed the same way, stopping: {status}: {reason}")


def table(results: list[dict[str, Any]], overhead: dict[str, Any] | None = None) -> list[str]:
    """The runs, one row each (status, launcher, decode step p50, throughput, clocks, disturbed), then the
    harness/bare ratios of gpu_overhead.py with both sides' SM clocks."""
    rows = [
        "| run | status | launcher | decode step p50 ms | tok/s | SM MHz min/start/end of max (warm-up) | disturbed |"
    ]
    rows.append("|---|---|---|---|---|---|---|")
    for r in results:
        kf, m = r["key_fields"], r.get("metrics") or {}
        name = f"{kf['workload']} {kf['model']} {kf['precision']} bs={kf['batch_size']}"
        p50 = (m.get("decode_latency_s") or {}).get("p50")
        rate = m.get("decode_tok_per_s") or m.get("output_tok_per_s") or m.get("train_tok_per_s")
        clocks = _clocks(r)
        cells = [
            name,
            r["status"],
            (r.get("launcher") or {}).get("mode"),
            f"{p50 * MS_PER_S:.2f}" if p50 else "–",
            f"{rate:.1f}" if rate else "–",
            _clock_text(clocks) if clocks else "–",
            _disturbed(r) or "no",
        ]
        rows.append("| " + " | ".join(str(c) for c in cells) + " |")
    if overhead:
        rows += ["", f"harness vs bare loop ({overhead['model']} {overhead['precision']}, goal >= {overhead['goal']}):"]
        rows += [
            "| batch | phase | harness tok/s | bare tok/s | ratio | harness SM min | bare SM min |",
            "|---|---|---|---|---|---|---|",
        ]
        for batch, b in overhead["batches"].items():
            last = b["rounds"][-1] if b["rounds"] else {}
            sm = {side: (last.get(side) or {}).get("clocks", {}).get("sm_mhz_min") for side in ("harness", "bare")}
            for phase, f in b["compare"].items():
                if f.get("ratio_median") is None:
                    rows.append(f"| {batch} | {phase} | – | – | – | {sm['harness']} | {sm['bare']} |")
                    continue
                rows.append(
                    f"| {batch} | {phase} | {f['harness_tok_per_s_median']:.1f} | {f['bare_tok_per_s_median']:.1f} | "
                    f"{f['ratio_median']:.3f} | {sm['harness']} | {sm['bare']} |"
                )
    return rows


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


def _found(root: str) -> list[dict[str, Any]]:
    from harness import results

    return [r for _, r in results.iter_results(Path(root))]


def main(argv: list[str]) -> int:
    checks = {"identity": identity, "energy": energy, "procs": procs, "int8": int8, "verdict": verdict}
    if argv[:1] == ["stop-if-same"] and len(argv) == 2:
        stop = same_failure(_found(argv[1]))
        if stop:
            print(stop, flush=True)
        return 3 if stop else 0
    if argv[:1] == ["table"] and len(argv) in (2, 3):
        extra = Path(argv[2]) if len(argv) == 3 else None
        overhead = json.loads(extra.read_text()) if extra is not None and extra.exists() else None
        print("\n".join(table(_found(argv[1]), overhead)), flush=True)
        return 0
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
