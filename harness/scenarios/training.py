"""Training: AdamW steps on real text, timed step by step, with held-out evaluation at a fixed interval.

Time-to-quality as in MLPerf Training: with a target eval loss the run stops at the first evaluation
that reaches it, and the wall time to get there (evaluations included) is recorded.
Mixed precision through autocast (bf16; fp16 with a gradient scaler), as the precision transform
(harness.transforms.precision) sets it; fp32 runs plain.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from harness import cost, data, flops, quality_eval
from harness.backends.base import TRAIN_STEP
from harness.backends.module import Optimizing
from harness.backends.module import autocast as _autocast
from harness.probes.base import ProbeSet
from harness.scenarios import register
from harness.scenarios.base import DATA_PARALLEL, Measured, Phase, RunContext, Scenario
from harness.scenarios.specs import TrainingSpec
from harness.stats import summarize
from harness.transforms.precision import AUTOCAST

MAX_CURVE_POINTS = 500


@dataclass(frozen=True)
class Schedule:
    max_steps: int
    warmup_steps: int  # excluded from step-time figures
    lr: float
    lr_warmup_steps: int
    weight_decay: float
    grad_clip: float
    eval_interval: int
    target_eval_loss: float | None
    chunks: int  # step times are also summarised in this many consecutive chunks (the gate's samples)


def lr_at(step: int, s: Schedule) -> float:
    """Linear warm-up to lr, then cosine decay to lr/10 at max_steps (step counts from 1)."""
    if step <= s.lr_warmup_steps:
        return s.lr * step / max(1, s.lr_warmup_steps)
    progress = (step - s.lr_warmup_steps) / max(1, s.max_steps - s.lr_warmup_steps)
    return s.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))


def _optimizer(model: Any, s: Schedule) -> torch.optim.Optimizer:
    """AdamW; weight decay on matrices only (not on norms and biases), as in GPT-style training. `model`: a
    backend (or a module): anything with `parameters()`."""
    params = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in params if p.dim() >= 2]
    no_decay = [p for p in params if p.dim() < 2]
    groups = [{"params": decay, "weight_decay": s.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=s.lr, betas=(0.9, 0.95))


def evaluate(
    backend: Any, batches: Sequence[torch.Tensor], autocast_dtype: torch.dtype | None, device_type: str
) -> float:
    """Mean next-token cross-entropy (nats) over the fixed held-out batches, under the run's autocast."""
    backend.set_training(False)
    total = 0.0
    with torch.no_grad(), _autocast(device_type, autocast_dtype):
        for x in batches:
            total += float(backend.lm_loss(x))
    backend.set_training(True)
    return total / len(batches)


EVAL_RESAMPLES = 1000


def eval_interval(
    backend: Any, batches: Sequence[torch.Tensor], autocast_dtype: torch.dtype | None, device_type: str
) -> dict[str, Any]:
    """The held-out loss with its seeded percentile-bootstrap 95 % interval over the held-out sequences (the
    quality section's rule, harness.quality_eval, with a sequence as the window): eval_loss_lo / _hi, and
    eval_loss_n, the sequences. Its point is eval_loss (the same tokens, summed instead of batch-averaged)."""
    backend.set_training(False)
    tokens, nll, correct = [], [], []
    with torch.no_grad(), _autocast(device_type, autocast_dtype):
        for x in batches:
            logits = backend.logits(x)[:, :-1].float()
            target = x[:, 1:]
            ce = torch.nn.functional.cross_entropy(logits.transpose(1, 2), target, reduction="none")
            nll.extend(ce.sum(-1).tolist())
            correct.extend((logits.argmax(-1) == target).sum(-1).tolist())
            tokens.extend([target.shape[1]] * target.shape[0])
    backend.set_training(True)
    windows = quality_eval.Windows(np.array(tokens), np.array(nll), np.array(correct))
    fig = quality_eval.figures(windows, EVAL_RESAMPLES, seed=0)
    return {"eval_loss_lo": fig["loss_nats_lo"], "eval_loss_hi": fig["loss_nats_hi"], "eval_loss_n": len(tokens)}


def levers(backend: Any, workload: Mapping[str, Any], batch_size: int) -> dict[str, Any]:
    """Apply the run's training levers to the backend's model; the result's `levers` section (what was applied)."""
    accum = int(workload.get("grad_accum_steps", 1))
    ckpt = bool(workload.get("grad_checkpointing", False))
    layers = backend.checkpoint_layers() if ckpt else 0  # raises ValueError where no layer checkpoints
    return {
        "grad_accum_steps": accum,
        "micro_batch_size": batch_size // accum,
        "grad_checkpointing": ckpt,
        "checkpointed_layers": layers,
    }


def _curve(points: list) -> list:
    stride = max(1, math.ceil(len(points) / MAX_CURVE_POINTS))
    kept = points[::stride]
    return kept if kept[-1] == points[-1] else [*kept, points[-1]]


def run(
    backend: Any,
    train: Any,
    held_out: Sequence[torch.Tensor],
    schedule: Schedule,
    autocast_dtype: torch.dtype | None,
    device_type: str,
    timer: Any,
    probes: ProbeSet | None = None,
    energy_now: Callable[[], float | None] | None = None,
    accum: int = 1,
) -> dict[str, Any]:
    """Train for the schedule (or to the target); returns metrics, per-chunk figures and timings (the
    probes' readings stay in `probes.readings`). fp16 autocast runs with a gradient scaler.

    `energy_now` (joules since the probes began, ProbeSet.energy_now) is read around each step, outside
    its timed span, to give each chunk its energy. `backend`: the run's (its train_step, lm_loss, logits);
    `accum`: micro-batches per optimizer step.
    """
    probes = probes if probes is not None else ProbeSet([])
    optimizer = _optimizer(backend, schedule)
    scaler = torch.amp.GradScaler(device_type) if autocast_dtype == torch.float16 else None
    opt = Optimizing(optimizer, scaler, schedule.grad_clip, autocast_dtype, device_type)
    backend.set_training(True)
    step_times: list[float] = []
    step_joules: list[float | None] = []  # per timed step, beside step_times
    losses: list[tuple[int, float]] = []
    evals: list[tuple[int, float, float]] = []
    target = {"target_eval_loss": schedule.target_eval_loss, "reached": False}
    tokens_per_step = 0
    eval_s = 0.0
    try:
        initial = evaluate(backend, held_out, autocast_dtype, device_type)
        evals.append((0, initial, math.exp(initial)))
        probes.begin()
        start = time.perf_counter()
        for step in range(1, schedule.max_steps + 1):
            x = train.next()
            tokens_per_step = x.numel()  # the global batch, whatever the micro-batches
            for group in optimizer.param_groups:
                group["lr"] = lr_at(step, schedule)
            joules_before = energy_now() if energy_now is not None else None
            m0 = timer.mark()
            loss = backend.train_step([x], opt, accum)
            m1 = timer.mark()
            timer.sync()
            if step > schedule.warmup_steps:
                step_times.append(timer.elapsed_s(m0, m1))
                joules_after = energy_now() if energy_now is not None else None
                # a counter that updates every ~100 ms may not move within one short step: 0 is a valid
                # step delta here; only the chunk's sum must be positive
                step_joules.append(
                    joules_after - joules_before if joules_before is not None and joules_after is not None else None
                )
            losses.append((step, float(loss.detach())))
            if step % schedule.eval_interval == 0 or step == schedule.max_steps:
                e0 = time.perf_counter()
                value = evaluate(backend, held_out, autocast_dtype, device_type)
                eval_s += time.perf_counter() - e0
                evals.append((step, value, math.exp(value)))
                if schedule.target_eval_loss is not None and value <= schedule.target_eval_loss:
                    target.update(reached=True, step=step, time_s=time.perf_counter() - start)
                    break
        window_s = time.perf_counter() - start
        probes.end()
    finally:  # a failed run still stops every probe
        probes.close()
    interval = eval_interval(backend, held_out, autocast_dtype, device_type)  # after the window: not timed

    steps = losses[-1][0]
    if schedule.target_eval_loss is not None and not target["reached"]:
        target["reason"] = f"eval loss {evals[-1][1]:.4f} > target {schedule.target_eval_loss} after {steps} steps"
    metrics = {
        "step_time_s": summarize(step_times),
        "steps": steps,
        "tokens_per_step": tokens_per_step,
        "train_loss_first": losses[0][1],
        "train_loss_last": losses[-1][1],
        "eval_loss_initial": evals[0][1],
        "eval_loss": evals[-1][1],
        **interval,
        "eval_perplexity": evals[-1][2],
        "loss_curve": [[s, v] for s, v in _curve(losses)],
        "eval_curve": [[s, v, p] for s, v, p in evals],
        "eval_s": eval_s,
        "train_window_s": window_s,
        "target": target,
        "loss_scale_final": float(scaler.get_scale()) if scaler is not None else None,
    }
    per_chunk = _chunks(step_times, step_joules, schedule.chunks, tokens_per_step)
    return {"metrics": metrics, "repeats": per_chunk, "timed_window_s": window_s}


def _chunks(times: list[float], joules: list[float | None], count: int, tokens_per_step: int) -> list[dict]:
    """Consecutive chunks of timed steps, the gate's samples: step times, throughput and energy of each."""
    size = max(1, len(times) // count)
    out = []
    for i in range(0, size * count, size):
        t, j = times[i : i + size], joules[i : i + size]
        if not t:
            break
        seconds = sum(t)
        energy = sum(j) if j and all(x is not None for x in j) else None  # type: ignore[misc]
        energy = energy if energy is not None and energy > 0 else None  # no advance over a chunk: unknown
        out.append(
            {
                "steps": len(t),
                "step_time_s_p50": summarize(t)["p50"],
                "step_time_s_mean": seconds / len(t),
                "train_tok_per_s": tokens_per_step * len(t) / seconds if seconds > 0 else None,
                "wall_s": seconds,
                "energy_j": energy,
                "j_per_token": energy / (tokens_per_step * len(t)) if energy is not None and tokens_per_step else None,
            }
        )
    return out


@register
class Training(TrainingSpec, Scenario):
    """AdamW on real text; DDP over ranks (synchronous steps: one step covers every rank's batch)."""

    name = "training"
    requires = frozenset({TRAIN_STEP})
    precision_mode = AUTOCAST
    parallel = DATA_PARALLEL
    writes = (
        *("step_time_s", "steps", "tokens_per_step", "train_loss_first", "train_loss_last"),
        *("eval_loss_initial", "eval_loss", "eval_loss_lo", "eval_loss_hi", "eval_loss_n", "eval_perplexity"),
        *("loss_curve", "eval_curve", "eval_s"),
        *("train_window_s", "target", "loss_scale_final", "train_tok_per_s", "samples_per_s"),
        *("tokens_trained", "flops_per_token_train", "achieved_flop_per_s_train", "mfu_train"),
        *("step_time_s_p50", "step_time_s_mean", "wall_s", "energy_j", "j_per_token", "usd_per_1m_tokens_train"),
    )
    repeat_cost = ("train_tok_per_s", "usd_per_1m_tokens_train")

    def run(self, ctx: RunContext) -> Measured:
        config, w, place, device = ctx.config, ctx.config["workload"], ctx.place, ctx.device.torch_device
        tokenizer = data.local_tokenizer(config["model"].get("path"))
        train_stream, eval_stream, info = data.training_streams(config["data"], config["seed"], tokenizer)
        # every precision of one seed sees the same batches; each rank draws its own
        batches = data.TrainBatches(
            train_stream, config["batch_size"], config["seq_len"], config["seed"] * 1000 + place.rank, device
        )
        held_out = data.eval_batches(eval_stream, w["eval_batches"], config["batch_size"], config["seq_len"], device)
        keys = ("max_steps", "warmup_steps", "lr", "lr_warmup_steps", "weight_decay", "grad_clip", "eval_interval")
        schedule = Schedule(*(w[k] for k in keys), w["target_eval_loss"], config["repeats"])
        autocast_dtype = ctx.runtime.get("autocast_dtype")
        applied = levers(ctx.backend, w, config["batch_size"])
        out = run(
            *(ctx.backend, batches, held_out, schedule, autocast_dtype, ctx.device.type, ctx.timer, ctx.probes),
            *(ctx.energy_now, applied["grad_accum_steps"]),
        )
        m = out["metrics"]
        step_s = m["step_time_s"]["mean"]
        world_tokens = m["tokens_per_step"] * place.world_size  # DDP steps are synchronous: one step, all ranks
        m["train_tok_per_s"] = world_tokens / step_s if step_s else None
        m["samples_per_s"] = config["batch_size"] * place.world_size / step_s if step_s else None
        m["tokens_trained"] = world_tokens * m["steps"]
        m["flops_per_token_train"] = flops.training_flops_per_token(ctx.model_facts, config["seq_len"])
        units = {
            "token": world_tokens * m["steps"],
            "sample": config["batch_size"] * place.world_size * m["steps"],
            "step": m["steps"],
        }
        phases = [Phase("train", m["train_tok_per_s"], m["flops_per_token_train"], place.world_size)]
        sections = {"data": info, "levers": applied}
        return Measured(m, out["repeats"], out["timed_window_s"], phases, units, sections=sections)

    def price(self, cost_section: Mapping[str, Any], metrics: Mapping[str, Any], timing: Mapping[str, float]) -> dict:
        return cost.training(cost_section["usd_per_s"], metrics, timing)
