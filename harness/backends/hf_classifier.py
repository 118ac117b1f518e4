"""Hugging Face eager, sequence classification: an encoder or decoder with a classification head
(harness.models.build_classifier), trained and scored by the classification workload."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from harness import models
from harness.backends.base import CLASSIFY, TRAIN_STEP, Step
from harness.backends.module import ModuleBackend


class HFClassifier(ModuleBackend):
    name = "hf-classifier"
    capabilities = frozenset({CLASSIFY, TRAIN_STEP})
    holds_weights = True

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

    def classify(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Class logits (batch, classes) of token ids under their attention mask (the `classify` capability)."""
        return self.model(input_ids=ids, attention_mask=mask).logits

    def reference(self, model_cfg: Mapping[str, Any], device: str, seed: int) -> HFClassifier:
        """A second backend of this kind holding an fp32 build of the same classifier (quality's reference)."""
        ref = type(self)()
        ref.load(model_cfg, torch.float32, device, seed)
        return ref

    def _loss(self, part: Any) -> torch.Tensor:
        """The training loss of a micro-batch (ids, mask, labels, ...): the head's cross-entropy."""
        return self.model(input_ids=part[0], attention_mask=part[1], labels=part[2]).loss

    def _logits(self, part: Any) -> torch.Tensor:
        return self.classify(part[0], part[1])
