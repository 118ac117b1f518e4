"""A backend defined by the test suite, registered through HARNESS_PLUGINS (harness/plugins.py): Hugging Face
eager with a `stream` capability (greedy tokens one at a time, each through `forward` with the KV cache),
and the scenario that asks for it by name (Spec.backend) and times its first streamed token."""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from typing import Any

import torch
from harness_test_scenarios import PrefillOnly

from harness import backends, data
from harness.backends.base import PREFILL
from harness.backends.hf import HFEager
from harness.scenarios import register
from harness.scenarios.base import Measured, Phase, RunContext
from harness.stats import summarize

STREAM = "stream"


@backends.register
class StreamingHF(HFEager):
    name = "hf-stream"
    capabilities = HFEager.capabilities | {STREAM}

    def stream(self, ids: torch.Tensor, steps: int) -> Iterator[torch.Tensor]:
        """Greedy next tokens (batch, 1), one per step: the prefill's, then each decode step's."""
        out = self.forward(ids)
        for _ in range(steps):
            token = out.logits[:, -1:].argmax(-1)
            yield token
            out = self.forward(token, out.cache)


@register
class FirstStreamed(PrefillOnly):
    """Time to the first streamed token: the prompt's prefill, through the backend's `stream`."""

    name = "first_streamed"
    requires = frozenset({PREFILL, STREAM})

    def backend(self, config: Mapping[str, Any]) -> str:
        return StreamingHF.name

    def run(self, ctx: RunContext) -> Measured:
        cfg = ctx.config
        ids = data.prompt_ids(cfg["batch_size"], cfg["seq_len"], cfg["seed"]).to(ctx.device.torch_device)
        first = lambda: next(ctx.backend.stream(ids, 1))  # noqa: E731
        times, per_repeat = [], []
        with torch.inference_mode():
            first()  # warm-up
            ctx.probes.begin()
            start = time.perf_counter()
            try:
                for _ in range(cfg["repeats"]):
                    t0, a = time.perf_counter(), ctx.timer.mark()
                    first()
                    b = ctx.timer.mark()
                    ctx.timer.sync()
                    times.append(ctx.timer.elapsed_s(a, b))
                    per_repeat.append({"prefill_latency_s_p50": times[-1], "wall_s": time.perf_counter() - t0})
                window_s = time.perf_counter() - start
                ctx.probes.end()
            finally:
                ctx.probes.close()
        tokens = ids.numel() * len(times)
        rate = tokens / sum(times)
        metrics = {"prefill_latency_s": summarize(times), "prefill_tok_per_s": rate}
        flop = 2 * ctx.model_facts["matmul_params"]
        return Measured(metrics, per_repeat, window_s, [Phase("prefill", rate, flop, 1)], {"token": tokens})
