"""Fine-tuning levers of the classification workload: where training starts (`workload.init`) and what trains
(`finetune=full`: every parameter; `finetune=lora`: low-rank adapters from peft on `lora.target_modules`, the
rest frozen but the new classification head). Validation here imports neither torch nor peft.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from harness import labelled
from harness.errors import ConfigError

# peft's own defaults per architecture when lora.target_modules is null (recorded in the result)
ADAPTER_NOTE = "adapter_bytes: bytes of the trainable tensors (LoRA A/B matrices and the new head), as saved"


def validate(cfg: Any) -> None:
    """The classification workload's settings, its data read and checked once (one-line errors, exit 2)."""
    from harness import config as config_mod
    from harness import validation

    w, d = cfg.workload, cfg.data
    validation.validate_steps(w)
    target = getattr(w, "target_accuracy", None)  # distill's schema has none (both students train the budget)
    if target is not None and not 0 < target <= 1:
        raise ConfigError("workload.target_accuracy", target, "must be in (0, 1] (a share of examples)")
    if w.init not in config_mod.INITS:
        raise ConfigError("workload.init", w.init, f"choose one of {', '.join(config_mod.INITS)}")
    if cfg.finetune not in config_mod.FINETUNES:
        raise ConfigError("finetune", cfg.finetune, f"choose one of {', '.join(config_mod.FINETUNES)}")
    if cfg.finetune == "lora":
        validation._at_least("lora.rank", cfg.lora.rank, 1)
        if cfg.lora.alpha <= 0:
            raise ConfigError("lora.alpha", cfg.lora.alpha, "must be > 0")
        if not 0 <= cfg.lora.dropout < 1:
            raise ConfigError("lora.dropout", cfg.lora.dropout, "must be in [0, 1)")
        if w.init != "checkpoint":
            raise ConfigError(
                "finetune", "lora", "adapters on random weights learn nothing useful: workload.init=checkpoint"
            )
    if cfg.model.arch == "bert" and w.init == "checkpoint" and not cfg.model.path:
        raise ConfigError(
            "workload.init", "checkpoint", "no harness-trained bert weights: model=local model.path=<dir>"
        )
    if d.source not in labelled.SOURCES:
        raise ConfigError("data.source", d.source, f"choose one of {', '.join(labelled.SOURCES)} (labelled examples)")
    if not 0 < d.eval_fraction < 1:
        raise ConfigError("data.eval_fraction", d.eval_fraction, "must be between 0 and 1")
    problem = labelled.problem(_plain(d))
    if problem is not None:
        raise ConfigError(problem.key, problem.value, problem.why)


def _plain(node: Any) -> dict[str, Any]:
    from dataclasses import asdict, is_dataclass

    return asdict(node) if is_dataclass(node) else dict(node)


def apply(model: Any, config: Mapping[str, Any]) -> tuple[Any, dict[str, Any]]:
    """(model to train, the result's `finetune` section): full leaves the model as it is; lora wraps it in
    peft adapters (task SEQ_CLS: the head trains too). Counts trainable parameters either way."""
    method = config.get("finetune", "full")
    section: dict[str, Any] = {"method": method, "init": config["workload"].get("init", "random")}
    if method == "lora":
        from peft import LoraConfig, TaskType, get_peft_model

        lcfg = config["lora"]
        targets = list(lcfg["target_modules"]) if lcfg.get("target_modules") else None
        peft_cfg = LoraConfig(
            task_type=TaskType.SEQ_CLS,
            r=int(lcfg["rank"]),
            lora_alpha=float(lcfg["alpha"]),
            lora_dropout=float(lcfg["dropout"]),
            target_modules=targets,
        )
        model = get_peft_model(model, peft_cfg)
        section.update(
            rank=int(lcfg["rank"]),
            alpha=float(lcfg["alpha"]),
            target_modules=sorted(model.peft_config["default"].target_modules),
        )
    section.update(trainable_figures(model, method))
    return model, section


def trainable_figures(model: Any, method: str) -> dict[str, Any]:
    """trainable_params, total params (frozen included) and, for adapters, adapter_bytes."""
    params = list(model.parameters())
    trainable = [p for p in params if p.requires_grad]
    out = {
        "trainable_params": int(sum(p.numel() for p in trainable)),
        "total_params": int(sum(p.numel() for p in params)),
        "adapter_bytes": int(sum(p.numel() * p.element_size() for p in trainable)) if method == "lora" else None,
    }
    out["trainable_fraction"] = out["trainable_params"] / out["total_params"] if out["total_params"] else None
    return out


def validate_classify(cfg: Any) -> None:
    """The classify workload's settings: the fine-tuning ones as classification's (they pick the harness-made
    classifier), or (model.path) a saved sequence classifier with one output per class of the data."""
    if not cfg.model.path:
        validate(cfg)
        return
    from pathlib import Path

    from harness import config as config_mod

    if cfg.finetune not in config_mod.FINETUNES:
        raise ConfigError("finetune", cfg.finetune, f"choose one of {', '.join(config_mod.FINETUNES)}")
    if cfg.data.source not in labelled.SOURCES:
        raise ConfigError("data.source", cfg.data.source, f"choose one of {', '.join(labelled.SOURCES)}")
    problem = labelled.problem(_plain(cfg.data))
    if problem is not None:
        raise ConfigError(problem.key, problem.value, problem.why)
    found = _classifier_labels(Path(cfg.model.path))
    if isinstance(found, str):
        raise ConfigError("model.path", cfg.model.path, found)
    classes = len(labelled.load(_plain(cfg.data)).names)
    if found != classes:
        why = f"is a classifier of {found} classes; the data (data.source={cfg.data.source}) has {classes}"
        raise ConfigError("model.path", cfg.model.path, why)


def _classifier_labels(path: Any) -> int | str:
    """The class count of the sequence classifier saved at `path`, or why it is not one."""
    import json

    try:
        cfg = json.loads((path / "config.json").read_text())
    except (OSError, ValueError) as exc:
        return f"holds no readable config.json ({type(exc).__name__}): a saved classifier is needed"
    if not any(str(a).endswith("ForSequenceClassification") for a in cfg.get("architectures") or []):
        return "is not a sequence classifier (config.json architectures): save one with workload=classification"
    labels = cfg.get("id2label") or {}
    return len(labels) if labels else int(cfg.get("num_labels", 2))
