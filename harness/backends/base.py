"""The backend interface: what executes the model, and what it can do (its declared capabilities).

A scenario lists the capabilities it needs (`Scenario.requires`); the worker checks them against the
backend's before anything is built, and a missing one is status `unsupported` with the reason.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from harness.errors import UnsupportedError

# The capabilities a backend may declare (docs/results.md, "Seams").
PREFILL = "prefill"  # a forward over a prompt that returns a KV cache
DECODE = "decode"  # one-token forward steps on that cache
LOGITS = "logits"  # next-token logits out of a forward (quality against the fp32 reference)
GENERATE = "generate"  # a whole generation in one call (an engine's own loop)
TRAIN_STEP = "train_step"  # forward with labels → loss, backward, optimizer step on its parameters
CLASSIFY = "classify"  # a forward over a whole sequence → class logits (a classification head)
CAPABILITIES = (PREFILL, DECODE, LOGITS, GENERATE, TRAIN_STEP, CLASSIFY)


@dataclass(frozen=True)
class Step:
    """What `Backend.forward` returns: the next-token logits and the KV cache to pass to the next step."""

    logits: Any
    cache: Any


class Backend(Protocol):
    """What every consumer calls. The module itself (`model`) is for the transforms, which change it in place,
    and the few consumers listed with their reason in tests/test_seams.py (MODULE_ACCESS)."""

    name: str
    capabilities: frozenset[str]
    model: Any  # the loaded module (after load), which transforms change in place
    holds_weights: bool  # False: `model` is the shape only (meta device); the weights are served elsewhere

    def load(self, model_cfg: Mapping[str, Any], dtype: Any, device: str, seed: int) -> Any: ...
    def describe(self) -> dict[str, Any]: ...
    def context_length(self) -> int | None: ...  # the longest sequence the model takes (None: unknown)
    def forward(self, ids: Any, cache: Any = None) -> Step: ...

    # with LOGITS: every position's logits of `ids` (no cache), and an fp32 build of the same weights in a
    # second backend of this kind (quality's reference: harness.quality); HFEager has both
    def logits(self, ids: Any) -> Any: ...
    def reference(self, model_cfg: Mapping[str, Any], device: str, seed: int) -> Backend: ...

    # with GENERATE: greedy ids (batch, max_new_tokens), the engine's own loop (a remote engine: its API)
    def generate(self, ids: Any, max_new_tokens: int) -> Any: ...

    # with TRAIN_STEP (harness.backends.module.ModuleBackend): one optimizer step over a global batch in
    # micro-batches -> its loss; train/eval mode; the parameters an optimizer steps; activation checkpointing;
    # the DDP wrap (the worker, gpus > 1); a copy with the same weights; saving a checkpoint
    def train_step(self, batch: Any, opt: Any, accum: int = 1, loss: Any = None) -> Any: ...
    def set_training(self, on: bool) -> None: ...
    def parameters(self) -> Any: ...
    def checkpoint_layers(self) -> int: ...
    def distribute(self, device_ids: list[int] | None) -> None: ...
    def copy(self) -> Backend: ...
    def save(self, run_dir: Any) -> dict[str, Any]: ...

    # with CLASSIFY: class logits (batch, classes) of ids under their attention mask
    def classify(self, ids: Any, mask: Any) -> Any: ...


def lacks(backend: Any, capability: str, why: str) -> UnsupportedError:
    """The error a backend raises from a method of a capability it does not declare (and why it lacks it)."""
    return UnsupportedError(f"backend {backend.name} has no {capability}: {why}")


def check_capabilities(scenario_name: str, requires: frozenset[str], backend: Backend) -> None:
    """Raise UnsupportedError naming what the scenario needs and the backend lacks."""
    missing = sorted(requires - backend.capabilities)
    if missing:
        raise UnsupportedError(
            f"scenario {scenario_name} needs {', '.join(missing)}, which backend {backend.name} does not provide "
            f"(it provides {', '.join(sorted(backend.capabilities)) or 'nothing'})"
        )
