"""Precision: fp32/fp16/bf16 through the model's dtype; int8 through torchao's quantize_.

A combination the device cannot run raises UnsupportedError (recorded as status `unsupported`);
nothing silently runs in another precision.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import torch

from harness import models
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
    # not cuda.is_bf16_supported(): by default (including_emulation=True) it is True on a T4 or V100 too,
    # where bf16 runs emulated, far below any bf16 peak; native bf16 starts with compute capability 8.0
    if device_type == "cuda" and name == "bf16":
        major, minor = cuda.get_device_capability(cuda.current_device())
        if major < 8:
            raise UnsupportedError(
                f"bf16 needs a GPU of compute capability >= 8.0 (Ampere or newer); this one is {major}.{minor}"
            )
    if name == "int8":
        _torchao_int8()


def tf32_state() -> dict[str, Any]:
    """Whether fp32 matmuls may run as TF32 (tensor cores, ~8x the fp32 peak on A100/H100): it decides
    which peak an fp32 MFU is divided by. torch's default is off ("highest")."""
    with warnings.catch_warnings():  # the legacy flags warn in some torch versions; they still answer
        warnings.simplefilter("ignore")
        allow = bool(torch.backends.cuda.matmul.allow_tf32)
        new_api = getattr(torch.backends.cuda.matmul, "fp32_precision", None)
    precision = torch.get_float32_matmul_precision()
    return {
        "tf32_matmul": allow or precision in ("high", "medium") or new_api == "tf32",
        "float32_matmul_precision": precision,
    }


def peak_dtype(name: str, device_type: str, tf32_matmul: bool) -> str:
    """The dtype whose peak an MFU is divided by: fp32 runs with TF32 enabled on a GPU use the tf32 peak."""
    return "tf32" if device_type == "cuda" and name == "fp32" and tf32_matmul else name


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


# torchao 0.18 (torchao/kernel/intmm.py, safe_int_mm), the path of every int8 x int8 matmul on CUDA:
# K or N not a multiple of 8 -> int32 matmul on the CPU; else torch._int_mm (cuBLAS), which rejects
# M <= 16 rows ("self.size(0) needs to be greater than 16") -> caught, fp32 matmul on the GPU instead.
# On CPU torchao calls torch._int_mm for every shape.
INT_MM_MIN_ROWS = 17
INT8_PATH = "int8 (torch._int_mm)"
FLOAT_FALLBACK = "fallback (torchao: fp32 matmul)"
MIXED = "mixed (some matmuls fell back)"


def int8_cuda_reason(m_rows: int, k: int, n: int) -> str | None:
    """Why torchao's int8 matmul of (m_rows x k) @ (k x n) would not run as int8 on CUDA, or None."""
    if k % 8 or n % 8:
        return f"K={k} or N={n} is not a multiple of 8: torchao multiplies in int32 on the CPU"
    if m_rows < INT_MM_MIN_ROWS:
        return f"M={m_rows} rows: torch._int_mm on CUDA needs more than 16; torchao falls back to an fp32 matmul"
    return None


def _is_int8_linear(module: torch.nn.Module) -> bool:
    w = getattr(module, "weight", None)
    return isinstance(module, torch.nn.Linear) and w is not None and type(w) not in (torch.Tensor, torch.nn.Parameter)


@contextlib.contextmanager
def _count_int_mm() -> Iterator[list[tuple[int, int, int]]]:
    """Every torch._int_mm that returned, as (M, K, N), while inside. torchao looks the function up on
    the torch module at each call (intmm.py; out_dtype's CUDA path), so a wrapper there sees them all."""
    real = torch._int_mm
    done: list[tuple[int, int, int]] = []

    def counting(a: torch.Tensor, b: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        out = real(a, b, *args, **kwargs)
        done.append((a.shape[0], a.shape[1], b.shape[1]))
        return out

    torch._int_mm = counting
    try:
        yield done
    finally:
        torch._int_mm = real


def _phase(model: torch.nn.Module, run: Callable[[], Any], device_type: str) -> tuple[Any, dict[str, Any]]:
    """Run one forward; say how its quantized Linears multiplied (counted, not assumed)."""
    shapes: list[tuple[int, int, int]] = []

    def hook(module: torch.nn.Module, args: tuple, _out: Any) -> None:
        x = args[0]
        shapes.append((x.numel() // x.shape[-1], module.in_features, module.out_features))

    handles = [m.register_forward_hook(hook) for m in model.modules() if _is_int8_linear(m)]
    try:
        with _count_int_mm() as done:
            out = run()
    finally:
        for h in handles:
            h.remove()
    path = INT8_PATH if len(done) >= len(shapes) else FLOAT_FALLBACK if not done else MIXED
    reasons = sorted({r for s in shapes if (r := int8_cuda_reason(*s))}) if device_type == "cuda" else []
    return out, {
        "path": path,
        "m_rows": sorted({s[0] for s in shapes}),
        "int8_linears": len(shapes),
        "int8_matmuls": len(done),
        "reasons": reasons if path != INT8_PATH else [],
    }


def observe_int8(model: torch.nn.Module, batch: int, seq_len: int, device: str, device_type: str) -> dict[str, Any]:
    """The int8 kernel path that actually runs for a prefill of batch x seq_len tokens and for a decode step
    (batch rows): one of each, outside any timed window, with torch._int_mm calls counted."""
    ids = torch.zeros((batch, seq_len), dtype=torch.long, device=device)
    with torch.inference_mode():
        out, prefill = _phase(model, lambda: model(input_ids=ids, use_cache=True), device_type)
        token = ids[:, -1:]
        with_cache = {models.cache_keyword(model): models.output_cache(out)}
        _, decode = _phase(model, lambda: model(input_ids=token, use_cache=True, **with_cache), device_type)
    return {"prefill": prefill, "decode": decode}


def phase_peak(
    record: dict[str, Any],
    phase: str,
    peak_flop_per_s: float | None,
    peak_for: Callable[[str], float | None] | None,
    tf32_matmul: bool = False,
) -> tuple[float | None, str | None]:
    """The peak (FLOP/s) and its dtype an MFU of `phase` is divided by. An int8 phase whose matmuls fell
    back is never divided by the int8 peak: by the fp32 (or tf32) peak when all fell back to the GPU's
    fp32 matmul, else (mixed, or via the CPU) no peak at all."""
    kernels = (record.get("kernels") or {}).get(phase)
    if record.get("name") != "int8" or kernels is None or kernels["path"] == INT8_PATH:
        return peak_flop_per_s, None
    on_cpu = any("on the CPU" in r for r in kernels["reasons"])
    if kernels["path"] != FLOAT_FALLBACK or on_cpu or peak_for is None:
        return None, None
    dtype = "tf32" if tf32_matmul else "fp32"
    return peak_for(dtype), dtype
