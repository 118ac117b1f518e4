"""Distillation: a smaller student (the run's `model`) learns from a teacher classifier's soft labels
(harness.distill: temperature `distill.temperature`, mix `distill.alpha`), and in the same run the same
student (same initial weights, same batches, same steps) learns from the labels alone. Both are scored on every
held-out example; the difference of their accuracies has a paired bootstrap interval (harness.taskmetrics).

The teacher: `teacher=<folder>`, a classifier checkpoint saved by `workload=classification
workload.save_checkpoint=true` (what making it cost comes from that run's result: harness.provenance), or
`teacher=<preset>`, trained from the seed here on the same training split for `distill.teacher_steps`.
Inside the timed window, each part timed apart (perf_counter, device synchronised) and its energy read from
the run's energy counter where one can be read mid-window (NVML, RAPL; else null, said so): teacher training
(preset only), teacher labelling (its logits over every training example), the distilled student, the student
alone. The cost section prices each part at the run's USD per second.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F

from harness import data, distill, labelled, taskmetrics
from harness.backends.hf_classifier import HFClassifier
from harness.backends.module import Optimizing
from harness.scenarios import register
from harness.scenarios.base import REPLICAS, Measured, Phase, RunContext
from harness.scenarios.classification import EVAL_BATCH, Batches, Classification, Examples, encode, predict
from harness.scenarios.specs import DistillSpec
from harness.scenarios.training import Schedule, _autocast, _chunks, _optimizer, levers, lr_at

NO_COUNTER = "null: no energy counter readable mid-window here (an estimate covers the whole window only)"
PARTS = ("teacher_train", "teacher_label", "distill_train", "alone_train")


class Window:
    """Time and energy of each part of the timed window (energy None where no counter reads mid-window)."""

    def __init__(self, ctx: Any):
        self.ctx, self.seconds, self.joules = ctx, {}, {}

    def part(self, name: str, work: Any) -> Any:
        now = self.ctx.energy_now
        j0 = now() if now is not None else None
        self.ctx.timer.sync()
        t0 = time.perf_counter()
        out = work()
        self.ctx.timer.sync()
        self.seconds[name] = time.perf_counter() - t0
        j1 = now() if now is not None else None
        self.joules[name] = j1 - j0 if None not in (j0, j1) else None
        return out


def _next(b: Batches) -> tuple[torch.Tensor, ...]:
    """A batch and the indices of its examples (Batches' draw: the same order for every student of a seed):
    ids, mask, labels, indices (the backend's train step reads the first three)."""
    idx = torch.randint(0, len(b.ex.labels), (b.batch_size,), generator=b.generator)
    ids = b.ex.ids[idx]
    return ids.to(b.device), b.ex.mask(ids).to(b.device), b.ex.labels[idx].to(b.device), idx


def fit(backend: Any, batches: Batches, s: Schedule, ctx: Any, soft: Any = None, d: Any = None) -> dict:
    """max_steps steps on cross-entropy, or (soft: teacher logits per training example) on the distill loss;
    each step in workload.grad_accum_steps micro-batches (the backend's train_step, over its class logits)."""
    autocast_dtype, device_type, timer = ctx.runtime.get("autocast_dtype"), ctx.device.type, ctx.timer
    optimizer = _optimizer(backend, s)
    scaler = torch.amp.GradScaler(device_type) if autocast_dtype == torch.float16 else None
    opt = Optimizing(optimizer, scaler, s.grad_clip, autocast_dtype, device_type)
    step_times, losses = [], []
    accum = int(ctx.config["workload"].get("grad_accum_steps", 1))
    backend.set_training(True)

    def loss_of(logits: torch.Tensor, part: Any) -> torch.Tensor:
        _, _, y, idx = part
        if soft is None:
            return F.cross_entropy(logits.float(), y)
        return distill.loss(logits, soft[idx].to(logits.device), y, d["temperature"], d["alpha"])

    for step in range(1, s.max_steps + 1):
        batch = _next(batches)
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step, s)
        m0 = timer.mark()
        loss = backend.train_step(list(batch), opt, accum, loss_of)
        m1 = timer.mark()
        timer.sync()
        if step > s.warmup_steps:
            step_times.append(timer.elapsed_s(m0, m1))
        losses.append(float(loss.detach()))
    return {"step_times": step_times, "loss_first": losses[0], "loss_last": losses[-1]}


def logits_of(backend: Any, ex: Examples, ctx: Any) -> torch.Tensor:
    """The teacher's class logits for every example (n, classes), fp32 on the CPU, under the run's autocast."""
    backend.set_training(False)
    out = []
    with torch.no_grad(), _autocast(ctx.device.type, ctx.runtime.get("autocast_dtype")):
        for i in range(0, len(ex.labels), EVAL_BATCH):
            ids = ex.ids[i : i + EVAL_BATCH].to(ctx.device.torch_device)
            out.append(backend.classify(ids, ex.mask(ids)).float().cpu())
    return torch.cat(out)


def _teacher(config: Mapping[str, Any], classes: int, device: Any) -> tuple[HFClassifier, dict[str, Any]]:
    """The teacher (fp32, in a classifier backend of its own) and what it is: a saved checkpoint, or a preset to
    train here."""
    from harness.reproduce import _preset

    name = config["teacher"]
    if distill.teacher_kind(name) == "preset":
        cfg = {**config["model"], "path": None, **(_preset("model", name) or {}), "num_labels": classes}
        info = {"kind": "preset", "name": name, "trained_in_run": True, "steps": config["distill"]["teacher_steps"]}
    else:
        cfg = {**config["model"], "path": name, "init": "checkpoint", "num_labels": classes}
        from harness.checkpoints import made_by

        made = made_by(name)  # what the teacher cost to make, where a harness run saved it (else None)
        info = {"kind": "checkpoint", "path": name, "trained_in_run": False, "made_by": made}
    teacher = HFClassifier()
    teacher.load(cfg, torch.float32, device, config["seed"] + 1)
    info["params"] = int(sum(p.numel() for p in teacher.parameters()))
    return teacher, info


@register
class Distill(DistillSpec, Classification):
    """A student trained on a teacher's soft labels, beside the same student trained alone (one device)."""

    name = "distill"
    parallel = REPLICAS
    writes = (
        *("step_time_s", "steps", "tokens_per_step", "train_loss_first", "train_loss_last", "train_window_s"),
        *("eval_accuracy", "eval_macro_f1", "alone_eval_accuracy", "alone_eval_macro_f1", "distill_accuracy_gain"),
        *("teacher_eval_accuracy", "teacher_params", "teacher_train_s", "teacher_label_s", "teacher_label_j"),
        *("alone_train_loss_last", "train_tok_per_s", "samples_per_s", "tokens_trained", "examples_trained"),
        *("trainable_params", "step_time_s_p50", "step_time_s_mean", "wall_s", "energy_j", "j_per_token"),
        "usd_per_1m_tokens_train",
    )

    def run(self, ctx: RunContext) -> Measured:
        config, w, dcfg = ctx.config, ctx.config["workload"], ctx.config["distill"]
        dev = ctx.device.torch_device
        sets = labelled.load(dict(config["data"]))
        student_tok = data.local_tokenizer(config["model"].get("path"))
        teacher, info = _teacher(config, len(sets.names), dev)
        teacher_tok = data.local_tokenizer(config["teacher"]) if info["kind"] == "checkpoint" else None

        def examples(texts: Any, labels: Any, tok: Any) -> Examples:
            pad = tok.pad_token_id if tok is not None and tok.pad_token_id is not None else 0
            return Examples(encode(texts, config["seq_len"], tok), torch.tensor(labels), pad)

        train_s, held_s = examples(sets.train_texts, sets.train_labels, student_tok), None
        held_s = examples(sets.eval_texts, sets.eval_labels, student_tok)
        train_t = examples(sets.train_texts, sets.train_labels, teacher_tok)
        keys = ("max_steps", "warmup_steps", "lr", "lr_warmup_steps", "weight_decay", "grad_clip", "eval_interval")
        s = Schedule(*(w[k] for k in keys), None, config["repeats"])
        batches = lambda ex: Batches(ex, config["batch_size"], config["seed"] * 1000, dev)  # noqa: E731
        student = ctx.backend
        alone = student.copy()  # the same initial weights, trained on the labels only
        applied = levers(student, w, config["batch_size"])  # the same levers for both students (and the teacher
        levers(alone, w, config["batch_size"])  # where it trains here)
        if info["trained_in_run"]:
            levers(teacher, w, config["batch_size"])
        window = Window(ctx)
        try:
            ctx.probes.begin()
            start = time.perf_counter()
            if info["trained_in_run"]:
                teacher_s = Schedule(dcfg["teacher_steps"], 0, *(w[k] for k in keys[2:]), None, 1)
                window.part("teacher_train", lambda: fit(teacher, batches(train_t), teacher_s, ctx))
            soft = window.part("teacher_label", lambda: logits_of(teacher, train_t, ctx))
            out = window.part("distill_train", lambda: fit(student, batches(train_s), s, ctx, soft, dcfg))
            alone_out = window.part("alone_train", lambda: fit(alone, batches(train_s), s, ctx))
            window_s = time.perf_counter() - start
            ctx.probes.end()
        finally:
            ctx.probes.close()
        trio, outs = (student, alone, teacher), (out, alone_out)
        measured = self._measured(ctx, sets, held_s, trio, outs, window, window_s, info)
        measured.sections["levers"] = applied
        return measured

    def _measured(self, ctx, sets, held, trio, outs, window, window_s, info) -> Measured:  # noqa: ANN001
        """Score the three models on the held-out examples; the figures, sections and timing of the run."""
        config, (student, alone, teacher), (out, alone_out) = ctx.config, trio, outs
        dev, ad, dt = ctx.device.torch_device, ctx.runtime.get("autocast_dtype"), ctx.device.type
        labels = held.labels.tolist()
        p_student, p_alone = predict(student, held, ad, dev, dt), predict(alone, held, ad, dev, dt)
        teacher_tok = data.local_tokenizer(config["teacher"]) if info["kind"] == "checkpoint" else None
        held_t = Examples(encode(sets.eval_texts, config["seq_len"], teacher_tok), held.labels, held.pad)
        teacher_acc = taskmetrics.accuracy(labels, predict(teacher, held_t, ad, dev, dt))
        resamples = int(config["quality"].get("bootstrap", 1000))
        quality = self._quality(labels, p_student, sets.names, config)
        alone_q = taskmetrics.figures(labels, p_alone, len(sets.names), resamples, seed=0)
        diff = taskmetrics.paired_difference(labels, p_student, p_alone, resamples, seed=0)
        quality["distill_verdict"] = distill.verdict(diff)
        tokens_per_step, steps = config["batch_size"] * config["seq_len"], config["workload"]["max_steps"]
        step_s = sum(out["step_times"]) / len(out["step_times"]) if out["step_times"] else None
        from harness.stats import summarize

        m: dict[str, Any] = {
            "step_time_s": summarize(out["step_times"]),
            "steps": steps,
            "tokens_per_step": tokens_per_step,
            "train_loss_first": out["loss_first"],
            "train_loss_last": out["loss_last"],
            "alone_train_loss_last": alone_out["loss_last"],
            "train_window_s": window.seconds["distill_train"],
            "eval_accuracy": quality["accuracy"],
            "eval_macro_f1": quality["macro_f1"],
            "alone_eval_accuracy": alone_q["accuracy"],
            "alone_eval_macro_f1": alone_q["macro_f1"],
            "distill_accuracy_gain": diff["accuracy"],
            "teacher_eval_accuracy": teacher_acc,
            "teacher_params": info["params"],
            "teacher_train_s": window.seconds.get("teacher_train"),
            "teacher_label_s": window.seconds["teacher_label"],
            "teacher_label_j": window.joules["teacher_label"],
            "train_tok_per_s": tokens_per_step / step_s if step_s else None,
            "samples_per_s": config["batch_size"] / step_s if step_s else None,
            "tokens_trained": tokens_per_step * steps,
            "examples_trained": config["batch_size"] * steps,
            "trainable_params": int(sum(p.numel() for p in student.parameters() if p.requires_grad)),
        }
        energy_note = NO_COUNTER if ctx.energy_now is None else "the run's energy counter, read mid-window"
        section = {
            "teacher": info,
            "temperature": config["distill"]["temperature"],
            "alpha": config["distill"]["alpha"],
            "steps": steps,
            "same_run": "the student alone: same initial weights, batches and steps, trained in this run",
            "labelling": {
                "examples": len(sets.train_texts),
                "time_s": window.seconds["teacher_label"],
                "energy_j": window.joules["teacher_label"],
                "energy": energy_note,
            },  # fmt: skip
            "parts_s": dict(window.seconds),
            "parts_j": dict(window.joules),
            "teacher_accuracy": teacher_acc,
            "alone": {**alone_q, "train_loss_last": alone_out["loss_last"]},
            "difference": diff,
            "verdict": quality["distill_verdict"],
        }
        repeats = _chunks(out["step_times"], [None] * len(out["step_times"]), config["repeats"], tokens_per_step)
        units = {"token": m["tokens_trained"], "sample": m["examples_trained"], "step": steps}
        phases = [Phase("train", m["train_tok_per_s"], None, 1)]
        sections = {"data": {**sets.info, "tokenizer": "bytes (UTF-8)"}, "quality": quality, "distill": section}
        sections["finetune"] = {"method": "full", "init": config["workload"].get("init", "random")}
        timing = {f"{k}_s": v for k, v in window.seconds.items()}
        return Measured(m, repeats, window_s, phases, units, sections=sections, timing=timing)

    def price(self, cost_section: Mapping[str, Any], metrics: Mapping[str, Any], timing: Mapping[str, float]) -> dict:
        """Each part at the run's USD per second; training_usd is what the distilled student cost to make here
        (teacher training when in this run, its labelling, the student's training), not the student alone."""
        usd = cost_section["usd_per_s"]
        part = {p: usd * timing[f"{p}_s"] if f"{p}_s" in timing else None for p in PARTS}
        made = sum(v for p, v in part.items() if v is not None and p != "alone_train")
        return {"training_usd": made, **{f"{p}_usd": v for p, v in part.items()}}
