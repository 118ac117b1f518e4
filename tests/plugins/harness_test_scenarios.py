"""Scenarios defined by the test suite, registered through HARNESS_PLUGINS (see harness/scenarios/__init__.py).

`prefill_only` times prompt forwards alone, with the probes around the window; `needs_stream` asks for
a backend capability Hugging Face eager does not declare, so its run must end `unsupported`. Both run on
inference's workload node (`workload.name=prefill_only`). `prefill_passes` declares its own workload schema
(Spec.schema, stored as the option `workload=prefill_passes`): `workload.passes` prompt forwards per repeat,
and no other workload's fields.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch

from harness import data
from harness.backends.base import PREFILL
from harness.errors import ConfigError
from harness.scenarios import register
from harness.scenarios.base import Measured, Phase, RunContext, Scenario
from harness.scenarios.schemas import WorkloadConfig
from harness.stats import summarize
from harness.transforms.precision import WEIGHTS


@register
class PrefillOnly(Scenario):
    name = "prefill_only"
    requires = frozenset({PREFILL})
    precision_mode = WEIGHTS
    writes = ("prefill_latency_s", "prefill_tok_per_s", "prefill_latency_s_p50", "wall_s")
    summed_over_ranks = ("prefill_tok_per_s",)

    def run(self, ctx: RunContext) -> Measured:
        cfg = ctx.config
        ids = data.prompt_ids(cfg["batch_size"], cfg["seq_len"], cfg["seed"]).to(ctx.device.torch_device)
        per_repeat, times = [], []
        with torch.inference_mode():
            ctx.backend.forward(ids)  # warm-up
            ctx.probes.begin()
            start = time.perf_counter()
            try:
                for _ in range(cfg["repeats"]):
                    t0 = time.perf_counter()
                    a = ctx.timer.mark()
                    ctx.backend.forward(ids)
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


@register
class NeedsStream(PrefillOnly):
    name = "needs_stream"
    requires = frozenset({PREFILL, "stream"})


@dataclass
class PrefillPassesWorkload(WorkloadConfig):
    """The plugin's own workload node: only what it reads."""

    passes: int = 2  # timed prompt forwards per repeat


@register
class PrefillPasses(PrefillOnly):
    name = "prefill_passes"
    schema = PrefillPassesWorkload

    def key_fields(self, config: Mapping[str, Any]) -> dict[str, Any]:
        return {"passes": config["workload"]["passes"]}

    def slug_work(self, fields: Mapping[str, Any]) -> str:
        return f"passes{fields['passes']}"

    def validate(self, cfg: Any) -> None:
        if cfg.workload.passes < 1:
            raise ConfigError("workload.passes", cfg.workload.passes, "must be >= 1")

    def run(self, ctx: RunContext) -> Measured:
        cfg = ctx.config
        ids = data.prompt_ids(cfg["batch_size"], cfg["seq_len"], cfg["seed"]).to(ctx.device.torch_device)
        times, per_repeat = [], []
        with torch.inference_mode():
            ctx.probes.begin()
            start = time.perf_counter()
            try:
                for _ in range(cfg["repeats"]):
                    t0, a = time.perf_counter(), ctx.timer.mark()
                    for _ in range(cfg["workload"]["passes"]):
                        ctx.backend.forward(ids)
                    b = ctx.timer.mark()
                    ctx.timer.sync()
                    times.append(ctx.timer.elapsed_s(a, b) / cfg["workload"]["passes"])
                    per_repeat.append({"prefill_latency_s_p50": times[-1], "wall_s": time.perf_counter() - t0})
                window_s = time.perf_counter() - start
                ctx.probes.end()
            finally:
                ctx.probes.close()
        tokens = ids.numel() * len(times) * cfg["workload"]["passes"]
        rate = ids.numel() / (sum(times) / len(times))
        metrics = {"prefill_latency_s": summarize(times), "prefill_tok_per_s": rate}
        flop = 2 * ctx.model_facts["matmul_params"]
        return Measured(metrics, per_repeat, window_s, [Phase("prefill", rate, flop, 1)], {"token": tokens})
