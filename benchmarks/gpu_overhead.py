"""Does the harness agree with an independent loop? Prefill and decode throughput as the harness measures it
(harness.scenarios.inference with its timer: CUDA events on a GPU, and its probes: clocks, warm-up until the SM
clock is steady) against a bare loop that shares no harness code beyond the model and the prompt: its own CUDA
events around each prefill and each decode step, its own warm-up, its own NVML clock readings. Same model, same
prompt, same process, alternated round by round so that drift hits both; the ratio harness/bare per phase and
batch size is the median over rounds (goal >= 0.95: GOAL). Each side's SM and memory clocks (min, max over its
timed part) are printed beside it, so a ratio at low clocks is seen as such.

    python benchmarks/gpu_overhead.py [--device cuda] [--model 1b] [--precision bf16] [--batch-sizes 1,32]
                                      [--rounds 3] [--seconds 2] [--out FILE] [--verdicts]

On a CPU (--device cpu) it runs the same code with perf_counter and no clocks (a dry run). `--verdicts` prints one
`PASS|FAIL bare-ratio-<phase>-b<batch>: ...` line per figure (benchmarks/gpu_smoke.sh) besides the JSON.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

GOAL = 0.95
PHASES = ("prefill", "decode")
MS_PER_S = 1e3


class BareClocks:
    """SM and memory clocks through pynvml directly (not harness.probes.nvml): read at marks, min and max kept."""

    def __init__(self, device_index: int | None):
        self.readings: list[tuple[int, int]] = []
        self._nvml = self._handle = None
        if device_index is None:
            return
        try:
            import pynvml

            pynvml.nvmlInit()
            props = torch.cuda.get_device_properties(device_index)
            uuid = str(props.uuid)
            self._handle = pynvml.nvmlDeviceGetHandleByUUID(
                uuid if uuid.startswith(("GPU-", "MIG-")) else f"GPU-{uuid}"
            )
            self._nvml = pynvml
        except Exception:  # no NVML: the bare side's clocks are unknown, said as null
            self._handle = None

    def read(self) -> None:
        if self._handle is not None:
            sm = self._nvml.nvmlDeviceGetClockInfo(self._handle, self._nvml.NVML_CLOCK_SM)
            mem = self._nvml.nvmlDeviceGetClockInfo(self._handle, self._nvml.NVML_CLOCK_MEM)
            self.readings.append((int(sm), int(mem)))

    def summary(self) -> dict[str, Any]:
        if not self.readings:
            return {"sm_mhz_min": None, "sm_mhz_max": None, "mem_mhz_min": None, "mem_mhz_max": None}
        sm, mem = zip(*self.readings, strict=True)
        return {"sm_mhz_min": min(sm), "sm_mhz_max": max(sm), "mem_mhz_min": min(mem), "mem_mhz_max": max(mem)}


def _stamp(cuda: bool) -> Any:
    if cuda:
        event = torch.cuda.Event(enable_timing=True)
        event.record()
        return event
    return time.perf_counter()


def _elapsed_s(cuda: bool, a: Any, b: Any) -> float:
    return a.elapsed_time(b) / MS_PER_S if cuda else b - a


def bare_request(model: Any, ids: torch.Tensor, decode_tokens: int, cuda: bool) -> tuple[float, list[float]]:
    """One request, no harness code: (prefill seconds, decode step seconds), timed with CUDA events (or
    perf_counter on a CPU), synchronised once at the end."""
    from harness import models  # the cache keyword and output of the installed transformers only

    keyword = models.cache_keyword(model)
    marks = [_stamp(cuda)]
    out = model(input_ids=ids, use_cache=True, logits_to_keep=1)
    marks.append(_stamp(cuda))
    token, cache = out.logits[:, -1:].argmax(-1), models.output_cache(out)
    for _ in range(decode_tokens):
        first = _stamp(cuda)
        out = model(input_ids=token, use_cache=True, logits_to_keep=1, **{keyword: cache})
        token, cache = out.logits[:, -1:].argmax(-1), models.output_cache(out)
        marks += [first, _stamp(cuda)]
    if cuda:
        torch.cuda.synchronize()
    steps = [_elapsed_s(cuda, marks[i], marks[i + 1]) for i in range(2, len(marks), 2)]
    return _elapsed_s(cuda, marks[0], marks[1]), steps


def bare(model: Any, ids: torch.Tensor, decode_tokens: int, seconds: float, cuda: bool, clocks: BareClocks) -> dict:
    """Prefill and decode tokens per second of the bare loop over `seconds`, after its own warm-up."""
    batch, seq_len = ids.shape
    with torch.inference_mode():
        warm_until = time.perf_counter() + min(2.0, seconds)
        while time.perf_counter() < warm_until:
            bare_request(model, ids, decode_tokens, cuda)
        prefill, decode, start = [], [], time.perf_counter()
        clocks.readings.clear()
        clocks.read()
        while time.perf_counter() - start < seconds or not prefill:
            p, steps = bare_request(model, ids, decode_tokens, cuda)
            prefill.append(p)
            decode += steps
            clocks.read()
    return {
        "prefill_tok_per_s": batch * seq_len * len(prefill) / sum(prefill),
        "decode_tok_per_s": batch * len(decode) / sum(decode) if decode else None,
        "clocks": clocks.summary(),
    }


def harnessed(model: Any, ids: torch.Tensor, decode_tokens: int, seconds: float, device: Any) -> dict:
    """The same through the harness's inference scenario, its timer and its probes (clocks on a GPU)."""
    from harness.backends.hf import HFEager
    from harness.probes import ProbeSet
    from harness.probes.interference import Interference
    from harness.probes.nvml import NvmlGpu
    from harness.probes.timing import timer_for
    from harness.scenarios import inference

    cuda = device.type == "cuda"
    gpu = NvmlGpu(device) if cuda else None
    label = f"{device.index} {device.name}" if cuda else None
    probes = ProbeSet([Interference(measure_cpu=False, gpu=gpu, gpu_label=label)])
    timer = timer_for(device.type, torch.cuda if cuda else None, device.torch_device if cuda else None)
    policy = inference.Policy(warmup_iters=1, min_iters=1, min_time_s=seconds, max_iters=10**9, repeats=1)
    out = inference.run(HFEager.around(model).forward, ids, decode_tokens, policy, timer, probes)
    if gpu is not None:
        gpu.close()
    part = (probes.sections().get("interference") or {}).get("gpu") or {}
    c = part.get("clocks") or {}
    sm, mem = c.get("sm_mhz") or {}, c.get("mem_mhz") or {}
    return {
        "prefill_tok_per_s": out["metrics"]["prefill_tok_per_s"],
        "decode_tok_per_s": out["metrics"]["decode_tok_per_s"],
        "clocks": {
            "sm_mhz_min": sm.get("min"),
            "sm_mhz_max": max([v for v in (sm.get("start"), sm.get("end")) if v is not None], default=None),
            "mem_mhz_min": mem.get("min"),
            "mem_mhz_max": max([v for v in (mem.get("start"), mem.get("end")) if v is not None], default=None),
            "warmup": c.get("warmup"),
            "event_reasons": c.get("event_reasons"),
        },
    }


def compare(rounds: list[dict[str, dict]]) -> dict[str, Any]:
    """Per phase: the median harness/bare ratio over rounds, with its spread and each side's median rate."""
    out: dict[str, Any] = {}
    for phase in PHASES:
        key = f"{phase}_tok_per_s"
        pairs = [(r["harness"][key], r["bare"][key]) for r in rounds if r["harness"][key] and r["bare"][key]]
        if not pairs:
            out[phase] = {"ratio_median": None}
            continue
        ratios = [h / b for h, b in pairs]
        out[phase] = {
            "ratio_median": statistics.median(ratios),
            "ratio_min": min(ratios),
            "ratio_max": max(ratios),
            "harness_tok_per_s_median": statistics.median(h for h, _ in pairs),
            "bare_tok_per_s_median": statistics.median(b for _, b in pairs),
        }
    return out


def verdicts(summary: dict[str, Any], goal: float = GOAL) -> list[str]:
    """One line per phase and batch: PASS when harness/bare >= goal, with both sides' clocks."""
    lines = []
    for batch, b in summary["batches"].items():
        clocks = {side: b["rounds"][-1][side]["clocks"] for side in ("harness", "bare")} if b["rounds"] else {}
        seen = ", ".join(
            f"{side} SM {c.get('sm_mhz_min')}-{c.get('sm_mhz_max')} MHz, mem {c.get('mem_mhz_min')} MHz"
            for side, c in clocks.items()
        )
        for phase in PHASES:
            f = b["compare"][phase]
            ratio = f.get("ratio_median")
            name = f"bare-ratio-{phase}-b{batch}"
            if ratio is None:
                lines.append(f"FAIL {name}: no figure")
                continue
            verdict = "PASS" if ratio >= goal else "FAIL"
            lines.append(
                f"{verdict} {name}: harness/bare {ratio:.3f} (goal >= {goal:g}; {f['harness_tok_per_s_median']:.1f} "
                f"vs {f['bare_tok_per_s_median']:.1f} tok/s; {seen})"
            )
    return lines


def run(device_name: str, model_name: str, prec: str, batches: list[int], rounds: int, seconds: float,
        seq_len: int, decode_tokens: int) -> dict[str, Any]:  # fmt: skip
    from omegaconf import OmegaConf

    from harness import data, hardware, models, precision
    from harness.config import CONF_DIR

    device = hardware.select(device_name, torch.cuda if device_name == "cuda" else None)
    cuda = device.type == "cuda"
    cfg = OmegaConf.to_container(OmegaConf.load(CONF_DIR / "model" / f"{model_name}.yaml"))
    model = models.build(cfg, precision.build_dtype(prec, device.type), device.torch_device, 0)
    clocks = BareClocks(device.index if cuda else None)
    summary: dict[str, Any] = {"device": device.name, "model": model_name, "precision": prec, "batches": {}}
    summary.update(seq_len=seq_len, decode_tokens=decode_tokens, seconds_per_side=seconds, goal=GOAL)
    for batch in batches:
        ids = data.prompt_ids(batch, seq_len, seed=0).to(device.torch_device)
        results = []
        for i in range(rounds):
            got = {}
            for side in ("harness", "bare") if i % 2 == 0 else ("bare", "harness"):
                if side == "harness":
                    got[side] = harnessed(model, ids, decode_tokens, seconds, device)
                else:
                    got[side] = bare(model, ids, decode_tokens, seconds, cuda, clocks)
            results.append(got)
        summary["batches"][batch] = {"rounds": results, "compare": compare(results)}
    return summary


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda", choices=("cuda", "cpu"))
    p.add_argument("--model", default="1b")
    p.add_argument("--precision", default="bf16", choices=("fp32", "fp16", "bf16"))
    p.add_argument("--batch-sizes", default="1,32")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--seconds", type=float, default=2.0)
    p.add_argument("--seq-len", type=int, default=128)
    p.add_argument("--decode-tokens", type=int, default=32)
    p.add_argument("--out", type=Path)
    p.add_argument("--verdicts", action="store_true", help="one PASS/FAIL line per phase and batch size")
    a = p.parse_args(argv)
    batches = [int(b) for b in a.batch_sizes.split(",")]
    summary = run(a.device, a.model, a.precision, batches, a.rounds, a.seconds, a.seq_len, a.decode_tokens)
    text = json.dumps(summary, indent=2, default=str)
    if a.out:
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(text + "\n")
    if not a.verdicts:
        print(text)
        return 0
    lines = verdicts(summary)
    print("\n".join(lines), flush=True)
    return 1 if any(line.startswith("FAIL") for line in lines) else 0


if __name__ == "__main__":
    sys.exit(main())
