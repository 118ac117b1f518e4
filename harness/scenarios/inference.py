"""Inference: prefill over the prompt, then greedy decode with the KV cache, timed step by step.

One *request* is a prefill plus `decode_tokens` decode steps for a batch. Warm-up requests are excluded.
Each repeat times requests until both a minimum count and a minimum wall time are met, so that
figures are stable on a fast model and bounded on a slow one.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from harness import adaptive, data, flops, quality
from harness.backends.base import DECODE, LOGITS, PREFILL
from harness.probes.base import ProbeSet
from harness.probes.energy import between
from harness.scenarios import register
from harness.scenarios.base import Measured, Phase, RunContext, Scenario
from harness.scenarios.specs import InferenceSpec
from harness.stats import summarize
from harness.transforms.precision import WEIGHTS

Forward = Callable[..., Any]  # backend.forward(ids, cache=None) -> harness.backends.base.Step
Request = Callable[..., list]  # (forward, input_ids, decode_tokens, timer) -> timer marks, as `request`


@dataclass(frozen=True)
class Policy:
    warmup_iters: int
    min_iters: int
    min_time_s: float
    max_iters: int
    repeats: int | str  # a count, or "auto" (harness.adaptive: until `rule` stops on `figure`)
    rule: adaptive.Rule | None = None
    figure: str = "decode_tok_per_s"


def request(forward: Forward, input_ids: torch.Tensor, decode_tokens: int, timer: Any) -> list:
    """Run one request; return timer marks: [start, prefill done, first token, step 1, ..., step n]."""
    marks = [timer.mark()]
    out = forward(input_ids)
    marks.append(timer.mark())
    token = out.logits[:, -1:].argmax(-1)
    marks.append(timer.mark())
    cache = out.cache
    for _ in range(decode_tokens):
        out = forward(token, cache)
        cache = out.cache
        token = out.logits[:, -1:].argmax(-1)
        marks.append(timer.mark())
    timer.sync()
    return marks


def _rate(count: float, seconds: float) -> float | None:
    return count / seconds if seconds > 0 and count > 0 else None


def _figures(batch: int, seq_len: int, decode_tokens: int, samples: dict[str, list[float]]) -> dict[str, Any]:
    """Throughputs from summed times (tokens over the seconds spent on them)."""
    n = len(samples["request"])
    return {
        "prefill_tok_per_s": _rate(batch * seq_len * n, sum(samples["prefill"])),
        "decode_tok_per_s": _rate(batch * decode_tokens * n, sum(samples["decode"])),
        # generated tokens (the first comes from the prefill) per second of request wall time
        "e2e_tok_per_s": _rate(batch * (decode_tokens + 1) * n, sum(samples["request"])),
        "samples_per_s": _rate(batch * n, sum(samples["request"])),
    }


def run(
    forward: Forward,
    input_ids: torch.Tensor,
    decode_tokens: int,
    policy: Policy,
    timer: Any,
    probes: ProbeSet | None = None,
    energy_now: Callable[[], float | None] | None = None,
    one: Request = request,
) -> dict[str, Any]:
    """Warm up, then time `policy.repeats` repeats (or, with "auto", until policy.rule stops) with the probes
    around them (their readings stay in `probes.readings`). Returns metrics, per-repeat figures, timings and,
    for auto, how it stopped. `energy_now` (joules since the probes began, ProbeSet.energy_now) gives each
    repeat its energy. `one` runs a request (speculative decoding: harness.speculative)."""
    probes = probes if probes is not None else ProbeSet([])
    batch, seq_len = input_ids.shape
    try:
        with torch.inference_mode():
            t0 = time.perf_counter()
            for _ in range(policy.warmup_iters):
                one(forward, input_ids, decode_tokens, timer)
            while not probes.settled():  # a GPU: until its SM clock is steady, or a cap (harness.probes.clocks)
                one(forward, input_ids, decode_tokens, timer)
            warmup_s = time.perf_counter() - t0

            probes.begin()
            window_start = time.perf_counter()
            all_samples: dict[str, list[float]] = {"prefill": [], "ttft": [], "decode": [], "request": []}
            repeats, stopped = adaptive.run_repeats(
                lambda: _repeat(forward, input_ids, decode_tokens, policy, timer, all_samples, energy_now, one),
                policy.repeats,
                policy.rule,
                policy.figure,
            )
            window_s = time.perf_counter() - window_start
            probes.end()
    finally:  # a failed run still stops every probe (threads included)
        probes.close()

    metrics = {
        "prefill_latency_s": summarize(all_samples["prefill"]),
        "ttft_s": summarize(all_samples["ttft"]),
        "decode_latency_s": summarize(all_samples["decode"]),
        "request_latency_s": summarize(all_samples["request"]),
        **_figures(batch, seq_len, decode_tokens, all_samples),
        "iterations": len(all_samples["request"]),
        "tokens_prompt": batch * seq_len,
        "tokens_generated_per_request": batch * (decode_tokens + 1),
    }
    return {
        "metrics": metrics,
        "repeats": repeats,
        "warmup_s": warmup_s,
        "timed_window_s": window_s,
        "adaptive_repeats": stopped,
    }


def _repeat(
    forward: Forward,
    input_ids: torch.Tensor,
    decode_tokens: int,
    policy: Policy,
    timer: Any,
    all_samples: dict[str, list[float]],
    energy_now: Callable[[], float | None] | None = None,
    one: Request = request,
) -> dict[str, Any]:
    """One repeat: requests until min_iters and min_time_s are both met; its samples join all_samples."""
    batch, seq_len = input_ids.shape
    samples: dict[str, list[float]] = {"prefill": [], "ttft": [], "decode": [], "request": []}
    joules_before = energy_now() if energy_now is not None else None
    start = time.perf_counter()
    while len(samples["request"]) < policy.max_iters and (
        len(samples["request"]) < policy.min_iters or time.perf_counter() - start < policy.min_time_s
    ):
        w0 = time.perf_counter()
        marks = one(forward, input_ids, decode_tokens, timer)
        w1 = time.perf_counter()
        e = [timer.elapsed_s(a, b) for a, b in zip(marks, marks[1:], strict=False)]
        samples["prefill"].append(e[0])
        samples["ttft"].append(e[0] + e[1])
        samples["decode"].extend(e[2:])
        samples["request"].append(w1 - w0)
    wall_s = time.perf_counter() - start
    energy_j = between(joules_before, energy_now()) if energy_now is not None else None
    for k, v in samples.items():
        all_samples[k].extend(v)
    generated = batch * (decode_tokens + 1) * len(samples["request"])
    return {
        "iterations": len(samples["request"]),
        "wall_s": wall_s,
        # the repeat's energy (counters only: NVML, RAPL) and per generated token; null where not readable
        "energy_j": energy_j,
        "j_per_token": energy_j / generated if energy_j is not None else None,
        "prefill_latency_s_p50": summarize(samples["prefill"])["p50"],
        "ttft_s_p50": summarize(samples["ttft"])["p50"],
        "decode_latency_s_p50": summarize(samples["decode"])["p50"],
        "request_latency_s_p50": summarize(samples["request"])["p50"],
        **_figures(batch, seq_len, decode_tokens, samples),
    }


@register
class Inference(InferenceSpec, Scenario):
    """Offline batches: each rank (a replica) serves its own prompts; quality against fp32 after timing."""

    name = "inference"
    requires = frozenset({PREFILL, DECODE, LOGITS})
    precision_mode = WEIGHTS
    writes = (
        *("prefill_latency_s", "ttft_s", "decode_latency_s", "request_latency_s"),
        *("prefill_tok_per_s", "decode_tok_per_s", "e2e_tok_per_s", "samples_per_s"),
        *("iterations", "tokens_prompt", "tokens_generated_per_request", "logits_last_position_only"),
        *("flops_per_token_prefill", "flops_per_token_decode"),
        *("prefill_latency_s_p50", "ttft_s_p50", "decode_latency_s_p50", "request_latency_s_p50"),
        *("wall_s", "energy_j", "j_per_token", "usd_per_1m_tokens_generated"),
        *("achieved_flop_per_s_prefill", "achieved_flop_per_s_decode", "mfu_prefill", "mfu_decode"),
        *("weight_bytes_per_decode_step", "kv_cache_bytes_per_decode_step", "kv_cache_element_bytes"),
        *("bytes_per_decode_step", "decode_steps_per_s", "achieved_bytes_per_s_decode", "mbu_decode"),
        *("acceptance_rate", "mean_accepted_tokens", "tokens_per_verify_step", "draft_tokens_proposed"),
        *("draft_tokens_accepted", "verify_steps"),
    )
    summed_over_ranks = ("prefill_tok_per_s", "decode_tok_per_s", "e2e_tok_per_s", "samples_per_s")
    repeat_cost = ("e2e_tok_per_s", "usd_per_1m_tokens_generated")

    def run(self, ctx: RunContext) -> Measured:
        config, w, device = ctx.config, ctx.config["workload"], ctx.device.torch_device
        tokenizer = data.local_tokenizer(config["model"].get("path"))
        # each replica (rank) serves its own prompts
        ids = data.prompt_ids(config["batch_size"], config["seq_len"], config["seed"] + ctx.place.rank, tokenizer)
        ids = ids.to(device)
        policy = Policy(
            *(w[k] for k in ("warmup_iters", "min_iters", "min_time_s", "max_iters")),
            config["repeats"],
            adaptive.rule_from(config),
            self.repeats_figure(config),
        )
        draft = _Draft(ctx) if w.get("draft_model") else None
        one = draft.request if draft is not None else request
        out = run(ctx.backend.forward, ids, w["decode_tokens"], policy, ctx.timer, ctx.probes, ctx.energy_now, one)
        # quality beside speed (MLPerf): the same prompt through the fp32 reference, after the timed window
        t = time.perf_counter()
        scored = quality.evaluate(ctx.backend, config, ids, tokenizer, device)
        quality_s = time.perf_counter() - t
        m = out["metrics"]
        m["logits_last_position_only"] = getattr(ctx.backend, "last_position_only", None)
        m.update(flops.inference_flops(ctx.model_facts, config["seq_len"], w["decode_tokens"]))
        # MBU's numerator (the worker divides by the peak bandwidth): the model as run, transforms applied
        m.update(ctx.backend.decode_traffic(ids.shape[0], config["seq_len"], w["decode_tokens"]))
        m["decode_steps_per_s"] = m["decode_tok_per_s"] / ids.shape[0] if m["decode_tok_per_s"] else None
        sections = {"quality": scored}
        if draft is not None:  # acceptance, and the output checked against the target's own greedy one
            m.update(draft.counts.figures())
            sections["speculative"] = draft.section(ids, w["decode_tokens"], ctx.timer)
        phases = [
            Phase("prefill", m["prefill_tok_per_s"], m["flops_per_token_prefill"], 1),
            Phase("decode", m["decode_tok_per_s"], m["flops_per_token_decode"], 1),
        ]
        units = {"token": m["iterations"] * m["tokens_generated_per_request"], "sample": m["iterations"] * ids.shape[0]}
        return Measured(
            metrics=m,
            repeats=out["repeats"],
            timed_window_s=out["timed_window_s"],
            phases=phases,
            units=units,
            warmup_s=out["warmup_s"],
            sections=sections | ({"adaptive_repeats": out["adaptive_repeats"]} if out["adaptive_repeats"] else {}),
            timing={"quality_s": quality_s},
        )


class _Draft:
    """workload.draft_model: the draft built beside the target (harness.speculative.Draft), and the request that
    decodes speculatively (harness.speculative)."""

    def __init__(self, ctx: RunContext):
        from harness import speculative

        self.draft = speculative.Draft(ctx.config, ctx.backend.model, ctx.device.torch_device)
        self.counts = speculative.Counts()  # every request, warm-up included: the same prompt each time

    def request(self, forward: Forward, input_ids: torch.Tensor, decode_tokens: int, timer: Any) -> list:
        from harness import speculative

        d = self.draft
        return speculative.request(d.target, d.model, input_ids, decode_tokens, d.k, timer, self.counts)

    def section(self, ids: torch.Tensor, decode_tokens: int, timer: Any) -> dict[str, Any]:
        """The result's `speculative` section: the draft, k, the counts and the equality check (untimed)."""
        from harness import speculative

        t, d = time.perf_counter(), self.draft
        with torch.inference_mode():
            checked = speculative.check_equal(d.target, d.model, ids, decode_tokens, d.k, timer)
        return {
            **d.describe(),
            "counts_cover": "every request of the run, warm-up included (the same prompt each time)",
            # how many proposals each verify step kept: {accepted: steps}
            "accepted_per_step": dict(sorted(Counter(self.counts.accepted_per_step).items())),
            "greedy_equal": checked,
            "check_s": time.perf_counter() - t,
        }
