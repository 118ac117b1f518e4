"""Classifier inference: batched forward passes of a fine-tuned sequence classifier over held-out examples,
timed batch by batch, then its held-out accuracy and macro-F1 and the verdict against the fp32 classifier of
the same weights.

The classifier: the one harness.finetuned fine-tunes once for these settings (`finetune`, `lora.*`,
`workload.init`, `workload.max_steps`, ...; cached, what it cost carried in `weights`), or the user's own
(`model=local model.path=<dir>`, e.g. a `workload.save_checkpoint=true` run's checkpoint). One *batch* is
`batch_size` held-out examples (in order, wrapping round), each `seq_len` tokens padded; warm-up batches are
excluded and each repeat times batches until both `workload.min_iters` and `workload.min_time_s` are met, as
the inference workload does. At batch_size=1 the batch latency is the per-example latency.
Quality (MLPerf's rule, as harness.quality): the run's predictions over every held-out example against the
fp32 build's, accuracy and macro-F1 ratios with paired bootstrap intervals, judged against `quality.floor`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

import torch

from harness import adaptive, data, flops, labelled, quality_eval, taskmetrics
from harness.backends.base import CLASSIFY
from harness.probes.energy import between
from harness.scenarios import register
from harness.scenarios.base import Measured, Phase, RunContext, Scenario
from harness.scenarios.classification import Classification, Examples, encode, predict
from harness.scenarios.inference import Policy
from harness.scenarios.specs import ClassifySpec
from harness.stats import summarize
from harness.transforms.precision import WEIGHTS

PER_1K = 1e3
RATIOS = ("accuracy", "macro_f1")  # judged against quality.floor as ratios to the fp32 build


def batches(ex: Examples, batch_size: int, device: Any) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(ids, mask) of consecutive held-out batches covering every example once (the last wraps round)."""
    n = len(ex.labels)
    out = []
    for start in range(0, n, batch_size):
        ids = ex.ids[torch.arange(start, start + batch_size) % n]
        out.append((ids.to(device), ex.mask(ids).to(device)))
    return out


def timed_batch(backend: Any, ids: torch.Tensor, mask: torch.Tensor, timer: Any) -> float:
    """Seconds of one forward over a batch (the backend's class logits), the device synchronised."""
    m0 = timer.mark()
    backend.classify(ids, mask)
    m1 = timer.mark()
    timer.sync()
    return timer.elapsed_s(m0, m1)


def repeat(
    forward: Callable[[int], float], batch_size: int, policy: Policy, samples: list[float], energy_now: Any = None
) -> dict[str, Any]:
    """One repeat: batches until min_iters and min_time_s are both met; its latencies join `samples`.
    `forward(i)` times the i-th batch of this repeat and returns its seconds."""
    mine: list[float] = []
    joules_before = energy_now() if energy_now is not None else None
    start = time.perf_counter()
    while len(mine) < policy.max_iters and (
        len(mine) < policy.min_iters or time.perf_counter() - start < policy.min_time_s
    ):
        mine.append(forward(len(samples) + len(mine)))
    wall_s = time.perf_counter() - start
    energy_j = between(joules_before, energy_now()) if energy_now is not None else None
    samples.extend(mine)
    examples = batch_size * len(mine)
    return {
        "iterations": len(mine),
        "wall_s": wall_s,
        "energy_j": energy_j,  # counters only (NVML, RAPL); null where none reads mid-window
        "j_per_1k_examples": energy_j / examples * PER_1K if energy_j is not None else None,
        "batch_latency_s_p50": summarize(mine)["p50"],
        "examples_per_s": examples_per_s(batch_size, mine),
    }


def examples_per_s(batch_size: int, latencies_s: list[float]) -> float | None:
    """Examples over the seconds spent on their batches."""
    total = sum(latencies_s)
    return batch_size * len(latencies_s) / total if total > 0 and latencies_s else None


def usd_per_1k_examples(usd_per_s: float | None, rate: float | None) -> float | None:
    """USD per 1,000 examples classified at `rate` examples per second, priced at `usd_per_s`."""
    return usd_per_s / rate * PER_1K if usd_per_s is not None and rate else None


def run_timed(backend: Any, held: list, batch_size: int, policy: Policy, ctx: Any) -> dict[str, Any]:
    """Warm up, then time the repeats (or repeats=auto) with the probes around them."""
    probes, timer = ctx.probes, ctx.timer
    forward = lambda i: timed_batch(backend, *held[i % len(held)], timer)  # noqa: E731
    samples: list[float] = []
    try:
        with torch.inference_mode():
            t0 = time.perf_counter()
            for i in range(policy.warmup_iters):
                forward(i)
            while not probes.settled():  # a GPU: until its SM clock is steady (harness.probes.clocks)
                forward(0)
            warmup_s = time.perf_counter() - t0
            probes.begin()
            start = time.perf_counter()
            repeats, stopped = adaptive.run_repeats(
                lambda: repeat(forward, batch_size, policy, samples, ctx.energy_now),
                policy.repeats,
                policy.rule,
                policy.figure,
            )
            window_s = time.perf_counter() - start
            probes.end()
    finally:
        probes.close()
    return {"samples": samples, "repeats": repeats, "warmup_s": warmup_s, "window_s": window_s, "stopped": stopped}


@register
class Classify(ClassifySpec, Scenario):
    """A fine-tuned classifier serving held-out examples in batches: each rank (a replica) its own copy."""

    name = "classify"
    requires = frozenset({CLASSIFY})
    precision_mode = WEIGHTS
    writes = (
        *("batch_latency_s", "batch_latency_s_p50", "examples_per_s", "iterations", "examples_timed"),
        *("eval_accuracy", "eval_macro_f1", "flops_per_token_prefill", "achieved_flop_per_s_prefill"),
        *("mfu_prefill", "wall_s", "energy_j", "j_per_1k_examples", "usd_per_1k_examples"),
    )
    summed_over_ranks = ("examples_per_s",)
    repeat_cost = ("examples_per_s", "usd_per_1k_examples")
    repeat_cost_scale = PER_1K  # each repeat priced per 1,000 examples (harness.accounting.price_repeats)

    def model_config(self, config: Mapping[str, Any], model: dict[str, Any]) -> dict[str, Any]:
        """The classifier to load: harness-made (harness.finetuned) or model.path, with its trained head."""
        from harness import finetuned

        model_cfg = dict(model)
        if not model_cfg.get("path"):
            model_cfg["path"] = str(finetuned.checkpoint_path(config))
        classes = len(labelled.load(dict(config["data"])).names)
        return {**model_cfg, "num_labels": classes, "init": "checkpoint"}

    def run(self, ctx: RunContext) -> Measured:
        config, w, dev = ctx.config, ctx.config["workload"], ctx.device.torch_device
        tokenizer = data.local_tokenizer(config["model"].get("path"))
        sets = labelled.load(dict(config["data"]))
        pad = tokenizer.pad_token_id if tokenizer is not None and tokenizer.pad_token_id is not None else 0
        held = Examples(encode(sets.eval_texts, config["seq_len"], tokenizer), torch.tensor(sets.eval_labels), pad)
        ctx.backend.set_training(False)
        policy = Policy(
            *(w[k] for k in ("warmup_iters", "min_iters", "min_time_s", "max_iters")),
            config["repeats"],
            adaptive.rule_from(config),
            "examples_per_s",
        )
        out = run_timed(ctx.backend, batches(held, config["batch_size"], dev), config["batch_size"], policy, ctx)
        t = time.perf_counter()
        scored = self._quality(ctx.backend, held, sets.names, ctx)
        quality_s = time.perf_counter() - t
        m: dict[str, Any] = {
            "batch_latency_s": summarize(out["samples"]),
            "examples_per_s": examples_per_s(config["batch_size"], out["samples"]),
            "iterations": len(out["samples"]),
            "examples_timed": len(out["samples"]) * config["batch_size"],
            "eval_accuracy": scored.get("accuracy"),
            "eval_macro_f1": scored.get("macro_f1"),
        }
        m["flops_per_token_prefill"] = flops.inference_flops(ctx.model_facts, config["seq_len"], 0)[
            "flops_per_token_prefill"
        ]
        tok_per_s = m["examples_per_s"] * config["seq_len"] if m["examples_per_s"] else None
        units = {"1k_examples": m["examples_timed"] / PER_1K, "sample": m["examples_timed"]}
        sections = {"quality": scored, "data": {**sets.info, "tokenizer": "local tokenizer" if tokenizer else "bytes"}}
        if out["stopped"]:
            sections["adaptive_repeats"] = out["stopped"]
        return Measured(
            m,
            out["repeats"],
            out["window_s"],
            [Phase("prefill", tok_per_s, m["flops_per_token_prefill"], 1)],
            units,
            warmup_s=out["warmup_s"],
            sections=sections,
            timing={"quality_s": quality_s},
        )

    def _quality(self, backend: Any, held: Examples, names: tuple[str, ...], ctx: Any) -> dict[str, Any]:
        """Held-out accuracy and macro-F1 with intervals, and the verdict against the fp32 classifier."""
        from harness.quality import _reference_does_not_fit

        config, dev, labels = ctx.config, ctx.device.torch_device, held.labels.tolist()
        floor, prec = float(config["quality"].get("floor", 0.99)), config["precision"]["name"]
        preds = predict(backend, held, None, dev, ctx.device.type)
        section = Classification._quality(labels, preds, names, config)
        section.update(
            method="held-out accuracy and macro-F1 of the classifier as run, against its fp32 build",
            reference="self: this run is fp32" if prec == "fp32" else "fp32 build of the same weights",
            floor=floor,
            quality_meaningful=True,
        )
        if not config["quality"].get("enabled", True):  # accuracy stands; no fp32 build, so no verdict
            return {**section, "verdict": None, "verdict_note": "quality.enabled=false: no fp32 reference built"}
        if prec == "fp32":  # the run is its own reference: identical by definition, not by measurement
            ref = preds
        else:
            reason = _reference_does_not_fit(backend, config, dev)
            if reason:
                return {**section, "verdict": None, "verdict_note": reason}
            reference = backend.reference(self.model_config(config, config["model"]), dev, config["seed"])
            ref = predict(reference, held, None, dev, ctx.device.type)
            del reference
        resamples = int(config["quality"].get("bootstrap", 1000))
        ratios = taskmetrics.paired_ratios(labels, preds, ref, len(names), resamples, seed=0)
        section.update({k: v for k, v in ratios.items() if k not in ("n", "method")}, ratio_interval=ratios["method"])
        section["reference_accuracy"] = taskmetrics.accuracy(labels, ref)
        section["reference_macro_f1"] = taskmetrics.macro_f1(labels, ref, len(names))
        per = {m: quality_eval.verdict(ratios[f"{m}_ratio_lo"], ratios[f"{m}_ratio_hi"], floor) for m in RATIOS}
        section.update(verdict=quality_eval.worst(list(per.values())), verdict_accuracy=per["accuracy"])
        section["verdict_macro_f1"] = per["macro_f1"]
        section["passes_floor"] = section["verdict"] != "fail"
        known = [r for r in (ratios["accuracy_ratio"], ratios["macro_f1_ratio"]) if r is not None]
        section["relative_quality"] = min(known) if known else None
        return section

    def price(self, cost_section: Mapping[str, Any], metrics: Mapping[str, Any], timing: Mapping[str, float]) -> dict:
        """USD per 1,000 examples at the run's examples/s."""
        return {"usd_per_1k_examples": usd_per_1k_examples(cost_section["usd_per_s"], metrics.get("examples_per_s"))}

    def finish(self, sections: dict[str, Any], config: Mapping[str, Any]) -> None:
        """A harness-made classifier: the weights section says which, and what making it cost (made_by)."""
        from harness import finetuned

        if finetuned.harness_made(config):
            sections["weights"] = finetuned.provenance(config)
