"""Harness-trained weights: `model.weights=trained` trains the preset once with the training workload on the
offline corpus, to a fixed token budget, and keeps the checkpoint in a cache keyed by everything that
determines it.

The training is a run of its own (fresh process, through harness.launch, measured like any training run:
harness.pretrain makes it; this module only names, reads and describes the cache, so the worker can import
it without the launcher),
so what the weights cost to make is a measured result, kept beside them (`<cache>/<key>/training/result.json`)
and carried into every inference run that uses them (the result's `weights` section).

Layout: `$HARNESS_CACHE` (default ~/.cache/harness) / checkpoints / <key> / training / {result.json,
checkpoint/{model.safetensors, config.json, tokenizer_spec.json}}. A file lock (<key>/.lock) makes a
second process that needs the same checkpoint wait for the first instead of training it again.
"""

from __future__ import annotations

import copy
import hashlib
import importlib
import importlib.metadata
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from harness import results

WEIGHTS = ("random", "trained")
FORMAT = 1  # bump when the recipe's meaning changes: old checkpoints are then not reused
# The fixed recipe (documented in README "Trained weights"): AdamW with warm-up + cosine, fp32, seed 0,
# on the training side of the pydoc split. Tokens = model.train_steps x batch_size x seq_len.
RECIPE: dict[str, Any] = {
    "batch_size": 4,
    "seq_len": 64,
    "lr": 6.0e-3,
    "lr_warmup_steps": 8,
    "weight_decay": 0.1,
    "grad_clip": 1.0,
    "eval_batches": 2,
    "seed": 0,
}
TOKENIZER_SPEC = {"type": "bytes", "encoding": "utf-8", "vocab": 256, "note": "token id = UTF-8 byte"}
TRAIN_TIMEOUT_S = 1800.0  # at least this long for the training run (small: minutes on a loaded 2-core machine)
CHECKPOINT_DIR = "checkpoint"  # inside a training run's folder (workload.save_checkpoint=true)
_ARCH_SKIP = ("name", "weights", "path", "train_steps")


def cache_root() -> Path:
    """$HARNESS_CACHE, else ~/.cache/harness."""
    return Path(os.environ.get("HARNESS_CACHE") or Path.home() / ".cache" / "harness")


def is_trained(config: Mapping[str, Any]) -> bool:
    """A run on harness-trained weights loaded in this process: inference, serving in-process, a plugin
    scenario on the hf backend, classification from init=checkpoint (Spec.trained_weights). The training
    workload always starts from the seed; a remote backend (serving.engine=openai) holds no weights here.
    The shipped workloads answer from their Specs, without importing torch into the launcher."""
    from harness import scenarios

    return scenarios.spec(config["workload"]["name"]).trained_weights(config)


def key(model_cfg: Mapping[str, Any]) -> str:
    """16 hex digits over what determines the weights: architecture, recipe, budget, data split, versions."""
    arch = {k: v for k, v in model_cfg.items() if k not in _ARCH_SKIP}
    what = {
        "format": FORMAT,
        "arch": arch,
        "recipe": RECIPE,
        "train_steps": model_cfg.get("train_steps"),
        "data": {"source": "pydoc", "eval_fraction": 0.1, "split_seed": 1234},
        "torch": _version("torch"),
        "transformers": _version("transformers"),
    }
    return hashlib.sha256(json.dumps(what, sort_keys=True).encode()).hexdigest()[:16]


def _version(package: str) -> str:
    """The installed version as the package reports it (`torch.__version__`), read from its metadata: the
    launcher computes this key before every trained run, and importing torch and transformers for two strings
    cost it ~2 s (the worker imports them anyway). A source tree without metadata is imported."""
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return importlib.import_module(package).__version__


def folder(model_cfg: Mapping[str, Any]) -> Path:
    return cache_root() / "checkpoints" / key(model_cfg)


def checkpoint_path(model_cfg: Mapping[str, Any]) -> Path:
    """Where the trained checkpoint of this model lies (once trained)."""
    return folder(model_cfg) / "training" / CHECKPOINT_DIR


def model_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """The model node to build: a trained inference run loads its cached checkpoint (model.path)."""
    model_cfg = dict(config["model"])
    if is_trained(config):
        model_cfg["path"] = str(checkpoint_path(model_cfg))
    return model_cfg


def draft_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """The run's config with workload.draft_model as its model: the draft's weights follow model.weights."""
    from omegaconf import OmegaConf  # not harness.models: the launcher calls this, and it keeps torch out

    from harness.config import CONF_DIR, ModelConfig

    name = config["workload"]["draft_model"]
    node = OmegaConf.merge(OmegaConf.structured(ModelConfig), OmegaConf.load(CONF_DIR / "model" / f"{name}.yaml"))
    draft = {**OmegaConf.to_container(node, resolve=True), "weights": config["model"].get("weights", "random")}
    return {**config, "model": draft}


def training_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """The training run that makes the checkpoint: the recipe on this run's hardware, cost and energy settings."""
    from omegaconf import OmegaConf

    from harness.config import CONF_DIR, DataConfig, TrainingWorkload

    base = OmegaConf.load(CONF_DIR / "workload" / "training.yaml")["workload"]
    workload = OmegaConf.to_container(OmegaConf.merge(OmegaConf.structured(TrainingWorkload), base), resolve=True)
    steps = int(config["model"]["train_steps"])
    workload.update(
        max_steps=steps,
        lr=RECIPE["lr"],
        lr_warmup_steps=RECIPE["lr_warmup_steps"],
        weight_decay=RECIPE["weight_decay"],
        grad_clip=RECIPE["grad_clip"],
        eval_interval=steps,  # one held-out evaluation at the start and one at the end
        eval_batches=RECIPE["eval_batches"],
        target_eval_loss=None,
        save_checkpoint=True,
    )
    out = copy.deepcopy(dict(config))
    out.update(
        model={**config["model"], "weights": "random", "path": None},
        precision={"name": "fp32"},
        # the weights are trained as the recipe says, whatever levers the run that needs them measures
        backend={"name": "eager"},
        transforms=["precision"],
        workload=workload,
        data=OmegaConf.to_container(OmegaConf.structured(DataConfig)),
        batch_size=RECIPE["batch_size"],
        seq_len=RECIPE["seq_len"],
        seed=RECIPE["seed"],
        gpus=1,
        repeats=3,
        resume=False,
        timeout_s=max(float(config["timeout_s"]), TRAIN_TIMEOUT_S),  # the inference run's limit is not training's
        # nor is its memory limit: an oom of the training would stand for the inference run, never retried
        memory_limit_bytes=None,
    )
    return out


def training_result(model_cfg: Mapping[str, Any]) -> dict[str, Any] | None:
    """The ok training result of a complete checkpoint, or None."""
    run_dir = folder(model_cfg) / "training"
    result = results.load(run_dir / results.RESULT_FILE)
    if result and result.get("status") == "ok" and (run_dir / CHECKPOINT_DIR / "model.safetensors").is_file():
        return result
    return None


def save(model: Any, run_dir: Path) -> dict[str, Any]:
    """Save a trained model as an HF checkpoint in run_dir/checkpoint (safetensors, config, tokenizer spec); a
    LoRA model merged into its base first, so the checkpoint loads alone."""
    target = Path(run_dir) / CHECKPOINT_DIR
    target.mkdir(parents=True, exist_ok=True)
    model = getattr(model, "module", model)  # DDP wraps the model
    merged = hasattr(model, "merge_and_unload")  # a peft model: save_pretrained would keep the adapters only
    if merged:  # the base with the LoRA updates folded in (and the trained head): loadable on its own
        model = model.merge_and_unload()
    model.save_pretrained(target, safe_serialization=True)
    (target / "tokenizer_spec.json").write_text(json.dumps(TOKENIZER_SPEC, indent=2) + "\n")
    weights = target / "model.safetensors"
    out = {"path": str(target), "size_bytes": weights.stat().st_size, "sha256": file_sha256(weights)}
    if merged:
        out["lora_merged"] = "peft merge_and_unload before saving: adapters folded into the base"
    return out


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def provenance(config: Mapping[str, Any]) -> dict[str, Any]:
    """The result's `weights` section: where the weights came from and, if the harness trained them, what that
    training run cost (its dollars, energy and time, measured by that run)."""
    model_cfg = config["model"]
    if config["model"].get("path"):
        out = {"kind": "local", "path": model_cfg["path"], "quality_meaningful": True}
        made = made_by(model_cfg["path"])
        return out if made is None else {**out, **made}
    if not is_trained(config):
        return {
            "kind": "random",
            "seed": config["seed"],
            "quality_meaningful": False,
            "note": "random weights: quality not meaningful (no pass/fail verdict)",
        }
    train = training_result(model_cfg) or {}
    m, cost, energy = train.get("metrics") or {}, train.get("cost") or {}, train.get("energy") or {}
    ckpt = train.get("checkpoint") or {}
    return {
        "kind": "trained",
        "quality_meaningful": True,
        "key": key(model_cfg),
        "checkpoint": str(checkpoint_path(model_cfg)),
        "checkpoint_bytes": ckpt.get("size_bytes"),
        "checkpoint_sha256": ckpt.get("sha256"),
        "recipe": {**RECIPE, "steps": model_cfg.get("train_steps"), "data": "pydoc (training split)"},
        "training": {
            "result": str(folder(model_cfg) / "training" / results.RESULT_FILE),
            "tokens": m.get("tokens_trained"),
            "eval_loss": m.get("eval_loss"),
            "wall_s": (train.get("timing") or {}).get("run_wall_s"),
            "usd": cost.get("run_usd"),
            "energy_j": energy.get("total_j"),
            "energy_method": energy.get("total_method"),
        },
    }


def made_by(path: str | Path) -> dict[str, Any] | None:
    """What a checkpoint saved by a harness run (workload.save_checkpoint=true: <run folder>/checkpoint) cost
    to make, from that run's result: its own training (fine-tuning, or distillation with the teacher's labels)
    plus what its starting weights and its teacher cost, as their results say (`total_usd`, `total_energy_j`).
    None when the folder is not such a checkpoint or its weights are not the ones that run saved (sha256)."""
    run_dir, weights = Path(path).resolve().parent, Path(path) / "model.safetensors"
    rec = results.load(run_dir / results.RESULT_FILE)
    if not rec or rec.get("status") != "ok" or not weights.is_file():
        return None
    if (rec.get("checkpoint") or {}).get("sha256") != file_sha256(weights):
        return None
    cost, energy = rec.get("cost") or {}, rec.get("energy") or {}
    own = {"usd": cost.get("training_usd", cost.get("run_usd")), "energy_j": energy.get("total_j")}
    before = [rec.get("weights") or {}, ((rec.get("distill") or {}).get("teacher") or {}).get("made_by") or {}]
    parts = [own] + [_total(w) for w in before if w]
    made = {
        "result": str(run_dir / results.RESULT_FILE),
        "workload": rec["config"]["workload"]["name"],
        "usd": own["usd"],
        "energy_j": own["energy_j"],
        "wall_s": (rec.get("timing") or {}).get("run_wall_s"),
        "started_from": before[0] or None,
        "teacher": before[1] or None,
    }
    usd, joules = ([p[k] for p in parts] for k in ("usd", "energy_j"))
    complete = all(v is not None for v in usd + joules)
    return {
        "made_by": made,
        "total_usd": sum(v for v in usd if v is not None),
        "total_energy_j": sum(v for v in joules if v is not None),
        "total_complete": complete,  # false: some part had no price or no energy figure (left out of the sums)
    }


def _total(weights: Mapping[str, Any]) -> dict[str, Any]:
    """(usd, energy_j) to make weights as their section says: a chain's totals, or harness pretraining's."""
    if "total_usd" in weights:
        return {"usd": weights["total_usd"], "energy_j": weights.get("total_energy_j")}
    if weights.get("kind") == "trained":
        t = weights.get("training") or {}
        return {"usd": t.get("usd"), "energy_j": t.get("energy_j")}
    if "made_by" in weights:  # a teacher's made_by section (distill: its checkpoint's provenance)
        return {"usd": weights.get("total_usd"), "energy_j": weights.get("total_energy_j")}
    if weights.get("kind") == "random":
        return {"usd": 0.0, "energy_j": 0.0}  # the seeded initialisation: nothing spent before the run
    return {"usd": None, "energy_j": None}  # a local model from elsewhere: what it cost is not known here
