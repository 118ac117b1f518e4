"""transformers' own continuous batching, in the worker's process (model.init_continuous_batching).

A request goes in with `add_request` (its own id, exactly max_tokens new tokens: EOS ignored, as
`bench serve --ignore-eos` does) and `record_timestamps=True`, so the engine stamps each token with
time.perf_counter() when it produces it — the clock the load generator uses. The finished output is
delivered on the load generator's event loop through `register_result_handler`.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import time
from typing import Any

from harness.serving.prompts import Request

PAGE_SIZE = 256  # tokens per KV-cache page: ContinuousBatchingConfig's default page_size
# transformers' PagedAttentionMemoryHandler: _min_max_batch_tokens and _default_max_batch_tokens
MIN_BATCH_TOKENS, MAX_BATCH_TOKENS_DEFAULT = 256, 8192


def _demand(s: dict[str, Any], sizes: tuple[int, int] | None) -> tuple[int, int]:
    """(requests that can be in flight at once, the longest request in tokens) for this run's load (`sizes`: the
    run's request count and longest request, where a dataset sets them)."""
    longest = int(s["input_len"] * (1 + s["len_range"])) + int(s["output_len"] * (1 + s["len_range"])) + 1
    in_flight = s["concurrency"] if s["arrival"] == "closed" else s["num_requests"]
    if sizes is not None:
        in_flight, longest = min(in_flight, sizes[0]) if s["arrival"] == "closed" else sizes[0], sizes[1] + 1
    if s.get("max_concurrency"):
        in_flight = min(in_flight, s["max_concurrency"])
    return in_flight, longest


def default_num_blocks(s: dict[str, Any], sizes: tuple[int, int] | None = None) -> int:
    """KV-cache pages for every request that can be in flight at once, at its longest. The engine's own default
    sizes the cache from a share of free device memory, which on a CPU is a share of all RAM."""
    in_flight, longest = _demand(s, sizes)
    return max(2, in_flight * math.ceil(longest / PAGE_SIZE))


def default_max_batch_tokens(s: dict[str, Any], sizes: tuple[int, int] | None = None) -> int:
    """Tokens one engine step may hold: every in-flight request at its longest, within transformers' own bounds
    (256 and its 8192 default). Left unset beside num_blocks, transformers 5.17 solves it from free memory, which on
    a CPU took 22 GB of RSS for a tiny model (5.25 did not)."""
    in_flight, longest = _demand(s, sizes)
    return min(MAX_BATCH_TOKENS_DEFAULT, max(MIN_BATCH_TOKENS, in_flight * longest))


class EngineError(RuntimeError):
    """The engine refused or failed a request; the message is the engine's own."""


class TransformersEngine:
    name = "transformers-continuous-batching"

    def __init__(self, model: Any, serving_cfg: dict[str, Any], sizes: tuple[int, int] | None = None):
        self.model, self.cfg, self.sizes = model, serving_cfg, sizes
        self.manager: Any = None
        self._ids = itertools.count()

    def info(self) -> dict[str, Any]:
        import transformers

        resolved = getattr(self.manager, "continuous_batching_config", None)
        keep = ("num_blocks", "max_batch_tokens", "max_requests_per_batch", "page_size", "scheduler_type")
        return {
            "name": self.name,
            "version": transformers.__version__,
            "in_process": True,
            "attn_implementation": getattr(self.model.config, "_attn_implementation", None),
            "config": {k: getattr(resolved, k, None) for k in keep} if resolved is not None else None,
        }

    async def __aenter__(self) -> TransformersEngine:
        import torch
        from transformers import GenerationConfig
        from transformers.generation.configuration_utils import ContinuousBatchingConfig

        # greedy, and no EOS: every request generates exactly its max_tokens
        gen = GenerationConfig(max_new_tokens=self.cfg["output_len"], do_sample=False, eos_token_id=-1)
        cb_kwargs = {k: self.cfg[k] for k in ("num_blocks", "max_batch_tokens") if self.cfg.get(k) is not None}
        cb_kwargs.setdefault("num_blocks", default_num_blocks(self.cfg, self.sizes))
        cb_kwargs.setdefault("max_batch_tokens", default_max_batch_tokens(self.cfg, self.sizes))
        # no_grad, not inference_mode: warmup() makes the batch processor and its static tensors on this thread, and
        # the engine's generation thread resets them in place before each session. Inference mode is thread-local and
        # transformers 5.17 starts that thread outside it (5.25 passes on the caller's mode): inference tensors made
        # here would fail every request there ("Inplace update to inference tensor outside InferenceMode").
        with torch.no_grad():
            self.manager = self.model.init_continuous_batching(
                generation_config=gen, continuous_batching_config=ContinuousBatchingConfig(**cb_kwargs)
            )
            self.manager.warmup()
            self.manager.start()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        if self.manager is not None:
            self.manager.stop(block=True, timeout=30)
            self.manager.destroy()

    async def stream(self, request: Request, deliver: Any) -> None:
        loop = asyncio.get_running_loop()
        done: asyncio.Future = loop.create_future()
        rid = f"h{next(self._ids)}"

        def on_result(output: Any) -> None:  # runs on the event loop (call_soon_threadsafe)
            if output.is_finished() and not done.done():
                done.set_result((time.perf_counter(), output))

        self.manager.register_result_handler(rid, on_result)
        added = self.manager.add_request(
            request.prompt_ids,
            request_id=rid,
            max_new_tokens=request.max_tokens,
            record_timestamps=True,
            eos_token_id=-1,
        )
        if added is None:
            raise EngineError("the continuous-batching manager refused the request (stopped or failed)")
        try:
            received_at, output = await done
        except asyncio.CancelledError:  # the load generator's timeout: free the engine's slot
            self.manager.cancel_request(rid)
            raise
        if output.error:
            raise EngineError(str(output.error))
        for t in output.timestamps or []:
            deliver(t, 1)
        if not output.timestamps and output.generated_tokens:
            deliver(received_at, len(output.generated_tokens))
