"""Inference: prefill over the prompt, then greedy decode with the KV cache, timed step by step.

One *request* is a prefill plus `decode_tokens` decode steps for a batch. Warm-up requests are excluded.
Each repeat times requests until both a minimum count and a minimum wall time are met, so that
figures are stable on a fast model and bounded on a slow one.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from harness.stats import summarize
from harness.trackers.energy import between


@dataclass(frozen=True)
class Policy:
    warmup_iters: int
    min_iters: int
    min_time_s: float
    max_iters: int
    repeats: int


class _Forward:
    """model(...) asking for the last position's logits only where the model supports it, as serving
    engines do; otherwise the full logits (the same work a plain HF forward does)."""

    def __init__(self, model: torch.nn.Module):
        self.model = model
        self.kwargs: dict[str, Any] = {"logits_to_keep": 1}
        self.last_position_only: bool | None = None

    def __call__(self, ids: torch.Tensor, cache: Any = None) -> Any:
        try:
            out = self.model(input_ids=ids, past_key_values=cache, use_cache=True, **self.kwargs)
        except TypeError:
            if not self.kwargs:
                raise
            self.kwargs = {}
            out = self.model(input_ids=ids, past_key_values=cache, use_cache=True)
        if cache is None:
            self.last_position_only = out.logits.shape[1] == 1 < ids.shape[1]
        return out


def request(forward: _Forward, input_ids: torch.Tensor, decode_tokens: int, timer: Any) -> list:
    """Run one request; return timer marks: [start, prefill done, first token, step 1, ..., step n]."""
    marks = [timer.mark()]
    out = forward(input_ids)
    marks.append(timer.mark())
    token = out.logits[:, -1:].argmax(-1)
    marks.append(timer.mark())
    cache = out.past_key_values
    for _ in range(decode_tokens):
        out = forward(token, cache)
        cache = out.past_key_values
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
    model: torch.nn.Module,
    input_ids: torch.Tensor,
    decode_tokens: int,
    policy: Policy,
    timer: Any,
    trackers: Sequence[Any] = (),
    energy_now: Callable[[], float | None] | None = None,
) -> dict[str, Any]:
    """Warm up, then time `policy.repeats` repeats with the trackers around them.

    Returns metrics, per-repeat figures, each tracker's end() value (`tracked`, in order) and timings.
    `energy_now` (joules since the trackers began, from trackers.energy.reader) gives each repeat its energy.
    """
    forward = _Forward(model)
    batch, seq_len = input_ids.shape
    try:
        with torch.inference_mode():
            t0 = time.perf_counter()
            for _ in range(policy.warmup_iters):
                request(forward, input_ids, decode_tokens, timer)
            warmup_s = time.perf_counter() - t0

            for tracker in trackers:
                tracker.begin()
            window_start = time.perf_counter()
            all_samples: dict[str, list[float]] = {"prefill": [], "ttft": [], "decode": [], "request": []}
            repeats = [
                _repeat(forward, input_ids, decode_tokens, policy, timer, all_samples, energy_now)
                for _ in range(policy.repeats)
            ]
            window_s = time.perf_counter() - window_start
            tracked = [tracker.end() for tracker in trackers]
    finally:  # a failed run still stops every tracker (threads included)
        for tracker in trackers:
            close = getattr(tracker, "close", None)
            if close is not None:
                close()

    metrics = {
        "prefill_latency_s": summarize(all_samples["prefill"]),
        "ttft_s": summarize(all_samples["ttft"]),
        "decode_latency_s": summarize(all_samples["decode"]),
        "request_latency_s": summarize(all_samples["request"]),
        **_figures(batch, seq_len, decode_tokens, all_samples),
        "iterations": len(all_samples["request"]),
        "tokens_prompt": batch * seq_len,
        "tokens_generated_per_request": batch * (decode_tokens + 1),
        "logits_last_position_only": forward.last_position_only,
    }
    return {
        "metrics": metrics,
        "repeats": repeats,
        "tracked": tracked,
        "warmup_s": warmup_s,
        "timed_window_s": window_s,
    }


def _repeat(
    forward: _Forward,
    input_ids: torch.Tensor,
    decode_tokens: int,
    policy: Policy,
    timer: Any,
    all_samples: dict[str, list[float]],
    energy_now: Callable[[], float | None] | None = None,
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
        marks = request(forward, input_ids, decode_tokens, timer)
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
