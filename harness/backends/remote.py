"""A remote engine: the model is served by another process (serving.engine=openai), so nothing is loaded here.

The backend holds only the model's shape on the meta device (no memory, no weights) so that the run
still has its parameter counts and FLOP figures; the engine itself generates, over HTTP.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from harness import models
from harness.backends.base import CLASSIFY, GENERATE, LOGITS, TRAIN_STEP, lacks


class RemoteEngine:
    name = "remote"
    capabilities = frozenset({GENERATE})  # through the engine's own API (harness.serving.engines)
    holds_weights = False  # transforms record the engine's own precision instead of changing weights

    def __init__(self) -> None:
        self.model: Any = None

    def load(self, model_cfg: Mapping[str, Any], dtype: Any, device: str, seed: int) -> Any:
        """The model of model_cfg on the meta device (harness.serving.shape.meta_model); `device` and
        `seed` do not apply: no weights exist here."""
        from harness.serving.shape import meta_model

        self.model = meta_model(model_cfg, dtype)
        return self.model

    def describe(self) -> dict[str, Any]:
        return models.describe(self.model)

    def context_length(self) -> int | None:
        """The served model's context, from its config (the shape loaded here)."""
        return getattr(getattr(self.model, "config", None), "max_position_embeddings", None)

    # what it lacks: every call of the model in this process (no weights here); the engine generates over
    # HTTP (harness.serving.engines), which the serving scenario drives, not through these methods
    def forward(self, ids: Any, cache: Any = None) -> Any:
        raise NotImplementedError("a remote engine's model is called through its API, not forward()")

    def generate(self, ids: Any, max_new_tokens: int) -> Any:
        raise NotImplementedError("a remote engine generates through its API (harness.serving.engines)")

    def logits(self, ids: Any) -> Any:
        raise lacks(self, LOGITS, "the weights are served elsewhere")

    def train_step(self, *args: Any, **kwargs: Any) -> Any:
        raise lacks(self, TRAIN_STEP, "the weights are served elsewhere")

    def classify(self, ids: Any, mask: Any) -> Any:
        raise lacks(self, CLASSIFY, "the weights are served elsewhere")
