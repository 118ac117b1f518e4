"""Magnitude pruning of the decoder's nn.Linear weights (every Linear but the output head), layer by layer.

unstructured: the `sparsity` share of each layer's weights with the smallest |w| is set to zero, in place.
Dense kernels still multiply the zeros: no speed gain is expected, and FLOPs, bytes and MFU stay dense (the
work that runs); `params_nonzero` counts what is left. 2:4: in every group of four weights along
in_features, the two smallest are zeroed and the weight becomes a semi-structured sparse tensor
(torch.sparse.to_sparse_semi_structured), whose sparse tensor-core kernels need CUDA compute capability >= 8.0
and fp16/bf16 weights; elsewhere the run ends `unsupported`. FLOPs stay the dense count (MFU against the dense
peak, as NVIDIA quotes sparse speed-ups).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # torch is imported where a model is changed: choosing and validating stay light
    import torch

from harness.errors import ConfigError, UnsupportedError
from harness.transforms import register
from harness.transforms.base import Applied

PATTERNS = ("unstructured", "2:4")
METHOD = "magnitude (|w|) pruning per layer, zeros written in place (torch.no_grad)"


@register
class Prune:
    name = "prune"

    @staticmethod
    def validate(settings: Mapping[str, Any]) -> None:
        pattern, sparsity = settings.get("pattern"), settings.get("sparsity")
        if pattern not in PATTERNS:
            raise ConfigError("transform.prune.pattern", pattern, f"choose one of {', '.join(PATTERNS)}")
        if pattern == "unstructured" and not (isinstance(sparsity, (int, float)) and 0 < sparsity < 1):
            raise ConfigError("transform.prune.sparsity", sparsity, "must be between 0 and 1 (exclusive)")

    @staticmethod
    def tag(settings: Mapping[str, Any]) -> str:
        return "prune2:4" if settings["pattern"] == "2:4" else f"prune{settings['sparsity']:g}"

    @classmethod
    def for_run(cls, ctx: Any, settings: Mapping[str, Any]) -> Prune:
        return cls(settings["pattern"], float(settings.get("sparsity") or 0.5), ctx)

    def __init__(self, pattern: str, sparsity: float, ctx: Any):
        self.pattern, self.ctx = pattern, ctx
        self.sparsity = 0.5 if pattern == "2:4" else sparsity

    def check(self) -> None:
        from harness.transforms.precision import WEIGHTS

        if self.ctx.precision_mode != WEIGHTS:
            raise UnsupportedError("prune is an inference transform here: training would refill the zeros")
        if not self.ctx.holds_weights:
            raise UnsupportedError("prune changes weights in this process; a remote engine holds them elsewhere")
        if self.pattern == "2:4":
            semi_structured_reason = sparse_kernel_reason(self.ctx)
            if semi_structured_reason:
                raise UnsupportedError(semi_structured_reason)

    def load_dtype(self) -> None:
        return None

    def apply(self, model: torch.nn.Module) -> Applied:
        import torch

        layers = targets(model)
        zeroed = 0
        with torch.no_grad():
            for module in layers:
                w = module.weight
                if self.pattern == "2:4":
                    zeroed += prune_2_4_(w)
                    module.weight = torch.nn.Parameter(_semi_structured(w), requires_grad=False)
                else:
                    zeroed += prune_unstructured_(w, self.sparsity)
        structured = self.pattern == "2:4"
        how = {
            "name": self.name,
            "method": METHOD + (", then to_sparse_semi_structured" if structured else ""),
            "pattern": self.pattern,
            "sparsity": self.sparsity,
            "layers": len(layers),
            "params_zeroed": zeroed,
            "kernels_changed": structured,
            "kernels": "2:4 sparse tensor-core matmul" if structured else "dense: zeros are multiplied, no speed gain",
        }
        return Applied("transforms", how)


def targets(model: torch.nn.Module) -> list[torch.nn.Linear]:
    """The Linears pruned: every one but the output head (the logits of every token depend on all of it)."""
    import torch

    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    return [m for m in model.modules() if isinstance(m, torch.nn.Linear) and m is not head]


def prune_unstructured_(w: torch.Tensor, sparsity: float) -> int:
    """Zero the round(sparsity x numel) smallest |w| of `w` in place (ties by index); returns how many."""
    k = round(sparsity * w.numel())
    if k:
        order = w.detach().abs().flatten().argsort(stable=True)
        w.data.view(-1)[order[:k]] = 0
    return k


def prune_2_4_(w: torch.Tensor) -> int:
    """Zero the two smallest |w| of every group of four along the last dimension, in place; returns how many."""
    groups = w.data.view(-1, 4)
    drop = groups.abs().argsort(dim=1, stable=True)[:, :2]
    groups.scatter_(1, drop, 0)
    return drop.numel()


def sparse_kernel_reason(ctx: Any) -> str | None:
    """Why 2:4 sparse kernels cannot run here, or None."""
    if ctx.device_type != "cuda":
        where = ctx.device_type
        return f"2:4 semi-structured sparsity needs CUDA sparse kernels (capability >= 8.0); the run is on {where}"
    major, minor = ctx.cuda.get_device_capability(ctx.cuda.current_device())
    if major < 8:
        return f"2:4 semi-structured sparse kernels need compute capability >= 8.0; this GPU is {major}.{minor}"
    precision = ctx.config["precision"]["name"]
    if precision not in ("fp16", "bf16"):
        return f"2:4 semi-structured sparse kernels take fp16 or bf16 weights; precision={precision}"
    return None


def _semi_structured(w: torch.Tensor) -> torch.Tensor:
    import torch

    try:
        return torch.sparse.to_sparse_semi_structured(w.detach())
    except (RuntimeError, ValueError) as exc:  # shapes the kernels refuse (too few rows or columns)
        raise UnsupportedError(f"to_sparse_semi_structured refused a {tuple(w.shape)} weight: {exc}") from exc
