"""What serving.engine=sequential runs for one request: generation one model step at a time, each step's tokens
yielded as soon as they are known on the host (what a streaming server sends).

`Greedy`: the backend's forward, a prefill and then one-token decode steps with the KV cache. `Speculative`
(workload.draft_model): the loop of harness.speculative, whose verify step yields its accepted proposals and the
target's own token at once. Each generator returns the request's draft counts (harness.speculative.Counts), or
None, and runs under inference mode in the engine's thread (the mode is per thread).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch

from harness import speculative

Steps = Iterator[list[int]]  # each model step's new tokens; returns Counts or None


class Greedy:
    """Greedy decoding through `forward` (harness.backends.base.Backend.forward)."""

    def __init__(self, forward: Callable[..., Any], device: Any):
        self.forward, self.device = forward, device

    def describe(self) -> dict[str, Any]:
        return {"generation": "greedy: a prefill, then one-token decode steps with the KV cache (backend.forward)"}

    def steps(self, prompt_ids: Sequence[int], max_tokens: int) -> Steps:
        """`max_tokens` tokens, one per step: the first from the prefill."""
        with torch.inference_mode():
            out = self.forward(torch.tensor([list(prompt_ids)], device=self.device))
            for left in range(max_tokens - 1, -1, -1):
                token = out.logits[:, -1:].argmax(-1)
                yield [int(token)]
                if left:
                    out = self.forward(token, out.cache)
        return None


class Speculative:
    """Greedy speculative decoding with `draft` (harness.speculative.Draft, built beside the served model)."""

    def __init__(self, draft: speculative.Draft, device: Any):
        self.draft, self.device = draft, device

    def describe(self) -> dict[str, Any]:
        how = "speculative (harness.speculative): the draft proposes draft_tokens, the target checks them at once"
        return {"generation": how, **self.draft.describe()}

    def steps(self, prompt_ids: Sequence[int], max_tokens: int) -> Steps:
        """`max_tokens` tokens: the prefill's first, then each verify step's accepted + 1."""
        d, counts = self.draft, speculative.Counts()
        with torch.inference_mode():
            ids = torch.tensor([list(prompt_ids)], device=self.device)
            yield from speculative.steps(d.target, d.model, ids, max_tokens - 1, d.k, counts)
        return counts
