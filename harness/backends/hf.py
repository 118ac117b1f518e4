"""Hugging Face eager: a transformers causal LM (harness.models) called as a plain PyTorch module."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from harness import models
from harness.backends.base import DECODE, GENERATE, LOGITS, PREFILL, TRAIN_STEP, Step
from harness.backends.module import ModuleBackend


class HFEager(ModuleBackend):
    name = "hf"
    capabilities = frozenset({PREFILL, DECODE, LOGITS, GENERATE, TRAIN_STEP})
    holds_weights = True

    def __init__(self) -> None:
        super().__init__()
        # forward() asks for the last position's logits only where the model supports it, as serving
        # engines do; otherwise the full logits (the same work a plain HF forward does)
        self._kwargs: dict[str, Any] = {"logits_to_keep": 1}
        self.last_position_only: bool | None = None

    def load(self, model_cfg: Mapping[str, Any], dtype: torch.dtype, device: str, seed: int) -> torch.nn.Module:
        """Build (or load from a local path) the model in `dtype` on `device`, seeded."""
        self.model = models.build(model_cfg, dtype, device, seed)
        return self.model

    def describe(self) -> dict[str, Any]:
        """Parameter counts and shape numbers (harness.models.describe), before any quantization."""
        return models.describe(self.model)

    def logits(self, ids: torch.Tensor) -> torch.Tensor:
        """Every position's logits (batch, positions, vocab) of `ids`, without a cache (the `logits`
        capability): what held-out scoring reads (harness.quality)."""
        return self.model(input_ids=ids, use_cache=False).logits

    def reference(self, model_cfg: Mapping[str, Any], device: str, seed: int) -> HFEager:
        """A second backend of this kind holding an fp32 build of the same weights (quality's reference)."""
        ref = type(self)()
        ref.load(model_cfg, torch.float32, device, seed)
        return ref

    def _call_model(self, fn: Any, ids: torch.Tensor, cache: Any) -> Any:
        """`fn` (the model, or its compiled form) over `ids` with the KV cache under the installed transformers'
        keyword, asking for the last position's logits only; a model that refuses that keyword gets the call
        without it, from then on."""
        with_cache = {models.cache_keyword(self.model): cache}
        try:
            return fn(input_ids=ids, use_cache=True, **with_cache, **self._kwargs)
        except TypeError:
            if not self._kwargs:
                raise
            self._kwargs = {}
            return fn(input_ids=ids, use_cache=True, **with_cache)

    def forward(self, ids: torch.Tensor, cache: Any = None) -> Step:
        """One prefill (cache None) or decode step with the KV cache, under the keyword the installed
        transformers takes (harness.models.cache_keyword)."""
        out = self._call_model(self.model, ids, cache)
        if cache is None:
            self.last_position_only = out.logits.shape[1] == 1 < ids.shape[1]
        return Step(out.logits, models.output_cache(out))

    def generate(self, ids: torch.Tensor, max_new_tokens: int) -> torch.Tensor:
        """Greedy generation (the `generate` capability), this engine's own loop over `forward`: the prefill's
        next token, then `max_new_tokens` - 1 decode steps on the KV cache. Returns (batch, max_new_tokens) ids."""
        out = self.forward(ids)
        tokens = [out.logits[:, -1:].argmax(-1)]
        for _ in range(max_new_tokens - 1):
            out = self.forward(tokens[-1], out.cache)
            tokens.append(out.logits[:, -1:].argmax(-1))
        return torch.cat(tokens, dim=1)

    def lm_loss(self, ids: torch.Tensor) -> torch.Tensor:
        """Mean next-token cross-entropy (nats) of `ids`, the model's own loss with the ids as labels."""
        return self.model(input_ids=ids, labels=ids).loss

    def _loss(self, part: Any) -> torch.Tensor:
        """The training loss of a micro-batch: next-token cross-entropy over its own ids (no KV cache under
        activation checkpointing)."""
        no_cache = {"use_cache": False} if self.checkpointed else {}
        return self.model(input_ids=part[0], labels=part[0], **no_cache).loss

    def _logits(self, part: Any) -> torch.Tensor:
        return self.model(input_ids=part[0]).logits

    def decode_traffic(self, batch: int, seq_len: int, decode_tokens: int) -> dict[str, Any]:
        """The decode step's memory traffic of the model as run (harness.traffic.decode_bytes): MBU's numerator."""
        from harness import traffic

        return traffic.decode_bytes(self.model, batch, seq_len, decode_tokens)
