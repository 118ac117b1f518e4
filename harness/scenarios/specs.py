"""What each shipped workload is, declared without importing torch: key fields, run slug, the config it
reads and checks, objectives, summary columns, trained weights (harness.scenarios.base.Spec).

The CLI, the launcher, the results' keys and the readers ask these (harness.scenarios.spec); the worker's
Scenario classes (harness/scenarios/<name>.py, which import torch) subclass them and add the timed run.
What each method returns is what harness.results, harness.validation, harness.cli, harness.config,
harness.summary, harness.memory_model, harness.checkpoints and harness.metrics computed with a branch on
the workload's name before (tests/test_seams.py holds keys, hashes and slugs from then).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from harness.errors import ConfigError
from harness.metrics import get as metric
from harness.scenarios import schemas
from harness.scenarios.base import Spec

# the config keys outside `workload` that only some workloads read (the workload's own: its schema, `schema`)
_LORA = tuple(f"lora.{k}" for k in ("rank", "alpha", "dropout", "target_modules"))
_TRAINING_SUMMARY = ("step_time_s", "train_tok_per_s")
# what a run that trains is priced, charged and timed on in the report's answer: cost to its target where
# set, else the whole run
_TRAINED_ANSWER = {
    "cost": (
        ("cost_usd_to_target", "usd_to_target", "cost", "min"),
        ("cost_training_usd", "training_usd", "cost", "min"),
    ),
    "energy": ("energy_total_j", "total_j", "energy", "min"),
    "speed": (("train_tok_per_s", "train_tok_per_s", "metrics", "max"),),
}


class InferenceSpec(Spec):
    """Offline batches: prefill, then decode_tokens greedy steps (harness/scenarios/inference.py)."""

    name = "inference"
    schema = schemas.InferenceWorkload
    only_keys = ()
    objectives = (
        ("decode throughput", ("decode_tok_per_s", "e2e_tok_per_s"), "max", "tokens/s"),
        (metric("usd_per_1m_tokens_generated", "cost").label, ("cost_usd_per_1m_tokens_generated",), "min", "USD"),
        ("p99 request latency", ("request_latency_s_p99",), "min", "s"),
        ("peak memory", ("peak_memory_bytes",), "min", "bytes"),
        ("held-out loss", ("heldout_loss_nats",), "min", "nats"),
    )
    summary = (
        "prefill_latency_s",
        "decode_latency_s",
        "decode_tok_per_s",
        "e2e_tok_per_s",
        "mfu_prefill",
        "mbu_decode",
    )
    scaling_throughput = "e2e_tok_per_s"
    answer = {
        "quality": ("heldout_loss_nats", "loss_nats", "quality", "min"),
        "lo": "quality_loss_nats_lo",
        "hi": "quality_loss_nats_hi",
        "cost": (("cost_usd_per_1m_tokens_generated", "usd_per_1m_tokens_generated", "cost", "min"),),
        "energy": ("energy_j_per_token", "j_per_token", "energy", "min"),
        "speed": (
            ("e2e_tok_per_s", "e2e_tok_per_s", "metrics", "max"),
            ("decode_tok_per_s", "decode_tok_per_s", "metrics", "max"),
        ),
    }

    def repeats_figure(self, config: Mapping[str, Any]) -> str:
        """The main figure (the summary's headline): decode tokens/s, or e2e tokens/s without decode steps."""
        return "decode_tok_per_s" if config["workload"]["decode_tokens"] > 0 else "e2e_tok_per_s"

    def observes_int8_kernels(self, config: Mapping[str, Any]) -> bool:
        return config["precision"]["name"] == "int8"

    def validate(self, cfg: Any) -> None:
        if cfg.workload.draft_model is not None and cfg.batch_size != 1:
            why = "speculative decoding (workload.draft_model) verifies one sequence: batch_size=1 (as transformers)"
            raise ConfigError("batch_size", cfg.batch_size, why)


class TrainingSpec(Spec):
    """A step budget (or time-to-quality) from the seeded initialisation (harness/scenarios/training.py)."""

    name = "training"
    schema = schemas.TrainingWorkload
    only_keys = ()
    reads_data = True
    # with workload.target_eval_loss, training's cost and time are to reach it (a run that did not is off
    # the front); without, the training loop's
    objectives = (
        ("cost to target", ("cost_usd_to_target", "cost_training_usd"), "min", "USD"),
        ("final eval loss", ("eval_loss",), "min", "nats"),
        ("wall time", ("target_time_s", "train_window_s"), "min", "s"),
    )
    summary = (*_TRAINING_SUMMARY, "eval_loss_initial", "eval_loss", "target")
    scaling_throughput = "train_tok_per_s"
    summary_cost = ("training_usd", "cost")  # the run's total dollars
    summary_quality = False
    answer = {"quality": ("eval_loss", "eval_loss", "metrics", "min"), "lo": "eval_loss_lo", "hi": "eval_loss_hi"}
    answer |= _TRAINED_ANSWER
    repeats_refused = "training times its whole step budget (workload.max_steps), cut into `repeats` chunks"

    def key_fields(self, config: Mapping[str, Any]) -> dict[str, Any]:
        w = config["workload"]
        return {
            "max_steps": w["max_steps"],
            "target_eval_loss": w["target_eval_loss"],
            "data": config["data"]["source"],
        }

    def slug_work(self, fields: Mapping[str, Any]) -> str:
        return f"steps{fields['max_steps']}"

    def validate(self, cfg: Any) -> None:
        from harness import validation

        validation.validate_training(cfg)
        validation.validate_levers(cfg.workload, cfg.batch_size)

    def trained_weights(self, config: Mapping[str, Any]) -> bool:
        return False  # training always starts from the seeded initialisation

    def memory_shape(self, config: Mapping[str, Any]) -> tuple[str, int, int, int]:
        seq, accum = int(config["seq_len"]), int(config["workload"].get("grad_accum_steps", 1))
        return "train", int(config["batch_size"]) // accum, seq, seq  # one micro-batch's activations


class ServingSpec(Spec):
    """Open- or closed-loop load against an engine (harness/scenarios/serving.py, harness/serving/)."""

    name = "serving"
    # its settings are serving.*; a draft serves with serving.engine=sequential (else unsupported)
    schema = schemas.ServingWorkload
    only_keys = ()
    objectives = (
        # goodput needs an SLO (serving.slo.*); without one every completed request is good
        ("goodput", ("goodput_req_per_s", "request_throughput_req_per_s"), "max", "req/s"),
        (metric("usd_per_1m_output_tokens").label, ("usd_per_1m_output_tokens",), "min", "USD"),
        ("p99 TTFT", ("ttft_s_p99",), "min", "s"),
        ("capacity", ("capacity_req_per_s",), "max", "req/s"),
    )
    summary = (
        "offered_rate_req_per_s",
        "request_throughput_req_per_s",
        "output_tok_per_s",
        "ttft_s",
        "tpot_s",
        "goodput_req_per_s",
        "capacity_req_per_s",
    )
    summary_cost = ("usd_per_1m_output_tokens", "metrics")  # at the measured load or at capacity
    answer = {
        "quality": ("slo_attainment", "slo_attainment", "metrics", "max"),
        "lo": None,
        "hi": None,
        "cost": (("usd_per_1m_output_tokens", "usd_per_1m_output_tokens", "metrics", "min"),),
        "energy": ("j_per_1m_output_tokens", "j_per_1m_output_tokens", "metrics", "min"),
        "speed": (("output_tok_per_s", "output_tok_per_s", "metrics", "max"),),
    }
    report_section = ("serving", "Serving", "harness.report.serving_plots:section")
    repeats_refused = "serving's windows are its load (serving.num_requests, serving.duration_s)"

    def key_fields(self, config: Mapping[str, Any]) -> dict[str, Any]:
        from harness.serving.keys import serving_key_fields

        return serving_key_fields(config["serving"])

    def slug_work(self, fields: Mapping[str, Any]) -> str:
        if fields["search"] != "none":
            return f"{fields['engine']}-maxrate"
        load = f"c{fields['concurrency']}" if fields["arrival"] == "closed" else f"r{fields['rate']}"
        return f"{fields['engine']}-{fields['arrival']}-{load}"

    def validate(self, cfg: Any) -> None:
        from harness.serving.validate import validate_serving

        validate_serving(cfg.serving, cfg.model, cfg.gpus)

    def positions_needed(self, cfg: Any) -> int | None:
        return None  # serving lengths are checked by harness.serving.validate

    def backend(self, config: Mapping[str, Any]) -> str:
        from harness.serving.keys import in_process

        return "hf" if in_process(config["serving"]) else "remote"

    def memory_shape(self, config: Mapping[str, Any]) -> tuple[str, int, int, int]:
        s = config["serving"]
        seq, total, b = int(s["input_len"]), int(s["input_len"]) + int(s["output_len"]), int(s["num_requests"])
        return "decode", min(b, int(s.get("max_concurrency") or b)), seq, total


class ClassificationSpec(Spec):
    """Sequence classification on labelled text (harness/scenarios/classification.py)."""

    name = "classification"
    schema = schemas.ClassificationWorkload
    only_keys = ("data.label_column", "finetune", *_LORA)
    reads_data = True
    # with workload.target_accuracy, cost and time to reach it; without, the training loop's
    objectives = (
        ("cost to target", ("cost_usd_to_target", "cost_training_usd"), "min", "USD"),
        ("held-out accuracy", ("quality_accuracy",), "max", "ratio"),
        ("wall time", ("target_time_s", "train_window_s"), "min", "s"),
        ("peak memory", ("peak_memory_bytes",), "min", "bytes"),
    )
    summary = (
        *_TRAINING_SUMMARY,
        "target",
        "eval_accuracy_initial",
        "eval_accuracy",
        "eval_macro_f1",
        "trainable_params",
    )
    # a classifier's held-out accuracy (quality section, bootstrap interval over examples: harness.taskmetrics);
    # cost to workload.target_accuracy where set, else the whole run (a distill run: teacher labels and both students)
    answer = {"quality": ("quality_accuracy", "accuracy", "quality", "max"), "lo": "quality_accuracy_lo"}
    answer |= {"hi": "quality_accuracy_hi", **_TRAINED_ANSWER}

    def key_fields(self, config: Mapping[str, Any]) -> dict[str, Any]:
        """Budget, target, data, start, what trains."""
        w, ft = config["workload"], config.get("finetune", "full")
        out = {
            "max_steps": w["max_steps"],
            "target_accuracy": w.get("target_accuracy"),
            "data": config["data"]["source"],
            "init": w.get("init", "random"),
            "finetune": ft,
        }
        if out["init"] == "checkpoint" and not config["model"].get("path"):
            out["pretrain_steps"] = config["model"].get("train_steps")  # which harness-trained weights
        if ft == "lora":
            lora = config["lora"]
            targets = ",".join(lora.get("target_modules") or []) or "default"
            out.update(lora_rank=lora["rank"], lora_alpha=lora["alpha"], lora_targets=targets)
        return out

    def slug_work(self, fields: Mapping[str, Any]) -> str:
        lora = f"-r{fields['lora_rank']}" if fields["finetune"] == "lora" else ""
        return f"steps{fields['max_steps']}-{fields['init']}-{fields['finetune']}{lora}"

    def validate(self, cfg: Any) -> None:
        from harness import finetune, validation

        finetune.validate(cfg)
        validation.validate_levers(cfg.workload, cfg.batch_size)

    def backend(self, config: Mapping[str, Any]) -> str:
        return "hf-classifier"

    def trained_weights(self, config: Mapping[str, Any]) -> bool:
        # workload.init=checkpoint on a preset starts from its trained weights
        return config["workload"].get("init") == "checkpoint" and not config["model"].get("path")


class DistillSpec(ClassificationSpec):
    """A student learns from a teacher's soft labels, beside one from labels alone (harness/scenarios/distill.py)."""

    name = "distill"
    schema = schemas.DistillWorkload
    only_keys = ("data.label_column", "teacher", *(f"distill.{k}" for k in ("temperature", "alpha", "teacher_steps")))
    added_sections = ("teacher", "distill")  # added for workload=distill, read by it only
    # the cost to make the distilled student (teacher training here, its labels, the student's steps)
    objectives = (
        ("cost", ("cost_training_usd",), "min", "USD"),
        ("held-out accuracy", ("quality_accuracy",), "max", "ratio"),
        ("peak memory", ("peak_memory_bytes",), "min", "bytes"),
    )
    summary = (
        *_TRAINING_SUMMARY,
        "eval_accuracy",
        "alone_eval_accuracy",
        "distill_accuracy_gain",
        "teacher_eval_accuracy",
        "teacher_label_s",
    )

    def key_fields(self, config: Mapping[str, Any]) -> dict[str, Any]:
        d = config["distill"]
        return {
            **super().key_fields(config),
            "teacher": config["teacher"],
            "temperature": d["temperature"],
            "alpha": d["alpha"],
        }

    def validate(self, cfg: Any) -> None:
        from harness import distill, validation

        distill.validate(cfg)
        validation.validate_levers(cfg.workload, cfg.batch_size)


class ClassifySpec(ClassificationSpec):
    """Inference of a fine-tuned classifier: batched forward passes over held-out examples
    (harness/scenarios/classify.py); the classifier harness-made for its fine-tuning settings, or model.path."""

    name = "classify"
    # the fine-tuning settings pick the harness-made classifier (not the training levers: it is fine-tuned at
    # their defaults), the timing policy times its batches
    schema = schemas.ClassifyWorkload
    only_keys = ClassificationSpec.only_keys
    objectives = (
        ("examples/s", ("examples_per_s",), "max", "1/s"),
        ("USD/1k examples", ("cost_usd_per_1k_examples",), "min", "USD"),
        ("p99 batch latency", ("batch_latency_s_p99",), "min", "s"),
        ("held-out accuracy", ("quality_accuracy",), "max", "ratio"),
    )
    summary = ("eval_macro_f1", "batch_latency_s", "examples_per_s")
    summary_cells = "classifier"
    # quality as the classifier's; cost its weights' making plus a served volume where the report was given one
    # (--served-examples: harness.report.classifier_served), else USD per 1k examples
    answer = {
        "quality": ("quality_accuracy", "accuracy", "quality", "max"),
        "lo": "quality_accuracy_lo",
        "hi": "quality_accuracy_hi",
        "cost": (
            ("served_total_usd", "served_total_usd", "report", "min"),
            ("cost_usd_per_1k_examples", "usd_per_1k_examples", "cost", "min"),
        ),
        "energy": ("energy_j_per_1k_examples", "j_per_1k_examples", "energy", "min"),
        "speed": (("examples_per_s", "examples_per_s", "metrics", "max"),),
    }

    def key_fields(self, config: Mapping[str, Any]) -> dict[str, Any]:
        """The classifier it loads: a harness-made one named by its fine-tuning settings (a classification run's
        key fields); model.path by the arch hash."""
        if config["model"].get("path"):
            return {"classifier": "local"}
        return {"classifier": "harness", **super().key_fields(config)}

    def slug_work(self, fields: Mapping[str, Any]) -> str:
        return "local" if fields["classifier"] == "local" else super().slug_work(fields)

    def validate(self, cfg: Any) -> None:
        from harness import finetune

        finetune.validate_classify(cfg)

    def trained_weights(self, config: Mapping[str, Any]) -> bool:
        return False  # its classifier is fine-tuned (finetuned_weights), from the trained weights where asked

    def finetuned_weights(self, config: Mapping[str, Any]) -> bool:
        return not config["model"].get("path")

    def repeats_figure(self, config: Mapping[str, Any]) -> str:
        return "examples_per_s"

    def memory_shape(self, config: Mapping[str, Any]) -> tuple[str, int, int, int]:
        seq = int(config["seq_len"])  # one forward per batch, no decode steps
        return "decode", int(config["batch_size"]), seq, seq
