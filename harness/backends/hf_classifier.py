"""Hugging Face eager, sequence classification: an encoder or decoder with a classification head
(harness.models.build_classifier), trained and scored by the classification workload."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from harness import models
from harness.backends.base import CLASSIFY, TRAIN_STEP, Step


class HFClassifier:
    name = "hf-classifier"
    capabilities = frozenset({CLASSIFY, TRAIN_STEP})
    holds_weights = True

    def __init__(self) -> None:
        self.model: torch.nn.Module | None = None

    def load(self, model_cfg: Mapping[str, Any], dtype: torch.dtype, device: str, seed: int) -> torch.nn.Module:
        """Build (or load from a local path) the classifier in `dtype` on `device`, seeded."""
        self.model = models.build_classifier(model_cfg, dtype, device, seed)
        return self.model

    def describe(self) -> dict[str, Any]:
        return models.describe(self.model)

    def forward(self, ids: torch.Tensor, cache: Any = None) -> Step:
        """Class logits (batch, classes) for token ids; padding (id 0) masked out. No cache."""
        out = self.model(input_ids=ids, attention_mask=(ids != 0).long())
        return Step(out.logits, None)
