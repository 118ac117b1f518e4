"""Serving: open-loop load against an engine (harness/serving/, docs/serving.md), as a scenario.

In-process the engine serves the hf backend's model: transformers' continuous batching
(serving.engine=transformers), or the harness's own batch-1 engine (serving.engine=sequential: greedy through
the backend's forward, or speculative with workload.draft_model). A remote engine (serving.engine=openai)
serves weights this process never loads: the `remote` backend holds the model's shape only, for its
parameter counts and FLOP figures. $ and J per 1 M output tokens need
the run's cost and energy sections, so they are added in `finish`, which also ends a run that fell
short (too many failed requests, no probe met the SLO) as status `error`, its figures kept.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from harness import data, flops, quality
from harness.backends.base import GENERATE
from harness.scenarios import register
from harness.scenarios.base import Measured, Phase, RunContext, Scenario
from harness.scenarios.specs import ServingSpec
from harness.serving.keys import in_process
from harness.transforms.precision import WEIGHTS

# the figures of one load window (harness.serving.metrics.summarize_run), in result.metrics and flat in repeats
_LOAD = (
    *("generator_bottleneck", "requests_sent", "requests_completed", "requests_failed", "requests_timed_out"),
    *("failure_reasons", "requests_good", "slo_attainment", "window_s", "request_throughput_req_per_s"),
    *("output_tok_per_s", "total_tok_per_s", "goodput_req_per_s", "arrival_rate_req_per_s"),
    *("completion_rate_req_per_s", "output_tokens", "input_tokens", "offered_rate_req_per_s"),
    *("energy_j", "j_per_1m_output_tokens", "ttft_s_by_turn", "probe_stopped"),
    *("server_waiting_requests_mean", "server_waiting_requests_max", "server_running_requests_mean"),
    *("server_kv_cache_usage_max", "server_metrics_samples"),
)
_DISTRIBUTIONS = ("ttft_s", "tpot_s", "itl_s", "e2el_s", "queue_wait_s", "send_lateness_s")
_CACHE = ("prompt_tokens_cached", "prefix_cache_hit_rate", "ttft_s_cache_hit", "ttft_s_cache_miss")
_REPEAT_QUANTILES = tuple(f"{d}_{q}" for d in ("ttft_s", "tpot_s", "itl_s", "e2el_s", "send_lateness_s")
                          for q in ("p50", "p99", "n"))  # fmt: skip


@register
class Serving(ServingSpec, Scenario):
    """One process serves the load (gpus=1); the engine generates, the harness times every request."""

    name = "serving"
    requires = frozenset({GENERATE})
    precision_mode = WEIGHTS
    writes = (
        *_DISTRIBUTIONS,
        *_LOAD,
        *_CACHE,
        *_REPEAT_QUANTILES,
        *("capacity_req_per_s", "usd_per_1m_output_tokens", "j_per_1m_output_tokens_method"),
        *("per_1m_output_tokens_at", "slo", "wall_s", "flops_per_token_prefill", "flops_per_token_decode"),
        *("achieved_flop_per_s_decode", "mfu_decode"),
        # with a draft (serving.engine=sequential): over the measured requests (harness.serving.metrics.drafting)
        *("acceptance_rate", "mean_accepted_tokens", "tokens_per_verify_step", "draft_tokens_proposed"),
        *("draft_tokens_accepted", "verify_steps"),
    )
    repeat_cost = ("output_tok_per_s", "usd_per_1m_output_tokens")

    def run(self, ctx: RunContext) -> Measured:
        from harness.serving import scenario

        config, s = ctx.config, ctx.config["serving"]
        _refuse_draft(config)
        tokenizer = data.local_tokenizer(config["model"].get("path"))
        here = in_process(s)  # the weights load in this process
        draft = _draft(ctx) if config["workload"].get("draft_model") else None
        model = _served(ctx, draft) if here else None
        max_len = ctx.backend.context_length()  # a remote engine's from the model's config (its shape, loaded here)
        try:
            out = scenario.run(config, model, tokenizer, ctx.probes, ctx.energy_now, ctx.run_dir, max_len)
        finally:  # a warm-up that failed before the window began still stops every probe
            ctx.probes.close()
        m = out["metrics"]
        done = m["requests_completed"] or 0  # a dataset's lengths are its own: the run's mean request
        lens = (m["input_tokens"] / done, m["output_tokens"] / done) if done and s["dataset"] != "random" else None
        m.update(flops.inference_flops(ctx.model_facts, *(lens or (s["input_len"], s["output_len"]))))
        t = time.perf_counter()
        if here and out["first_prompt_ids"]:  # quality of the weights served (MLPerf), after the window
            import torch

            ids = torch.tensor([out["first_prompt_ids"]], device=ctx.device.torch_device)
            scored = quality.evaluate(ctx.backend, config, ids, tokenizer, ctx.device.torch_device)
        else:
            scored = {"status": "skipped", "reason": "serving.engine=openai: the weights are served elsewhere"}
        quality_s = time.perf_counter() - t
        sections = {"serving": out["serving"], "quality": scored}
        if draft is not None:  # what drafted, and the output checked against the target's own greedy one
            sections["speculative"] = _speculative_section(ctx, draft, out["first_prompt_ids"], out["first_max_tokens"])
        return Measured(
            metrics=m,
            repeats=out["repeats"],
            timed_window_s=out["timed_window_s"],
            phases=[Phase("decode", m["output_tok_per_s"], m["flops_per_token_decode"], 1)],
            units=out["units"],
            warmup_s=out["warmup_s"],
            sections=sections,
            timing={"quality_s": quality_s},
        )

    def finish(self, sections: dict[str, Any], config: Mapping[str, Any]) -> None:
        from harness.serving import accounting

        accounting.finish(sections, config)  # raises ServingFailed (status error) if the run fell short


def _served(ctx: RunContext, draft: Any) -> Any:
    """What the in-process engine serves: the model (transformers), or how each request is generated (sequential)."""
    from harness.serving import stepwise

    if ctx.config["serving"]["engine"] != "sequential":
        return ctx.backend.model
    device = ctx.device.torch_device
    return stepwise.Speculative(draft, device) if draft is not None else stepwise.Greedy(ctx.backend.forward, device)


def _draft(ctx: RunContext) -> Any:
    """workload.draft_model beside the served model (harness.speculative.Draft), where an engine takes one."""
    from harness import speculative

    return speculative.Draft(ctx.config, ctx.backend.model, ctx.device.torch_device)


def _speculative_section(ctx: RunContext, draft: Any, prompt_ids: list[int] | None, max_tokens: int) -> dict:
    """The result's `speculative` section: the draft, k, and the check that speculative output equals the
    target's own greedy output, on the run's first prompt, after the timed window (untimed)."""
    import torch

    from harness import speculative

    t = time.perf_counter()
    checked = None
    if prompt_ids:
        ids = torch.tensor([prompt_ids], device=ctx.device.torch_device)
        with torch.inference_mode():
            checked = speculative.check_equal(draft.target, draft.model, ids, max_tokens - 1, draft.k, ctx.timer)
    return {
        **draft.describe(),
        "counts_cover": "the measured requests (the warm-up excluded): acceptance_rate and the others in metrics, "
        "each request's own in serving.requests",
        "greedy_equal": checked,
        "check_s": time.perf_counter() - t,
    }


def _refuse_draft(config: Mapping[str, Any]) -> None:
    """workload.draft_model where the engine takes none: say which and why (status unsupported)."""
    draft = config["workload"].get("draft_model")
    engine = config["serving"]["engine"]
    if not draft or engine == "sequential":
        return
    import importlib.metadata

    from harness.errors import UnsupportedError

    if in_process(config["serving"]):
        version = importlib.metadata.version("transformers")
        raise UnsupportedError(
            f"workload.draft_model={draft}: serving.engine={engine}: transformers {version} continuous batching "
            "(generate_batch, ContinuousBatchingManager) takes no assistant model; serve with a draft through "
            "serving.engine=sequential (the harness's batch-1 engine), or measure it offline (workload=inference)"
        )
    raise UnsupportedError(
        f"workload.draft_model={draft}: a remote engine drafts with its own settings (vLLM --speculative-config, "
        "SGLang --speculative-algorithm), not the harness's; start it so with serving.server.command"
    )
