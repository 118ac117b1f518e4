"""torchao weight-only int4: every nn.Linear whose in_features divides into `group_size` groups keeps its
weights as 4-bit integers with one scale and zero point per group; activations stay in floating point.

CUDA (compute capability >= 8.0): Int4WeightOnlyConfig, tile-packed for the tinygemm int4 matmul
(torch.ops.aten._weight_int4pack_mm), which takes bf16 activations: a model in another float dtype is cast to
bf16 first, and said so. CPU: torchao 0.18 has no int4 layout for CPUs in Int4WeightOnlyConfig (its plain and
preshuffled formats need the `mslk` kernels, plain_int32 only XPU/NPU); IntxWeightOnlyConfig(weight_dtype=int4,
PerGroup) runs there, storing each int4 value in a byte and dequantizing it before a dense matmul: the
weights are int4-accurate, but the kernels are the float ones (no int4 speed-up expected).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # torch is imported where a model is changed: choosing and validating stay light
    import torch

from harness.errors import ConfigError, UnsupportedError
from harness.transforms import register
from harness.transforms.base import Applied

GROUP_SIZES = (32, 64, 128, 256)
CUDA_METHOD = "torchao Int4WeightOnlyConfig (tile_packed_to_4d, tinygemm _weight_int4pack_mm; bf16 activations)"
CPU_METHOD = (
    "torchao IntxWeightOnlyConfig(weight_dtype=int4, PerGroup): int4 values stored one per byte (int8), "
    "dequantized before a dense float matmul"
)


@register
class Int4:
    name = "int4"

    @staticmethod
    def validate(settings: Mapping[str, Any]) -> None:
        size = settings.get("group_size")
        if size not in GROUP_SIZES:
            raise ConfigError("transform.int4.group_size", size, f"choose one of {', '.join(map(str, GROUP_SIZES))}")

    @staticmethod
    def tag(settings: Mapping[str, Any]) -> str:
        return f"int4g{settings['group_size']}"

    @classmethod
    def for_run(cls, ctx: Any, settings: Mapping[str, Any]) -> Int4:
        return cls(int(settings["group_size"]), ctx)

    def __init__(self, group_size: int, ctx: Any):
        self.group_size, self.ctx = group_size, ctx
        self.precision = ctx.config["precision"]["name"]

    def check(self) -> None:
        from harness.transforms.precision import WEIGHTS

        if self.ctx.precision_mode != WEIGHTS:
            raise UnsupportedError("int4 is an inference transform: a training run's weights must stay trainable")
        if not self.ctx.holds_weights:
            raise UnsupportedError("int4 changes weights in this process; a remote engine holds them elsewhere")
        if self.precision == "int8":
            raise UnsupportedError("int4 and precision=int8 both replace the Linear weights: choose one")
        if self.ctx.device_type == "cuda":
            major, minor = self.ctx.cuda.get_device_capability(self.ctx.cuda.current_device())
            if major < 8:
                raise UnsupportedError(f"torchao int4 kernels need compute capability >= 8.0, not {major}.{minor}")
        _torchao()

    def load_dtype(self) -> None:
        return None

    def apply(self, model: torch.nn.Module) -> Applied:
        import torch

        quantize_, configs = _torchao()
        before = next(model.parameters()).dtype
        how: dict[str, Any] = {"name": self.name, "group_size": self.group_size}
        if self.ctx.device_type == "cuda":
            if before != torch.bfloat16:
                model.to(torch.bfloat16)
                how["cast"] = f"{_dtype(before)} -> bfloat16 (the int4 kernel takes bf16 activations)"
            config, how["method"] = configs.cuda(self.group_size), CUDA_METHOD
            how.update(kernels_changed=True, kernels="tinygemm int4 matmul")
        else:
            config, how["method"] = configs.cpu(self.group_size), CPU_METHOD
            how.update(kernels_changed=False, kernels="dequantize + dense float matmul: no int4 speed-up expected")
        eligible = [n for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)]
        fits = {n for n in eligible if dict(model.named_modules())[n].in_features % self.group_size == 0}
        try:
            quantize_(model, config, filter_fn=lambda m, fqn: fqn in fits)
        except (NotImplementedError, AssertionError, ImportError) as exc:
            raise UnsupportedError(f"torchao int4 could not quantize this model here: {exc}") from exc
        how.update(
            linears_quantized=len(fits),
            linears_skipped=sorted(set(eligible) - fits),  # in_features not a multiple of group_size
            activation_dtype=_dtype(next(p.dtype for p in model.parameters() if p.is_floating_point())),
        )
        runtime = {"peak_dtype": "bf16"} if "cast" in how else {}
        return Applied("transforms", how, runtime)


def _dtype(d: torch.dtype) -> str:
    return str(d).replace("torch.", "")


class _Configs:
    def __init__(self, module: Any):
        self.m = module

    def cuda(self, group_size: int) -> Any:
        return self.m.Int4WeightOnlyConfig(group_size=group_size, int4_packing_format="tile_packed_to_4d")

    def cpu(self, group_size: int) -> Any:
        import torch

        return self.m.IntxWeightOnlyConfig(weight_dtype=torch.int4, granularity=self.m.PerGroup(group_size))


def _torchao() -> tuple[Any, _Configs]:
    try:
        import torchao.quantization as q
    except Exception as exc:  # ImportError, or a torchao built for another torch
        raise UnsupportedError(f"int4 needs torchao, which could not be imported: {type(exc).__name__}: {exc}") from exc
    return q.quantize_, _Configs(q)
