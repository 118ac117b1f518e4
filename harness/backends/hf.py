"""Hugging Face eager: a transformers causal LM (harness.models) called as a plain PyTorch module."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from harness import models
from harness.backends.base import DECODE, GENERATE, LOGITS, PREFILL, TRAIN_STEP, Step


class HFEager:
    name = "hf"
    capabilities = frozenset({PREFILL, DECODE, LOGITS, GENERATE, TRAIN_STEP})
    holds_weights = True

    def __init__(self) -> None:
        self.model: torch.nn.Module | None = None
        # forward() asks for the last position's logits only where the model supports it, as serving
        # engines do; otherwise the full logits (the same work a plain HF forward does)
        self._kwargs: dict[str, Any] = {"logits_to_keep": 1}
        self.last_position_only: bool | None = None

    @classmethod
    def around(cls, model: torch.nn.Module) -> HFEager:
        """A backend for an already built model (tests, benchmarks)."""
        backend = cls()
        backend.model = model
        return backend

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
