"""Each workload's config schema: a dataclass of the fields it reads (its Spec's `schema`, harness/scenarios/specs.py),
made of the groups several workloads share. Torch-free and harness-free: harness.config's root schema types its
`workload` node with the base class, and each conf/workload/<name>.yaml composes its own (Hydra 1.3: a schema per
group option, `defaults: [<name>_schema]`, stored by harness.scenarios.store_schemas).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from omegaconf import MISSING

# Each workload's schema (conf/workload/<name>.yaml composes it: `defaults: [<name>_schema]`, stored in the
# ConfigStore by harness.scenarios.store_schemas from each Spec's `schema`) holds the fields it reads, and only
# those: an override of another workload's field fails at composition (harness.cli names the owners). The
# groups several workloads share are the base classes below; their defaults are those of the single shared
# node of before (LEGACY_WORKLOAD), so a field a yaml does not set composes to the value it always had.


@dataclass
class WorkloadConfig:
    """What every workload has: its scenario's name (harness.scenarios)."""

    name: str = MISSING


@dataclass
class TimedLoopConfig(WorkloadConfig):
    """Warm-up, then repeats of timed iterations (inference requests, classify batches)."""

    warmup_iters: int = 2  # iterations run before timing, excluded from every figure
    min_iters: int = 5  # per repeat: at least this many timed iterations ...
    min_time_s: float = 1.0  # ... and at least this much timed wall time
    max_iters: int = 10_000  # per repeat: a cap so a tiny model cannot spin forever


@dataclass
class DraftConfig(WorkloadConfig):
    """Speculative decoding (harness/speculative.py): a model preset that drafts for the target (null: off);
    its weights follow model.weights. Offline inference (batch_size=1), or serving with serving.engine=sequential."""

    draft_model: str | None = None
    draft_tokens: int = 4  # tokens the draft proposes per verify step (transformers' num_assistant_tokens)


@dataclass
class StepsConfig(WorkloadConfig):
    """A step budget and its AdamW schedule (training, classification, distill; classify's fine-tuning)."""

    max_steps: int = 100  # the step budget: tokens = max_steps x batch_size x seq_len x gpus
    warmup_steps: int = 3  # first optimizer steps, excluded from step-time figures
    lr: float = 3e-3
    lr_warmup_steps: int = 20  # linear warm-up, then cosine decay to lr/10 at max_steps
    weight_decay: float = 0.1
    grad_clip: float = 1.0
    eval_interval: int = 20  # steps between held-out evaluations (and one at the end)


@dataclass
class LeversConfig(StepsConfig):
    """The training levers: an optimizer step of batch_size sequences runs as grad_accum_steps micro-batches of
    batch_size / grad_accum_steps (the same global batch, less activation memory); grad_checkpointing recomputes
    each layer's forward in the backward pass instead of keeping it. And the final weights, saved on request."""

    grad_accum_steps: int = 1
    grad_checkpointing: bool = False
    save_checkpoint: bool = False  # save the final weights in the run folder (checkpoint/, an HF checkpoint)


@dataclass
class InferenceWorkload(TimedLoopConfig, DraftConfig):
    decode_tokens: int = 32  # decode steps after the prefill; each generates one token per sequence


@dataclass
class TrainingWorkload(LeversConfig):
    eval_batches: int = 4  # fixed held-out batches per evaluation
    target_eval_loss: float | None = None  # stop when the eval loss reaches this (time-to-quality)


@dataclass
class ServingWorkload(DraftConfig):
    """Its settings are serving.*; a draft model serves with serving.engine=sequential (else unsupported)."""


@dataclass
class ClassificationWorkload(LeversConfig):
    target_accuracy: float | None = None  # stop when held-out accuracy reaches this (0..1)
    # random (the seeded initialisation) | checkpoint (a preset's harness-trained weights, harness/checkpoints.py,
    # or model=local's own weights), with a new classification head
    init: str = "random"


@dataclass
class DistillWorkload(LeversConfig):
    """Classification's settings but a target accuracy (both students train the whole budget)."""

    init: str = "random"


@dataclass
class ClassifyWorkload(TimedLoopConfig, StepsConfig):
    """The fine-tuning that makes the classifier (classification's settings but the levers), then timed batches."""

    target_accuracy: float | None = None
    init: str = "random"


# The single workload node every result before per-workload schemas holds, at its defaults: merged under a
# workload node before hashing (harness.results.config_hash), so every run keeps its config_hash and folder,
# and results written with the whole node still match (resume, gate). Frozen: never change these values.
LEGACY_WORKLOAD: dict[str, Any] = {
    "name": "inference",
    "decode_tokens": 32,
    "warmup_iters": 2,
    "min_iters": 5,
    "min_time_s": 1.0,
    "max_iters": 10_000,
    "draft_model": None,
    "draft_tokens": 4,
    "max_steps": 100,
    "warmup_steps": 3,
    "lr": 3e-3,
    "lr_warmup_steps": 20,
    "weight_decay": 0.1,
    "grad_clip": 1.0,
    "eval_interval": 20,
    "eval_batches": 4,
    "target_eval_loss": None,
    "grad_accum_steps": 1,
    "grad_checkpointing": False,
    "save_checkpoint": False,
    "target_accuracy": None,
    "init": "random",
}


def schema_fields(schema: Any) -> tuple[str, ...]:
    """The field names of a workload schema dataclass."""
    return tuple(f.name for f in fields(schema))
