"""Validation before anything runs: every configuration of a sweep, one line naming the bad key, its value and
what is valid (harness.errors.ConfigError, exit 2). The schema it checks is harness.config."""

from __future__ import annotations

import math
import os
import re
from dataclasses import fields, is_dataclass
from pathlib import Path

from harness import adaptive, datafiles
from harness.config import (
    COST_MODES,
    DATA_SOURCES,
    DEVICES,
    PEAK_DTYPES,
    PRECISIONS,
    PRICE_UNITS,
    WEIGHTS,
    DataConfig,
    HarnessConfig,
    InterferenceConfig,
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
    from harness import scenarios  # the registry: built-in scenarios and HARNESS_PLUGINS ones

    if cfg.workload.name not in scenarios.names():
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
    _at_least("workload.decode_tokens", w.decode_tokens, 0)
    _at_least("workload.warmup_iters", w.warmup_iters, 0)
    _at_least("workload.min_iters", w.min_iters, 1)
    _at_least("workload.max_iters", w.max_iters, w.min_iters)
    if w.min_time_s < 0:
        raise ConfigError("workload.min_time_s", w.min_time_s, "must be >= 0")
    if not 0 <= cfg.quality.floor <= 1:
        raise ConfigError("quality.floor", cfg.quality.floor, "must be between 0 and 1 (a share of the fp32 reference)")
    _at_least("quality.eval_tokens", cfg.quality.eval_tokens, 2)
    _validate_model(cfg)
    if w.name == "training":
        _validate_training(cfg)
    elif w.name == "classification":
        from harness import finetune

        finetune.validate(cfg)
    elif w.name == "distill":
        from harness import distill

        distill.validate(cfg)
    elif w.name == "classify":
        from harness import finetune

        finetune.validate_classify(cfg)
    elif cfg.quality.enabled:
        _validate_data(cfg.data)
    _at_least("quality.window_tokens", cfg.quality.window_tokens, 2)
    _at_least("quality.bootstrap", cfg.quality.bootstrap, 100)
    if w.name == "serving":
        from harness.serving.validate import validate_serving

        validate_serving(cfg.serving, cfg.model, cfg.gpus)
    _validate_dist(cfg)
    _validate_interference(cfg.interference)


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


# the shipped scenarios whose repeats cannot be adaptive, and why (their Scenario.repeats_figure is None;
# tests/test_adaptive.py checks the two agree); a plugin scenario is asked directly
AUTO_REPEATS_REFUSED = {
    "training": "training times its whole step budget (workload.max_steps), cut into `repeats` chunks",
    "serving": "serving's windows are its load (serving.num_requests, serving.duration_s)",
}
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
    why = AUTO_REPEATS_REFUSED.get(name)
    if why is None and name != "inference":
        from harness import scenarios  # a plugin: already imported by scenarios.names()

        if scenarios.get(name).repeats_figure({"workload": {"decode_tokens": cfg.workload.decode_tokens}}) is None:
            why = f"workload={name} declares no figure to watch (Scenario.repeats_figure)"
    if why is not None:
        raise ConfigError("repeats", r, f"{why}; choose an integer >= 1 (auto is for workload=inference)")


def _validate_training(cfg: HarnessConfig) -> None:
    w, d = cfg.workload, cfg.data
    validate_steps(w)
    if w.target_eval_loss is not None and w.target_eval_loss <= 0:
        raise ConfigError("workload.target_eval_loss", w.target_eval_loss, "must be > 0 (a cross-entropy in nats)")
    if cfg.model.weights == "trained":
        raise ConfigError(
            "model.weights", "trained", "training starts from the seeded initialisation: use model.weights=random"
        )
    _validate_data(d)


def validate_steps(w: WorkloadConfig) -> None:
    """The step budget and schedule that training and classification share."""
    for key in ("max_steps", "eval_interval", "eval_batches"):
        _at_least(f"workload.{key}", getattr(w, key), 1)
    for key in ("warmup_steps", "lr_warmup_steps"):
        _at_least(f"workload.{key}", getattr(w, key), 0)
    if w.warmup_steps >= w.max_steps:
        raise ConfigError("workload.warmup_steps", w.warmup_steps, f"must be < workload.max_steps={w.max_steps}")
    if w.lr <= 0:
        raise ConfigError("workload.lr", w.lr, "must be > 0")


def _validate_data(d: DataConfig) -> None:
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
    if cfg.workload.name == "serving":
        return  # serving lengths are checked by harness.serving.validate
    needed = cfg.seq_len + cfg.workload.decode_tokens + 1
    if needed > m.max_position_embeddings:
        raise ConfigError(
            "seq_len",
            cfg.seq_len,
            f"seq_len + workload.decode_tokens + 1 = {needed} exceeds "
            f"model.max_position_embeddings={m.max_position_embeddings}",
        )
