"""Precision: fp32/fp16/bf16 through the model's dtype; int8 through torchao's quantize_.

A combination the device cannot run raises UnsupportedError (recorded as status `unsupported`);
nothing silently runs in another precision.
"""

from __future__ import annotations

from typing import Any

import torch

from harness.errors import UnsupportedError

_FLOAT = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
INT8_METHOD = "torchao Int8DynamicActivationInt8WeightConfig (dynamic per-token int8 activations, int8 weights)"


def build_dtype(name: str, device_type: str) -> torch.dtype:
    """The dtype the model is built in. int8 quantizes from fp32 on CPU, from bf16 on GPU (torchao's
    recommended high-precision dtype there)."""
    if name == "int8":
        return torch.bfloat16 if device_type == "cuda" else torch.float32
    return _FLOAT[name]


def _torchao_int8() -> tuple[Any, Any]:
    try:
        from torchao.quantization import Int8DynamicActivationInt8WeightConfig, quantize_
    except Exception as exc:  # ImportError, or a torchao built for another torch
        raise UnsupportedError(f"int8 needs torchao, which could not be imported: {type(exc).__name__}: {exc}") from exc
    return quantize_, Int8DynamicActivationInt8WeightConfig


def check_supported(name: str, device_type: str, cuda: Any = None) -> None:
    """Raise UnsupportedError when this device cannot run `name`."""
    if device_type == "cuda" and name == "bf16" and not cuda.is_bf16_supported():
        raise UnsupportedError("bf16 needs a GPU of compute capability >= 8.0 (Ampere or newer)")
    if name == "int8":
        _torchao_int8()


def apply(model: torch.nn.Module, name: str) -> dict[str, Any]:
    """Quantize in place where needed; return how the precision was obtained (for the result file)."""
    weight_dtype = next(model.parameters()).dtype
    if name != "int8":
        return {"name": name, "method": "model dtype", "weight_dtype": str(weight_dtype).replace("torch.", "")}
    quantize_, Int8Config = _torchao_int8()
    try:
        quantize_(model, Int8Config())
    except NotImplementedError as exc:
        raise UnsupportedError(f"torchao int8 is not implemented for this model/device: {exc}") from exc
    return {
        "name": name,
        "method": INT8_METHOD,
        "weight_dtype": "int8",
        "activation_dtype": str(weight_dtype).replace("torch.", ""),
    }
