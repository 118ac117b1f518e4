"""Knowledge distillation (Hinton, Vinyals & Dean 2015, "Distilling the Knowledge in a Neural Network"): the
student learns from the teacher's temperature-softened class probabilities as well as from the labels.

loss = alpha * T^2 * KL(softmax(teacher / T) || softmax(student / T)) + (1 - alpha) * CE(student, label)
The T^2 keeps the soft term's gradients on the scale of the hard term's as T grows (the paper, section 2).
Validation here imports no torch.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from harness.errors import ConfigError


def teacher_kind(teacher: str | None) -> str:
    """'preset' (conf/model/<name>.yaml: trained from the seed in the same run) or 'path' (a saved classifier)."""
    from harness.config import group_choices

    return "preset" if teacher in group_choices("model") else "path"


def validate(cfg: Any) -> None:
    """The distill workload's settings (one-line errors, exit 2); data and steps as classification's."""
    from harness import finetune
    from harness.config import group_choices

    finetune.validate(cfg)
    d, teacher = cfg.distill, cfg.teacher
    presets = ", ".join(p for p in group_choices("model") if p != "local")
    if not teacher:
        raise ConfigError("teacher", teacher, f"name a classifier checkpoint folder or a model preset ({presets})")
    if teacher == "local":
        raise ConfigError("teacher", teacher, f"a preset trained here ({presets}) or a checkpoint folder")
    if teacher_kind(teacher) == "path" and not (Path(teacher) / "config.json").is_file():
        raise ConfigError(
            "teacher",
            teacher,
            "no config.json there: a checkpoint folder saved by workload=classification workload.save_checkpoint=true"
            f" (<run folder>/checkpoint), or a model preset ({presets})",
        )
    if not d.temperature > 0:
        raise ConfigError("distill.temperature", d.temperature, "must be > 0")
    if not 0 <= d.alpha <= 1:
        raise ConfigError("distill.alpha", d.alpha, "must be in [0, 1] (the soft term's share of the loss)")
    if d.teacher_steps < 1:
        raise ConfigError("distill.teacher_steps", d.teacher_steps, "must be >= 1")
    if cfg.gpus != 1:
        raise ConfigError("gpus", cfg.gpus, "distill runs on one device (gpus=1)")
    if cfg.finetune != "full":
        raise ConfigError("finetune", cfg.finetune, "distill trains the whole student: finetune=full")


def loss(student_logits: Any, teacher_logits: Any, labels: Any, temperature: float, alpha: float) -> Any:
    """The distillation loss of a batch (a scalar tensor; nats)."""
    import torch.nn.functional as F

    t = temperature
    soft = F.kl_div(
        F.log_softmax(student_logits.float() / t, -1), F.log_softmax(teacher_logits.float() / t, -1),
        reduction="batchmean", log_target=True,
    )  # fmt: skip
    hard = F.cross_entropy(student_logits.float(), labels)
    return alpha * t * t * soft + (1 - alpha) * hard


def verdict(diff: dict[str, Any]) -> str:
    """The paired difference (distilled - alone) in words: better, worse, or no difference shown."""
    d, lo, hi = diff["accuracy"], diff["accuracy_lo"], diff["accuracy_hi"]
    figures = f"{d:+.3f} accuracy [{lo:+.3f}, {hi:+.3f}]"
    if lo > 0:
        return f"distilled better than alone: {figures}"
    if hi < 0:
        return f"distilled worse than alone: {figures}"
    return f"no difference shown between distilled and alone: {figures} (the interval holds 0)"
