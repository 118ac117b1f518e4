"""Precision as a transform: inference runs in the model's dtype (fp32/fp16/bf16) or torchao int8;
training keeps fp32 weights and runs mixed precision through autocast (fp16 with a gradient scaler).

A combination the device cannot run raises UnsupportedError (status `unsupported`); nothing silently
runs in another precision. The dtype and quantization mechanics live in harness.precision.
"""

from __future__ import annotations

from typing import Any

import torch

from harness import precision
from harness.errors import UnsupportedError
from harness.transforms import register
from harness.transforms.base import Applied

WEIGHTS, AUTOCAST = "weights", "autocast"  # how a scenario takes its precision (Scenario.precision_mode)
REMOTE_METHOD = "the remote engine's own (see serving.engine)"
_AUTOCAST = {"bf16": torch.bfloat16, "fp16": torch.float16}


@register
class Precision:
    name = "precision"

    @classmethod
    def for_run(cls, ctx: Any, settings: Any) -> Precision:
        """The run's precision group (precision.name), taken as its scenario takes precision."""
        return cls(ctx.config["precision"]["name"], ctx.precision_mode, ctx.device_type, ctx.cuda, ctx.holds_weights)

    def __init__(self, name: str, mode: str, device_type: str, cuda: Any = None, holds_weights: bool = True):
        if mode not in (WEIGHTS, AUTOCAST):
            raise ValueError(f"precision mode {mode!r} is not valid: choose {WEIGHTS} or {AUTOCAST}")
        self.name, self.mode, self.device_type, self.cuda = name, mode, device_type, cuda
        self.holds_weights = holds_weights

    def check(self) -> None:
        if self.mode == AUTOCAST and self.name == "int8":
            raise UnsupportedError("int8 is an inference precision: training runs in fp32, bf16 or fp16")
        precision.check_supported(self.name, self.device_type, self.cuda)

    def load_dtype(self) -> torch.dtype:
        if self.mode == AUTOCAST:
            return torch.float32  # master weights in fp32; autocast casts per op
        return precision.build_dtype(self.name, self.device_type)

    def apply(self, model: torch.nn.Module) -> Applied:
        if not self.holds_weights:  # a shape on meta: the engine that holds the weights chose their precision
            return Applied("precision", {"name": self.name, "method": REMOTE_METHOD})
        if self.mode == WEIGHTS:
            return Applied("precision", precision.apply(model, self.name))
        how = {
            "name": self.name,
            "method": "autocast" if self.name != "fp32" else "fp32",
            "weight_dtype": "float32",
            "grad_scaler": self.name == "fp16",
        }
        return Applied("precision", how, {"autocast_dtype": _AUTOCAST.get(self.name)})
