"""A transform defined by the test suite, registered through HARNESS_PLUGINS (see harness/transforms/__init__.py).

`scale_head` multiplies the output head's weights by `factor` (settings: +transform.scale_head.factor=...):
it changes the logits' temperature, so quality against the untransformed fp32 reference must move.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from harness.errors import ConfigError
from harness.transforms import register
from harness.transforms.base import Applied


@register
class ScaleHead:
    name = "scale_head"

    @staticmethod
    def validate(settings: Mapping[str, Any]) -> None:
        if not settings.get("factor", 0) > 0:
            raise ConfigError("transform.scale_head.factor", settings.get("factor"), "must be > 0")

    @classmethod
    def for_run(cls, ctx: Any, settings: Mapping[str, Any]) -> ScaleHead:
        return cls(float(settings.get("factor", 1.0)))

    def __init__(self, factor: float):
        self.factor = factor

    def check(self) -> None:
        pass

    def load_dtype(self) -> None:
        return None

    def apply(self, model: torch.nn.Module) -> Applied:
        with torch.no_grad():
            model.get_output_embeddings().weight.mul_(self.factor)
        how = {"name": self.name, "method": f"lm_head weights x {self.factor}", "kernels_changed": False}
        return Applied("transforms", how)
