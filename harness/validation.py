"""Validation before anything runs: every configuration of a sweep, one line naming the bad key, its value and
what is valid (harness.errors.ConfigError, exit 2). The schema it checks is harness.config."""

from __future__ import annotations

import math
import os
import re
from dataclasses import fields, is_dataclass
from pathlib import Path
from typing import Any

from harness import adaptive, datafiles, launchers, scenarios
from harness.config import (
    BACKENDS,
    COMPILE_MODES,
    COST_MODES,
    DATA_SOURCES,
    DEVICES,
    PEAK_DTYPES,
    PRECISIONS,
    PRICE_UNITS,
    WEIGHTS,
    DataConfig,
    DraftConfig,
    HarnessConfig,
    InterferenceConfig,
    StepsConfig,
    TimedLoopConfig,
    WorkloadConfig,
)
from harness.errors import ConfigError


def _at_least(key: str, value, low) -> None:
    if value is None or value < low:
        raise ConfigError(key, value, f"must be >= {low}")


def _check_finite(node: object, prefix: str = "") -> None:
    """nan and ±inf pass every `<`/`>` check (nan compares false): refuse them in every float field."""
    for f in fields(node):
        value = getattr(node, f.name)
        key = f"{prefix}{f.name}"
        if is_dataclass(value):
            _check_finite(value, key + ".")
        elif isinstance(value, dict):
            for k, v in value.items():
                if isinstance(v, float) and not math.isfinite(v):
                    raise ConfigError(f"{key}.{k}", v, "must be a finite number")
        elif isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(key, value, "must be a finite number")


# the characters a sweep folder name may hold: one path component, safe in a URL and in HTML
SWEEP_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+=-]*")


def _validate_paths(cfg: HarnessConfig) -> None:
    if not SWEEP_NAME.fullmatch(str(cfg.sweep)) or ".." in str(cfg.sweep):
        raise ConfigError(
            "sweep", repr(cfg.sweep), "must be one folder name of letters, digits and . _ + = - (no /, no ..)"
        )
    root = Path(cfg.results_dir)
    if root.exists() and not root.is_dir():
        raise ConfigError("results_dir", cfg.results_dir, "is a file, not a folder")
    existing = next(p for p in [root, *root.absolute().parents] if p.exists())
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError("results_dir", cfg.results_dir, f"cannot be written ({existing} is not a writable folder)")


def validate(cfg: HarnessConfig) -> None:
    """Raise ConfigError naming the first bad key; runs before any process is started."""
    _check_finite(cfg)
    _validate_paths(cfg)
    if cfg.precision.name not in PRECISIONS:
        raise ConfigError("precision.name", cfg.precision.name, f"choose one of {', '.join(PRECISIONS)}")
    if cfg.workload.name not in scenarios.names():  # built-in scenarios and HARNESS_PLUGINS ones
        raise ConfigError("workload.name", cfg.workload.name, f"choose one of {', '.join(scenarios.names())}")
    if cfg.hardware.device not in DEVICES:
        raise ConfigError("hardware.device", cfg.hardware.device, f"choose one of {', '.join(DEVICES)}")
    _validate_hardware_energy_cost(cfg)
    for key in ("batch_size", "seq_len", "gpus"):
        _at_least(key, getattr(cfg, key), 1)
    _validate_repeats(cfg)
    _at_least("seed", cfg.seed, 0)
    if cfg.threads is not None:
        _at_least("threads", cfg.threads, 1)
    if cfg.timeout_s <= 0:
        raise ConfigError("timeout_s", cfg.timeout_s, "must be > 0")
    if cfg.memory_limit_bytes is not None:
        _at_least("memory_limit_bytes", cfg.memory_limit_bytes, 1)
    w = cfg.workload
    _validate_workload_groups(w)
    if not 0 <= cfg.quality.floor <= 1:
        raise ConfigError("quality.floor", cfg.quality.floor, "must be between 0 and 1 (a share of the fp32 reference)")
    _at_least("quality.eval_tokens", cfg.quality.eval_tokens, 2)
    _validate_model(cfg)
    _validate_draft(cfg)
    _at_least("quality.window_tokens", cfg.quality.window_tokens, 2)
    _at_least("quality.bootstrap", cfg.quality.bootstrap, 100)
    spec = scenarios.spec(w.name)
    if not spec.reads_data and cfg.quality.enabled:  # data.* is only the held-out quality text here
        validate_data(cfg.data)
    spec.validate(cfg)  # the workload's own settings (Spec.validate), its own data included
    _validate_dist(cfg)
    name = cfg.launcher.name
    if name is not None and launchers.get(name) is None:
        choices = ", ".join(launchers.names()) or "none is registered (harness.launchers)"
        raise ConfigError("launcher.name", name, f"choose one of {choices}; null: launcher.preload decides")
    _validate_interference(cfg.interference)
    _validate_levers(cfg)


def _validate_workload_groups(w: WorkloadConfig) -> None:
    """The fields of the groups a workload's schema is made of (harness.config): wherever the group is."""
    if hasattr(w, "decode_tokens"):
        _at_least("workload.decode_tokens", w.decode_tokens, 0)
    if isinstance(w, TimedLoopConfig):
        _at_least("workload.warmup_iters", w.warmup_iters, 0)
        _at_least("workload.min_iters", w.min_iters, 1)
        _at_least("workload.max_iters", w.max_iters, w.min_iters)
        if w.min_time_s < 0:
            raise ConfigError("workload.min_time_s", w.min_time_s, "must be >= 0")


def _validate_levers(cfg: HarnessConfig) -> None:
    """backend.* (conf/backend/) and transforms=[...] with each listed transform's settings (transform.<name>)."""
    from harness import transforms

    b = cfg.backend
    if b.name not in BACKENDS:
        raise ConfigError("backend.name", b.name, f"choose one of {', '.join(BACKENDS)}")
    if b.name == "compile" and b.mode not in COMPILE_MODES:
        raise ConfigError("backend.mode", b.mode, f"choose one of {', '.join(COMPILE_MODES)}")
    transforms.validate({"transforms": list(cfg.transforms), "transform": dict(cfg.transform)})


def _validate_draft(cfg: HarnessConfig) -> None:
    """workload.draft_model: a preset sharing the target's vocabulary; one sequence at a time (batch_size=1)."""
    w = cfg.workload
    if not isinstance(w, DraftConfig) or w.draft_model is None:
        return
    from omegaconf import OmegaConf

    from harness.config import CONF_DIR, group_choices

    presets = [p for p in group_choices("model") if p != "local"]
    if w.draft_model not in presets:
        raise ConfigError("workload.draft_model", w.draft_model, f"choose a model preset: {', '.join(presets)}")
    _at_least("workload.draft_tokens", w.draft_tokens, 1)
    vocab = cfg.model.vocab_size
    if cfg.model.path is not None:
        import json

        vocab = json.loads((Path(cfg.model.path) / "config.json").read_text()).get("vocab_size")
    draft_vocab = OmegaConf.load(CONF_DIR / "model" / f"{w.draft_model}.yaml").get("vocab_size")
    if draft_vocab != vocab:  # the draft proposes token ids the target reads: one tokenizer, one vocabulary
        why = f"its vocab_size={draft_vocab} but the target's (model={cfg.model.name}) is {vocab}"
        why += ": one tokenizer for both"
        raise ConfigError("workload.draft_model", w.draft_model, why)


def _validate_interference(i: InterferenceConfig) -> None:
    for key in ("max_other_cpu_share", "max_steal_share"):
        value = getattr(i, key)
        if not 0 <= value <= 1:
            raise ConfigError(f"interference.{key}", value, "must be between 0 and 1 (a share of the cores' time)")
    _at_least("interference.max_other_gpu_processes", i.max_other_gpu_processes, 0)
    if not 0 <= i.min_sm_clock_fraction <= 1:
        raise ConfigError(
            "interference.min_sm_clock_fraction", i.min_sm_clock_fraction, "must be between 0 and 1 (of the max clock)"
        )


AUTO_REPEATS_KEYS = adaptive.KEYS


def _validate_repeats(cfg: HarnessConfig) -> None:
    r = cfg.repeats
    if r != "auto" and (isinstance(r, bool) or not isinstance(r, int)):
        raise ConfigError("repeats", r, "must be an integer >= 1 or auto")
    if r != "auto":
        _at_least("repeats", r, 1)
    if not 0 < cfg.repeats_target < 1:
        raise ConfigError("repeats_target", cfg.repeats_target, "must be between 0 and 1 (0.02 is ±2 %)")
    _at_least("repeats_min", cfg.repeats_min, adaptive.MIN_REPEATS)
    _at_least("repeats_max", cfg.repeats_max, cfg.repeats_min)
    if cfg.repeats_max_s <= 0:
        raise ConfigError("repeats_max_s", cfg.repeats_max_s, "must be > 0")
    if r != "auto":
        return
    name = cfg.workload.name
    spec = scenarios.spec(name)
    why = spec.repeats_refused  # refused by design, and why (Spec.repeats_refused)
    if why is None and spec.repeats_figure({"workload": {"decode_tokens": cfg.workload.decode_tokens}}) is None:
        why = f"workload={name} declares no figure to watch (Scenario.repeats_figure)"
    if why is not None:
        raise ConfigError("repeats", r, f"{why}; choose an integer >= 1 (auto is for workload=inference)")


def validate_training(cfg: HarnessConfig) -> None:
    w, d = cfg.workload, cfg.data
    validate_steps(w)
    if w.target_eval_loss is not None and w.target_eval_loss <= 0:
        raise ConfigError("workload.target_eval_loss", w.target_eval_loss, "must be > 0 (a cross-entropy in nats)")
    if cfg.model.weights == "trained":
        raise ConfigError(
            "model.weights", "trained", "training starts from the seeded initialisation: use model.weights=random"
        )
    validate_data(d)


def validate_steps(w: StepsConfig) -> None:
    """The step budget and schedule that training and classification share (eval_batches: training's)."""
    for key in ("max_steps", "eval_interval", "eval_batches"):
        if hasattr(w, key):
            _at_least(f"workload.{key}", getattr(w, key), 1)
    for key in ("warmup_steps", "lr_warmup_steps"):
        _at_least(f"workload.{key}", getattr(w, key), 0)
    if w.warmup_steps >= w.max_steps:
        raise ConfigError("workload.warmup_steps", w.warmup_steps, f"must be < workload.max_steps={w.max_steps}")
    if w.lr <= 0:
        raise ConfigError("workload.lr", w.lr, "must be > 0")


def validate_levers(w: Any, batch_size: int) -> None:
    """The training levers: grad_accum_steps splits batch_size (the global batch) into equal micro-batches."""
    n = w.grad_accum_steps
    if n < 1 or batch_size % n:  # the schema makes it an int and grad_checkpointing a bool
        divisors = ", ".join(str(k) for k in range(1, batch_size + 1) if batch_size % k == 0)
        raise ConfigError(
            "workload.grad_accum_steps", n, f"must divide batch_size={batch_size} (choose one of {divisors})"
        )


def validate_data(d: DataConfig) -> None:
    """The data group: training text, and the held-out text of every run's quality evaluation."""
    if d.source not in DATA_SOURCES:
        raise ConfigError("data.source", d.source, f"choose one of {', '.join(DATA_SOURCES)}")
    if d.source in ("text", "json", "parquet"):
        why = datafiles.problem(d.source, d.path)
        if why:
            raise ConfigError("data.path", d.path, why)
    if d.source == "hf" and not d.name:
        raise ConfigError("data.name", d.name, "data.source=hf needs data.name=<dataset in the local datasets cache>")
    if not 0 < d.eval_fraction < 1:
        raise ConfigError("data.eval_fraction", d.eval_fraction, "must be between 0 and 1")


def _validate_dist(cfg: HarnessConfig) -> None:
    dist = cfg.dist
    _at_least("dist.nnodes", dist.nnodes, 1)
    if not dist.timeout_s > 0:
        raise ConfigError("dist.timeout_s", dist.timeout_s, "must be > 0")
    if not 0 <= dist.node_rank < dist.nnodes:
        raise ConfigError("dist.node_rank", dist.node_rank, f"must be in 0..dist.nnodes-1={dist.nnodes - 1}")
    if dist.nnodes > 1 and not dist.rdzv_endpoint:
        raise ConfigError("dist.rdzv_endpoint", None, "dist.nnodes > 1 needs dist.rdzv_endpoint=<host:port>")
    if dist.nnodes > 1 and dist.rdzv_backend != "static":
        raise ConfigError(
            "dist.rdzv_backend",
            dist.rdzv_backend,
            "dist.nnodes > 1 needs dist.rdzv_backend=static (dist=multinode's): it puts global rank 0, whose "
            "figures node 0 writes as the run's result, on node 0; c10d ranks nodes by host name and pid",
        )


def _validate_hardware_energy_cost(cfg: HarnessConfig) -> None:
    hw = cfg.hardware
    if hw.price_unit not in PRICE_UNITS:
        raise ConfigError("hardware.price_unit", hw.price_unit, f"choose one of {', '.join(PRICE_UNITS)}")
    for key in ("usd_per_hour", "spot_usd_per_hour"):
        value = getattr(hw, key)
        if value is not None and value < 0:
            raise ConfigError(f"hardware.{key}", value, "must be >= 0 (USD per device-hour)")
    for dtype, tflops in hw.peak_tflops.items():
        if dtype not in PEAK_DTYPES or tflops <= 0:
            raise ConfigError(f"hardware.peak_tflops.{dtype}", tflops, f"dtype in {', '.join(PEAK_DTYPES)}, value > 0")
    e = cfg.energy
    if e.pue < 1.0:
        raise ConfigError("energy.pue", e.pue, "must be >= 1.0 (total facility power / IT power)")
    if e.carbon_intensity_g_per_kwh < 0:
        raise ConfigError("energy.carbon_intensity_g_per_kwh", e.carbon_intensity_g_per_kwh, "must be >= 0")
    if e.sample_interval_s <= 0:
        raise ConfigError("energy.sample_interval_s", e.sample_interval_s, "must be > 0")
    if cfg.cost.mode not in COST_MODES:
        raise ConfigError("cost.mode", cfg.cost.mode, f"choose one of {', '.join(COST_MODES)}")
    if cfg.cost.usd_per_kwh < 0:
        raise ConfigError("cost.usd_per_kwh", cfg.cost.usd_per_kwh, "must be >= 0")


def _validate_model(cfg: HarnessConfig) -> None:
    m = cfg.model
    if m.path is not None:
        if not (Path(m.path) / "config.json").is_file():
            raise ConfigError("model.path", m.path, "must be a local directory holding config.json and weights")
        return
    if m.name == "local":
        raise ConfigError("model.path", None, "model=local needs model.path=<local model directory>")
    if m.weights not in WEIGHTS:
        raise ConfigError("model.weights", m.weights, f"choose one of {', '.join(WEIGHTS)}")
    if m.weights == "trained":
        _at_least("model.train_steps", m.train_steps, 4)
    for key in ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads"):
        _at_least(f"model.{key}", getattr(m, key), 1)
    if m.hidden_size % m.num_attention_heads:
        raise ConfigError(
            "model.hidden_size",
            m.hidden_size,
            f"must be divisible by model.num_attention_heads={m.num_attention_heads}",
        )
    kv = m.num_key_value_heads
    if kv is not None and (kv < 1 or m.num_attention_heads % kv):
        raise ConfigError(
            "model.num_key_value_heads", kv, f"must divide model.num_attention_heads={m.num_attention_heads}"
        )
    if m.vocab_size < 256:
        raise ConfigError("model.vocab_size", m.vocab_size, "must be >= 256 (prompts are byte-level token ids)")
    needed = scenarios.spec(cfg.workload.name).positions_needed(cfg)  # None: the workload checks its own lengths
    if needed is not None and needed > m.max_position_embeddings:
        raise ConfigError(
            "seq_len",
            cfg.seq_len,
            f"seq_len + workload.decode_tokens + 1 = {needed} exceeds "
            f"model.max_position_embeddings={m.max_position_embeddings}",
        )
