"""torch.compile over Hugging Face eager (backend=compile): the same module, its forward compiled by inductor
(fused kernels; CUDA graphs with mode=reduce-overhead on a GPU), after the transforms changed the model.

Compilation happens before the first request: rounds of a prefill and decode steps until one compiles nothing
(the first prefill meets an empty cache, later ones a reset one), never in the timed window; timed as
`compile_s` (timing.compile_s, priced as cost.compile_usd). With dynamic=false every shape is its own graph;
a call that compiles again for a shape already served is a recompilation, counted (`recompiles`). A
transformers StaticCache sized for the run (seq_len + decode_tokens) keeps every decode step one shape;
it is reused, reset at each prefill, so its buffers keep their addresses (what CUDA graphs need).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import torch

from harness import models
from harness.backends.base import DECODE, GENERATE, LOGITS, PREFILL, TRAIN_STEP, Step, lacks
from harness.backends.hf import HFEager
from harness.errors import UnsupportedError

WARM_ROUNDS = 4  # at most: a model that still compiles in its fourth round is counted in `recompiles` later
STATIC_CACHE = "transformers StaticCache (preallocated to max_cache_len; one shape per decode step)"


def graphs_compiled() -> int:
    """Graphs dynamo has compiled in this process so far (torch._dynamo.utils.counters)."""
    from torch._dynamo.utils import counters

    return int(counters["stats"]["unique_graphs"])


class HFCompiled(HFEager):
    name = "hf-compile"
    # not train_step (the training scenarios call the eager module's backward) nor generate (an engine's loop)
    capabilities = frozenset({PREFILL, DECODE, LOGITS})

    def __init__(self, settings: Mapping[str, Any] | None = None, max_cache_len: int | None = None) -> None:
        super().__init__()
        s = dict(settings or {})
        self.mode, self.fullgraph = s.get("mode", "default"), bool(s.get("fullgraph", False))
        self.dynamic, self.static_cache = bool(s.get("dynamic", False)), bool(s.get("static_cache", True))
        self.max_cache_len = max_cache_len
        self._compiled: Any = None
        self._cache: Any = None
        self._prompt: torch.Tensor | None = None  # the last prefill's ids (agreement with eager, after the window)
        self._seen: set[tuple] = set()
        self.compile_s, self.compile_calls, self.graphs, self.recompiles = 0.0, 0, 0, 0
        self.cache_used: str | None = None
        self._cache_batch = 0

    def train_step(self, *args: Any, **kwargs: Any) -> Any:
        raise lacks(self, TRAIN_STEP, "the training scenarios call the eager module's backward (backend=eager)")

    def generate(self, ids: torch.Tensor, max_new_tokens: int) -> Any:
        raise lacks(self, GENERATE, "its compiled forward is timed step by step by the inference scenario")

    def _static_cache(self, batch: int) -> Any:
        """The run's StaticCache, reset (None where the model or transformers has none: its dynamic cache)."""
        if not (self.static_cache and self.max_cache_len and getattr(self.model, "_can_compile_fullgraph", True)):
            return None
        if self._cache is None or self._cache_batch != batch:
            self._cache_batch = batch
            try:
                from transformers import StaticCache

                self._cache = StaticCache(config=self.model.config, max_cache_len=self.max_cache_len)
            except (ImportError, TypeError, ValueError):
                self.static_cache = False
                return None
        else:
            self._cache.reset()
        self.cache_used = STATIC_CACHE
        return self._cache

    def forward(self, ids: torch.Tensor, cache: Any = None) -> Step:
        """As HFEager.forward, through the compiled module; the first prefill warms it up (compiles, timed)."""
        if self._compiled is None:
            kwargs = {"mode": None if self.mode == "default" else self.mode}
            self._compiled = torch.compile(self.model, fullgraph=self.fullgraph, dynamic=self.dynamic, **kwargs)
        prefill = cache is None
        if prefill:
            if self._prompt is None:
                self._warm(ids)
            self._prompt = ids
            cache = self._static_cache(ids.shape[0])
        shape = (tuple(ids.shape), prefill)
        before, t = graphs_compiled(), time.perf_counter()
        step = self._call(ids, cache)
        new = graphs_compiled() - before
        if new:  # after the warm rounds: a shape not seen, or a recompilation (counted)
            if ids.is_cuda:
                torch.cuda.synchronize(ids.device)
            self.compile_s += time.perf_counter() - t
            self.compile_calls += 1
            self.graphs += new
            self.recompiles += shape in self._seen
        self._seen.add(shape)
        if prefill:
            self.last_position_only = step.logits.shape[1] == 1 < ids.shape[1]
        return step

    def _warm(self, ids: torch.Tensor) -> None:
        """Before the first request: whole rounds of prefill and two decode steps until a round compiles
        nothing (the first prefill meets an empty cache, later ones a reset one: two graphs), all timed as
        compile_s. Every later compilation is counted as a recompile."""
        t, before = time.perf_counter(), graphs_compiled()
        for _ in range(WARM_ROUNDS):
            start = graphs_compiled()
            step = self._call(ids, self._static_cache(ids.shape[0]))
            for _ in range(2):
                step = self._call(step.logits[:, -1:].argmax(-1), step.cache)
            if graphs_compiled() == start:
                break
        if ids.is_cuda:
            torch.cuda.synchronize(ids.device)
        self.compile_s += time.perf_counter() - t
        self.graphs += graphs_compiled() - before
        self._seen.update({(tuple(ids.shape), True), ((ids.shape[0], 1), False)})

    def _call(self, ids: torch.Tensor, cache: Any) -> Step:
        from torch._dynamo.exc import BackendCompilerFailed, Unsupported

        try:
            out = self._call_model(self._compiled, ids, cache)
        except (Unsupported, BackendCompilerFailed) as exc:  # fullgraph=true over a graph break; a compiler failure
            first = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else ""
            raise UnsupportedError(
                f"torch.compile(mode={self.mode}, fullgraph={self.fullgraph}) cannot compile this model here: "
                f"{type(exc).__name__}: {first}"
            ) from exc
        return Step(out.logits, models.output_cache(out))

    def agreement(self, ids: torch.Tensor) -> dict[str, Any]:
        """The compiled prefill against the eager module's on the same prompt: the largest logit difference and
        whether the next tokens agree (inductor may reorder float operations). Outside any timed window."""
        graphs = graphs_compiled()
        with torch.inference_mode():
            compiled = self.forward(ids).logits[:, -1].float()
            eager = self.model(input_ids=ids, use_cache=False).logits[:, -1].float()
        self.graphs += graphs_compiled() - graphs  # a new graph here is after the window: counted, not timed
        return {
            "max_abs_logit_diff_vs_eager": float((compiled - eager).abs().max()),
            "next_token_agreement_vs_eager": float((compiled.argmax(-1) == eager.argmax(-1)).double().mean()),
        }

    def record(self) -> dict[str, Any]:
        """The result's `backend` section: what ran, what compiling cost, and how the compiled forward agrees
        with the eager one on the run's last prompt (after the timed window)."""
        agree = self.agreement(self._prompt) if self._prompt is not None else {}
        return agree | {
            "name": "compile",
            "implementation": self.name,
            "method": f"torch.compile(mode={self.mode}, fullgraph={self.fullgraph}, dynamic={self.dynamic}), inductor",
            "mode": self.mode,
            "cache": self.cache_used or "the model's dynamic cache",
            "compile_s": self.compile_s,
            "compile_calls_after_warm": self.compile_calls,
            "graphs": self.graphs,
            "recompiles": self.recompiles,
        }
