"""Classification: train (or fine-tune) a sequence classifier on labelled text, timed step by step, with
held-out accuracy at a fixed interval; at the end accuracy and macro-F1 over every held-out example, each with
n and a bootstrap 95 % interval, and per-class precision / recall / F1 (harness.taskmetrics).

Time-to-quality as in MLPerf Training: with `workload.target_accuracy` the run stops at the first evaluation
that reaches it, and the wall time to get there (evaluations included) is recorded and priced.
Where training starts: `workload.init` (random, or the preset's harness-trained weights / model=local's);
what trains: `finetune=full|lora` (harness.finetune). Data: harness.labelled. Schedule, optimizer and
autocast as in the training workload (harness.scenarios.training).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch

from harness import data, finetune, flops, labelled, taskmetrics
from harness.backends.base import CLASSIFY, TRAIN_STEP
from harness.backends.module import Optimizing
from harness.scenarios import register
from harness.scenarios.base import DATA_PARALLEL, Measured, Phase, RunContext, Scenario
from harness.scenarios.specs import ClassificationSpec
from harness.scenarios.training import Schedule, _autocast, _chunks, _curve, _optimizer, levers, lr_at
from harness.stats import summarize
from harness.transforms.precision import AUTOCAST

EVAL_BATCH = 64  # held-out examples per forward when scoring (no gradients: memory is small)


def encode(texts: Any, seq_len: int, tokenizer: Any = None) -> torch.Tensor:
    """(n, seq_len) token ids, truncated and right-padded with 0: UTF-8 bytes unless a tokenizer is given."""
    if tokenizer is not None:
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        ids = tokenizer(list(texts), truncation=True, max_length=seq_len, add_special_tokens=True)["input_ids"]
    else:
        pad, ids = 0, [list(t.encode("utf-8")[:seq_len]) for t in texts]
    out = torch.full((len(ids), seq_len), pad, dtype=torch.long)
    for i, row in enumerate(ids):
        out[i, : len(row)] = torch.tensor(row[:seq_len], dtype=torch.long)
    return out


@dataclass
class Examples:
    ids: torch.Tensor
    labels: torch.Tensor
    pad: int

    def mask(self, ids: torch.Tensor) -> torch.Tensor:
        return (ids != self.pad).long()


class Batches:
    """Seeded random batches of training examples: the same order for every precision of one seed."""

    def __init__(self, ex: Examples, batch_size: int, seed: int, device: Any):
        self.ex, self.batch_size, self.device = ex, batch_size, device
        self.generator = torch.Generator().manual_seed(seed)

    def next(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        idx = torch.randint(0, len(self.ex.labels), (self.batch_size,), generator=self.generator)
        ids = self.ex.ids[idx]
        return ids.to(self.device), self.ex.mask(ids).to(self.device), self.ex.labels[idx].to(self.device)


def predict(backend: Any, ex: Examples, autocast_dtype: Any, device: Any, device_type: str) -> list[int]:
    """Predicted class of every example (argmax of the backend's class logits), under the run's autocast."""
    was_training = backend.training
    backend.set_training(False)
    preds: list[int] = []
    with torch.no_grad(), _autocast(device_type, autocast_dtype):
        for i in range(0, len(ex.labels), EVAL_BATCH):
            ids = ex.ids[i : i + EVAL_BATCH].to(device)
            preds += backend.classify(ids, ex.mask(ids)).argmax(-1).tolist()
    backend.set_training(was_training)
    return preds


def train(
    backend: Any, batches: Batches, held: Examples, s: Schedule, target: float | None, ctx: Any, accum: int
) -> dict:
    """Steps of the schedule (or to the target accuracy): step times, losses, the held-out accuracy curve."""
    autocast_dtype, device_type = ctx.runtime.get("autocast_dtype"), ctx.device.type
    device, timer, probes, energy_now = ctx.device.torch_device, ctx.timer, ctx.probes, ctx.energy_now
    optimizer = _optimizer(backend, s)
    scaler = torch.amp.GradScaler(device_type) if autocast_dtype == torch.float16 else None
    opt = Optimizing(optimizer, scaler, s.grad_clip, autocast_dtype, device_type)
    labels = held.labels.tolist()
    score = lambda: taskmetrics.accuracy(labels, predict(backend, held, autocast_dtype, device, device_type))  # noqa: E731
    step_times, step_joules, losses, evals, eval_s = [], [], [], [(0, score())], 0.0
    reached: dict[str, Any] = {"target_accuracy": target, "reached": False}
    backend.set_training(True)

    try:
        probes.begin()
        start = time.perf_counter()
        for step in range(1, s.max_steps + 1):
            ids, mask, y = batches.next()
            for group in optimizer.param_groups:
                group["lr"] = lr_at(step, s)
            joules_before = energy_now() if energy_now is not None else None
            m0 = timer.mark()
            loss = backend.train_step([ids, mask, y], opt, accum)
            m1 = timer.mark()
            timer.sync()
            if step > s.warmup_steps:
                step_times.append(timer.elapsed_s(m0, m1))
                after = energy_now() if energy_now is not None else None
                step_joules.append(after - joules_before if None not in (after, joules_before) else None)
            losses.append((step, float(loss.detach())))
            if step % s.eval_interval == 0 or step == s.max_steps:
                e0 = time.perf_counter()
                evals.append((step, score()))
                eval_s += time.perf_counter() - e0
                if target is not None and evals[-1][1] >= target:
                    reached.update(reached=True, step=step, time_s=time.perf_counter() - start)
                    break
        window_s = time.perf_counter() - start
        probes.end()
    finally:
        probes.close()
    if target is not None and not reached["reached"]:
        reached["reason"] = f"held-out accuracy {evals[-1][1]:.4f} < target {target} after {losses[-1][0]} steps"
    metrics = {
        "step_time_s": summarize(step_times),
        "steps": losses[-1][0],
        "train_loss_first": losses[0][1],
        "train_loss_last": losses[-1][1],
        "eval_accuracy_initial": evals[0][1],
        "loss_curve": [[st, v] for st, v in _curve(losses)],
        "accuracy_curve": [[st, v] for st, v in evals],
        "eval_s": eval_s,
        "train_window_s": window_s,
        "target": reached,
        "loss_scale_final": float(scaler.get_scale()) if scaler is not None else None,
    }
    return {"metrics": metrics, "step_times": step_times, "step_joules": step_joules, "window_s": window_s}


@register
class Classification(ClassificationSpec, Scenario):
    """A sequence classifier trained on labelled text; DDP over ranks, as training."""

    name = "classification"
    requires = frozenset({TRAIN_STEP, CLASSIFY})
    precision_mode = AUTOCAST
    parallel = DATA_PARALLEL
    writes = (
        *("step_time_s", "steps", "tokens_per_step", "train_loss_first", "train_loss_last", "loss_curve"),
        *("eval_accuracy_initial", "eval_accuracy", "eval_macro_f1", "accuracy_curve", "eval_s", "train_window_s"),
        *("target", "loss_scale_final", "train_tok_per_s", "samples_per_s", "tokens_trained", "examples_trained"),
        *("flops_per_token_train", "achieved_flop_per_s_train", "mfu_train", "trainable_params", "adapter_bytes"),
        *("step_time_s_p50", "step_time_s_mean", "wall_s", "energy_j", "j_per_token", "usd_per_1m_tokens_train"),
    )
    repeat_cost = ("train_tok_per_s", "usd_per_1m_tokens_train")

    def model_config(self, config: Mapping[str, Any], model_cfg: dict[str, Any]) -> dict[str, Any]:
        """The preset (or its harness-trained checkpoint, init=checkpoint), with the labelled set's class count."""
        names = labelled.load(dict(config["data"])).names
        return {**model_cfg, "num_labels": len(names), "init": config["workload"].get("init", "random")}

    def run(self, ctx: RunContext) -> Measured:
        config, w, place = ctx.config, ctx.config["workload"], ctx.place
        tokenizer = data.local_tokenizer(config["model"].get("path"))
        sets = labelled.load(dict(config["data"]))
        pad = tokenizer.pad_token_id if tokenizer is not None and tokenizer.pad_token_id is not None else 0
        as_examples = lambda t, y: Examples(encode(t, config["seq_len"], tokenizer), torch.tensor(y), pad)  # noqa: E731
        train_ex, held = (
            as_examples(sets.train_texts, sets.train_labels),
            as_examples(sets.eval_texts, sets.eval_labels),
        )
        batches = Batches(train_ex, config["batch_size"], config["seed"] * 1000 + place.rank, ctx.device.torch_device)
        keys = ("max_steps", "warmup_steps", "lr", "lr_warmup_steps", "weight_decay", "grad_clip", "eval_interval")
        schedule = Schedule(*(w[k] for k in keys), None, config["repeats"])
        # finetune=lora wraps the module in peft adapters: a transform of the model, in its place
        ctx.backend.model, section = finetune.apply(ctx.backend.model, config)
        applied = levers(ctx.backend, w, config["batch_size"])
        out = train(ctx.backend, batches, held, schedule, w.get("target_accuracy"), ctx, applied["grad_accum_steps"])
        m = out["metrics"]
        tokens_per_step = config["batch_size"] * config["seq_len"]
        preds = predict(ctx.backend, held, ctx.runtime.get("autocast_dtype"), ctx.device.torch_device, ctx.device.type)
        quality = self._quality(held.labels.tolist(), preds, sets.names, config)
        m.update(
            tokens_per_step=tokens_per_step,
            eval_accuracy=quality["accuracy"],
            eval_macro_f1=quality["macro_f1"],
            trainable_params=section["trainable_params"],
            adapter_bytes=section["adapter_bytes"],
        )
        step_s, world = m["step_time_s"]["mean"], place.world_size
        m["train_tok_per_s"] = tokens_per_step * world / step_s if step_s else None
        m["samples_per_s"] = config["batch_size"] * world / step_s if step_s else None
        m["tokens_trained"] = tokens_per_step * world * m["steps"]
        m["examples_trained"] = config["batch_size"] * world * m["steps"]
        # 6 N per token over the trained parameters' share is not what runs: the backward still flows through
        # the frozen layers, so the standard 6 N (PaLM) is kept for both full and LoRA
        m["flops_per_token_train"] = flops.training_flops_per_token(ctx.model_facts, config["seq_len"])
        repeats = _chunks(out["step_times"], out["step_joules"], config["repeats"], tokens_per_step)
        units = {"token": m["tokens_trained"], "sample": m["examples_trained"], "step": m["steps"]}
        phases = [Phase("train", m["train_tok_per_s"], m["flops_per_token_train"], world)]
        sections = {"data": {**sets.info, "tokenizer": "local tokenizer" if tokenizer else "bytes (UTF-8)"}}
        sections.update(quality=quality, finetune=section, levers=applied)
        return Measured(m, repeats, out["window_s"], phases, units, sections=sections)

    @staticmethod
    def _quality(labels: list[int], preds: list[int], names: tuple[str, ...], config: Mapping[str, Any]) -> dict:
        resamples = int(config["quality"].get("bootstrap", 1000))
        fig = taskmetrics.figures(labels, preds, len(names), resamples, seed=0)
        majority = max(labels.count(i) for i in range(len(names))) / len(labels)
        return {
            "task": "classification",
            "method": "held-out accuracy and macro-F1 of the trained classifier",
            "interval": f"{taskmetrics.INTERVAL_METHOD}, {resamples} resamples",
            **fig,
            "classes": len(names),
            "majority_class_accuracy": majority,  # the floor a classifier must beat to have learned anything
            "per_class": taskmetrics.per_class(labels, preds, names),
        }

    def finish(self, sections: dict[str, Any], config: Mapping[str, Any]) -> None:
        """The weights this run started from were trained here: its held-out quality is meaningful."""
        weights = sections.get("weights") or {}
        if weights.get("kind") == "random":
            note = "trained from the seeded initialisation by this run (workload.init=random)"
            sections["weights"] = {**weights, "quality_meaningful": True, "note": note}

    def price(self, cost_section: Mapping[str, Any], metrics: Mapping[str, Any], timing: Mapping[str, float]) -> dict:
        """The training loop's cost, and the cost to reach workload.target_accuracy (null when not reached)."""
        usd_per_s, target = cost_section["usd_per_s"], metrics.get("target") or {}
        out: dict[str, Any] = {"training_usd": usd_per_s * timing["timed_window_s"]}
        if target.get("target_accuracy") is not None:
            out["usd_to_target"] = usd_per_s * target["time_s"] if target.get("reached") else None
        return out
