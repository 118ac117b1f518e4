"""Harness-made classifiers for `workload=classify`: the classifier its fine-tuning settings describe
(`finetune=full|lora`, `lora.*`, `workload.init`, `workload.max_steps` and the other step settings, `data.*`,
`seq_len`, `seed`, the model preset) is fine-tuned once by a `workload=classification` run of its own, saved
(a LoRA run's adapters merged into the base: harness.checkpoints.save) and kept in a cache keyed by everything
that determines it, as `model.weights=trained` keeps pretrained weights (harness.checkpoints).

The fine-tuning run is measured like any run; what it cost (its own training plus the pretraining it started
from) is read from its result and carried into every classify run that uses it (the `weights` section:
`made_by`, `total_usd`, `total_energy_j`). Layout: `$HARNESS_CACHE/classifiers/<key>/classification/
{result.json, checkpoint/}`; a file lock (<key>/.lock) makes a second process wait for the first.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from harness import checkpoints, results

FORMAT = 1  # bump when the fine-tuning recipe's meaning changes: old classifiers are then not reused
# the fine-tuning batch is fixed (not the classify run's batch_size, which is the serving batch): a batch-size
# sweep of classify runs measures one classifier, fine-tuned once
FINETUNE_BATCH = 16
STEP_KEYS = ("max_steps", "warmup_steps", "lr", "lr_warmup_steps", "weight_decay", "grad_clip", "eval_interval")
_ARCH_SKIP = ("name", "weights", "path", "train_steps")


def harness_made(config: Mapping[str, Any]) -> bool:
    """A classify run on a classifier the harness fine-tunes (no model.path: the user's own otherwise)."""
    from harness import scenarios

    return scenarios.spec(config["workload"]["name"], strict=False).finetuned_weights(config)


def finetune_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """The workload=classification run that makes this classify run's classifier (fp32, one device)."""
    from omegaconf import OmegaConf

    from harness.config import CONF_DIR, ClassificationWorkload

    base = OmegaConf.load(CONF_DIR / "workload" / "classification.yaml")["workload"]
    node = OmegaConf.merge(OmegaConf.structured(ClassificationWorkload), base)
    workload = OmegaConf.to_container(node, resolve=True)
    w = config["workload"]
    workload.update({k: w[k] for k in STEP_KEYS})
    workload.update(target_accuracy=w.get("target_accuracy"), init=w.get("init", "random"), save_checkpoint=True)
    out = copy.deepcopy(dict(config))
    out.update(
        model={**config["model"], "weights": "random", "path": None},
        precision={"name": "fp32"},
        workload=workload,
        batch_size=FINETUNE_BATCH,
        gpus=1,
        repeats=3,
        resume=False,
        timeout_s=max(float(config["timeout_s"]), checkpoints.TRAIN_TIMEOUT_S),
        memory_limit_bytes=None,  # the classify run's limit is not the fine-tuning's
    )
    return out


def key(config: Mapping[str, Any]) -> str:
    """16 hex digits over what determines the classifier: architecture, start, fine-tuning, data, versions."""
    ft = finetune_config(config)
    w, model = ft["workload"], ft["model"]
    what = {
        "format": FORMAT,
        "arch": {k: v for k, v in model.items() if k not in _ARCH_SKIP},
        "init": w["init"],
        "pretrained": checkpoints.key(model) if w["init"] == "checkpoint" else None,
        "steps": {k: w[k] for k in STEP_KEYS},
        "target_accuracy": w["target_accuracy"],
        "finetune": ft.get("finetune", "full"),
        "lora": ft.get("lora") if ft.get("finetune") == "lora" else None,
        "data": ft["data"],
        "batch_size": FINETUNE_BATCH,
        "seq_len": ft["seq_len"],
        "seed": ft["seed"],
        "torch": checkpoints._version("torch"),
        "transformers": checkpoints._version("transformers"),
    }
    return hashlib.sha256(json.dumps(what, sort_keys=True, default=str).encode()).hexdigest()[:16]


def folder(config: Mapping[str, Any]) -> Path:
    return checkpoints.cache_root() / "classifiers" / key(config)


def checkpoint_path(config: Mapping[str, Any]) -> Path:
    """Where the fine-tuned classifier of this classify run lies (once fine-tuned)."""
    return folder(config) / "classification" / checkpoints.CHECKPOINT_DIR


def provenance(config: Mapping[str, Any]) -> dict[str, Any]:
    """The classify run's `weights` section for a harness-made classifier: where it lies, how it was made and,
    from the fine-tuning run's result, what it cost to make (pretraining included: harness.checkpoints.made_by)."""
    path = checkpoint_path(config)
    ft = finetune_config(config)
    out: dict[str, Any] = {
        "kind": "fine-tuned",
        "quality_meaningful": True,
        "key": key(config),
        "checkpoint": str(path),
        "finetune": ft.get("finetune", "full"),
        "init": ft["workload"]["init"],
        "steps": ft["workload"]["max_steps"],
        "batch_size": FINETUNE_BATCH,
    }
    if out["finetune"] == "lora":
        out["lora_rank"] = ft["lora"]["rank"]
    saved = (results.load(path.parent / results.RESULT_FILE) or {}).get("checkpoint") or {}
    out["checkpoint_bytes"], out["lora_merged"] = saved.get("size_bytes"), saved.get("lora_merged")
    made = checkpoints.made_by(path)
    return out if made is None else {**out, **made}
