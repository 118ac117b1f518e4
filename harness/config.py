"""Typed configuration: the schema behind conf/, and validation before anything runs.

Values live in YAML under conf/ (one folder per config group); the schema lives here as dataclasses
registered in Hydra's ConfigStore, so a typo or a wrong type fails at composition time.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING

from harness.errors import ConfigError

PRECISIONS = ("fp32", "fp16", "bf16", "int8")
WORKLOADS = ("inference",)
DEVICES = ("auto", "cpu", "cuda")
CONF_DIR = Path(__file__).resolve().parent.parent / "conf"


@dataclass
class ModelConfig:
    """A decoder-only transformer built from these numbers (random weights), or loaded from `path`."""

    name: str = MISSING
    arch: str = "llama"  # transformers model_type used with AutoConfig.for_model
    vocab_size: int = 256
    hidden_size: int = 128
    intermediate_size: int = 512
    num_hidden_layers: int = 4
    num_attention_heads: int = 4
    num_key_value_heads: int | None = None
    max_position_embeddings: int = 2048
    tie_word_embeddings: bool = False
    path: str | None = None  # a local pretrained model directory; when set, the numbers above are unused


@dataclass
class PrecisionConfig:
    name: str = MISSING


@dataclass
class WorkloadConfig:
    name: str = "inference"
    decode_tokens: int = 32  # decode steps after the prefill; each generates one token per sequence
    warmup_iters: int = 2  # full requests run before timing, excluded from every figure
    min_iters: int = 5  # per repeat: at least this many timed requests ...
    min_time_s: float = 1.0  # ... and at least this much timed wall time
    max_iters: int = 10_000  # per repeat: a cap so a tiny model cannot spin forever


@dataclass
class HardwareConfig:
    name: str = "auto"
    device: str = "auto"  # auto | cpu | cuda


@dataclass
class QualityConfig:
    """Outputs against the fp32 reference (harness/quality.py); MLPerf's floor is 99 % of the reference."""

    enabled: bool = True
    floor: float = 0.99  # relative quality below this marks a run as failing (kept in reports, off the front)
    eval_tokens: int = 1024  # held-out tokens for perplexity (local pretrained models only)


@dataclass
class HarnessConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    precision: PrecisionConfig = field(default_factory=PrecisionConfig)
    workload: WorkloadConfig = field(default_factory=WorkloadConfig)
    hardware: HardwareConfig = field(default_factory=HardwareConfig)
    quality: QualityConfig = field(default_factory=QualityConfig)
    batch_size: int = 1
    seq_len: int = 128  # prompt length in tokens
    gpus: int = 1
    seed: int = 0
    repeats: int = 3  # the timed measurement is repeated this many times; each repeat is kept
    threads: int | None = None  # torch intra-op threads; None keeps torch's default (recorded)
    timeout_s: float = 600.0  # per run, from process start
    memory_limit_bytes: int | None = None  # per run: resident memory above this is recorded as oom
    resume: bool = True  # skip runs whose complete result already exists in the sweep folder
    sweep: str = MISSING  # folder name under results_dir
    results_dir: str = "results"


def register() -> None:
    ConfigStore.instance().store(name="harness_schema", node=HarnessConfig)


def group_choices(group: str) -> list[str]:
    """The YAML presets shipped in conf/<group>/."""
    return sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml"))


def _at_least(key: str, value, low) -> None:
    if value is None or value < low:
        raise ConfigError(key, value, f"must be >= {low}")


def validate(cfg: HarnessConfig) -> None:
    """Raise ConfigError naming the first bad key; runs before any process is started."""
    if cfg.precision.name not in PRECISIONS:
        raise ConfigError("precision.name", cfg.precision.name, f"choose one of {', '.join(PRECISIONS)}")
    if cfg.workload.name not in WORKLOADS:
        raise ConfigError("workload.name", cfg.workload.name, f"choose one of {', '.join(WORKLOADS)}")
    if cfg.hardware.device not in DEVICES:
        raise ConfigError("hardware.device", cfg.hardware.device, f"choose one of {', '.join(DEVICES)}")
    for key in ("batch_size", "seq_len", "gpus", "repeats"):
        _at_least(key, getattr(cfg, key), 1)
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


def _validate_model(cfg: HarnessConfig) -> None:
    m = cfg.model
    if m.path is not None:
        if not (Path(m.path) / "config.json").is_file():
            raise ConfigError("model.path", m.path, "must be a local directory holding config.json and weights")
        return
    if m.name == "local":
        raise ConfigError("model.path", None, "model=local needs model.path=<local model directory>")
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
    needed = cfg.seq_len + cfg.workload.decode_tokens + 1
    if needed > m.max_position_embeddings:
        raise ConfigError(
            "seq_len",
            cfg.seq_len,
            f"seq_len + workload.decode_tokens + 1 = {needed} exceeds "
            f"model.max_position_embeddings={m.max_position_embeddings}",
        )
