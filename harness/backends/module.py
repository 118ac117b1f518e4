"""What every backend that holds a PyTorch module in this process does with it (Hugging Face eager, its
classifier): the train step (micro-batches, their loss scaling and DDP's no_sync), train/eval mode, its
parameters for the optimizer, activation checkpointing, the DDP wrap, saving a checkpoint, a copy.

The scenarios call these methods instead of reaching into `backend.model`; the arithmetic of a step lives here
only (`accumulated_step`), whichever scenario trains (training, classification, distill).
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch


def autocast(device_type: str, dtype: torch.dtype | None) -> torch.autocast:
    """The run's autocast (mixed precision from the precision transform); disabled for fp32 (dtype None)."""
    return torch.autocast(device_type, dtype or torch.float32, enabled=dtype is not None)


@dataclass(frozen=True)
class Optimizing:
    """What a train step needs besides the batch: the optimizer (the scenario's choice), fp16's gradient scaler
    (None otherwise), the gradient-norm clip, and the run's autocast."""

    optimizer: Any
    scaler: Any
    grad_clip: float
    autocast_dtype: torch.dtype | None
    device_type: str


def accumulated_step(
    model: torch.nn.Module,
    optimizer: Any,
    scaler: Any,
    grad_clip: float,
    batch: Sequence[torch.Tensor],
    loss_of: Callable[[Sequence[torch.Tensor]], torch.Tensor],
    accum: int = 1,
) -> torch.Tensor:
    """One optimizer step over `batch` (tensors sharing their first dimension: the global batch) run as `accum`
    equal micro-batches; returns the global batch's loss (detached, the mean of the micro-batch losses).

    Each micro-batch's loss is scaled by 1/accum, so the summed gradients are those of the global batch's mean
    loss (the micro-batches hold equal token counts). fp16's gradient scaler scales every backward and unscales
    once, before clipping. Under DDP the non-final micro-batches run in `no_sync` (forward and backward: DDP
    decides at the forward), so the gradients are all-reduced once per step, as without accumulation.
    """
    size = batch[0].shape[0] // accum
    no_sync = getattr(model, "no_sync", None)  # DDP's; a bare model has none
    total: torch.Tensor | None = None
    for i in range(accum):
        part = [t[i * size : (i + 1) * size] for t in batch]
        with no_sync() if no_sync is not None and i < accum - 1 else contextlib.nullcontext():
            loss = loss_of(part)
            scaled = loss / accum if accum > 1 else loss  # accum=1: the very computation as before the lever
            (scaler.scale(scaled) if scaler is not None else scaled).backward()
        part_loss = scaled.detach().float()  # on the device: no sync inside the timed step
        total = part_loss if total is None else total + part_loss
    if scaler is not None:
        scaler.unscale_(optimizer)
    torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    if scaler is not None:
        scaler.step(optimizer)
        scaler.update()
    else:
        optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    assert total is not None  # accum >= 1 (validated)
    return total


def checkpointing(model: torch.nn.Module) -> int:
    """Turn on activation (gradient) checkpointing: each decoder layer's forward is recomputed in the backward
    pass instead of keeping its activations. Non-reentrant (torch's recommended form, which DDP and inputs without
    grad need); transformers turns the layers' KV cache off under it. Returns the layers it covers (0: none)."""
    inner = getattr(model, "module", model)  # under DDP: the model it wraps
    kwargs = {"use_reentrant": False}
    if hasattr(inner, "activation_checkpointing_enable"):  # transformers >= 5.x; the old name warns
        inner.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
    else:
        inner.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)
    from transformers.modeling_layers import GradientCheckpointingLayer

    return sum(isinstance(m, GradientCheckpointingLayer) and bool(m.gradient_checkpointing) for m in inner.modules())


class ModuleBackend:
    """The module-holding part of a backend; a subclass says what its training loss is (`_loss`)."""

    model: Any

    def __init__(self) -> None:
        self.model = None
        self.checkpointed = False  # activation checkpointing on: training forwards ask for no KV cache

    @classmethod
    def around(cls, model: torch.nn.Module) -> Any:
        """A backend for an already built model (tests, benchmarks, a second model of a run)."""
        backend = cls()
        backend.model = model
        return backend

    def copy(self) -> Any:
        """A second backend of this kind with a deep copy of the module (the same weights, trained apart)."""
        return type(self).around(copy.deepcopy(self.model))

    def parameters(self) -> Iterator[torch.nn.Parameter]:
        """The module's parameters (what an optimizer steps; frozen ones included, requires_grad says)."""
        return self.model.parameters()

    @property
    def training(self) -> bool:
        return bool(self.model.training)

    def set_training(self, on: bool) -> None:
        """Train mode (dropout on) or eval mode."""
        self.model.train(on)

    def context_length(self) -> int | None:
        """The longest sequence the model takes (its config's max_position_embeddings), or None."""
        return getattr(getattr(self.model, "config", None), "max_position_embeddings", None)

    def checkpoint_layers(self) -> int:
        """Turn on activation checkpointing (`checkpointing`); the layers it covers (ValueError: none). Later
        train steps ask the model for no KV cache (transformers turns it off under checkpointing, else warns)."""
        layers = checkpointing(self.model)
        if layers == 0:
            raise ValueError(
                f"{type(getattr(self.model, 'module', self.model)).__name__} has no layer that checkpoints"
            )
        self.checkpointed = True
        return layers

    def distribute(self, device_ids: list[int] | None) -> None:
        """Wrap the module in DistributedDataParallel (the process group is up): gradients all-reduced per step."""
        self.model = torch.nn.parallel.DistributedDataParallel(self.model, device_ids=device_ids)

    def save(self, run_dir: Path) -> dict[str, Any]:
        """Save the (trained) module as a loadable checkpoint under run_dir (harness.checkpoints.save)."""
        from harness import checkpoints

        return checkpoints.save(self.model, run_dir)

    def train_step(
        self,
        batch: Sequence[torch.Tensor],
        opt: Optimizing,
        accum: int = 1,
        loss: Callable[[torch.Tensor, Sequence[torch.Tensor]], torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """One optimizer step over the global `batch` in `accum` micro-batches (accumulated_step); the loss is
        the model's own with labels (`_loss`), or `loss(logits, part)` over its logits (computed under the
        run's autocast, the loss itself outside it). Returns the global batch's loss, detached, on the device."""

        def loss_of(part: Sequence[torch.Tensor]) -> torch.Tensor:
            if loss is None:
                with autocast(opt.device_type, opt.autocast_dtype):
                    return self._loss(part)
            with autocast(opt.device_type, opt.autocast_dtype):
                logits = self._logits(part)
            return loss(logits, part)

        return accumulated_step(self.model, opt.optimizer, opt.scaler, opt.grad_clip, batch, loss_of, accum)

    def _loss(self, part: Sequence[torch.Tensor]) -> torch.Tensor:
        raise NotImplementedError

    def _logits(self, part: Sequence[torch.Tensor]) -> torch.Tensor:
        raise NotImplementedError
