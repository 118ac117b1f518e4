"""Typed configuration: the schema behind conf/ (its checks before anything runs: harness.validation).

Values live in YAML under conf/ (one folder per config group); the schema lives here as dataclasses
registered in Hydra's ConfigStore, so a typo or a wrong type fails at composition time.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING

from harness import adaptive

# each workload's own schema (its node's type is the chosen one's: harness/scenarios/schemas.py)
from harness.scenarios.schemas import (  # noqa: F401 - re-exported: the schema of every config node is here
    LEGACY_WORKLOAD,
    ClassificationWorkload,
    ClassifyWorkload,
    DistillWorkload,
    DraftConfig,
    InferenceWorkload,
    LeversConfig,
    ServingWorkload,
    StepsConfig,
    TimedLoopConfig,
    TrainingWorkload,
    WorkloadConfig,
    schema_fields,
)

PRECISIONS = ("fp32", "fp16", "bf16", "int8")
WEIGHTS = ("random", "trained")
DATA_SOURCES = ("pydoc", "text", "json", "parquet", "hf", "synthetic")  # training text (harness.data)
DEVICES = ("auto", "cpu", "cuda")
COST_MODES = ("cloud", "onprem")
PRICE_UNITS = ("device", "vcpu")
PEAK_DTYPES = ("fp32", "tf32", "fp16", "bf16", "int8", "fp8")
INITS = ("random", "checkpoint")  # workload.init of the classification workload
FINETUNES = ("full", "lora")
BACKENDS = ("eager", "compile")  # backend.name (conf/backend/): what executes a Hugging Face model
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")  # torch.compile modes
DEFAULT_TRANSFORMS = ("precision",)
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
    # random: seeded initialisation (quality not meaningful) | trained: harness-trained once on the pydoc
    # training split to a fixed budget and cached (harness/checkpoints.py); for inference runs
    weights: str = "random"
    train_steps: int = 48  # budget of weights=trained: tokens = train_steps x 4 x 64 (harness/checkpoints.py RECIPE)


@dataclass
class PrecisionConfig:
    name: str = MISSING


@dataclass
class BackendConfig:
    """What executes the model (conf/backend/<name>.yaml; harness/backends/): `eager` (Hugging Face as a plain
    PyTorch module) or `compile` (the same module through torch.compile; its settings below)."""

    name: str = "eager"
    mode: str = "default"  # torch.compile mode: reduce-overhead adds CUDA graphs on a GPU
    fullgraph: bool = False  # true: a graph break is an error (the run ends `error`) rather than a fallback
    dynamic: bool = False  # false: one graph per shape, so every shape compiles once, before the timed window
    static_cache: bool = True  # a transformers StaticCache sized for the run, where the model supports one


def transform_settings() -> dict[str, Any]:
    """Every shipped transform's settings, conf/transform/<name>.yaml (a transform without a file has none)."""
    from omegaconf import OmegaConf

    return {p.stem: OmegaConf.to_container(OmegaConf.load(p)) for p in sorted((CONF_DIR / "transform").glob("*.yaml"))}


@dataclass
class DataConfig:
    """Training text, offline. `source`: pydoc (text shipped with CPython), text | json | parquet (a local
    file at `path`), hf (a dataset `name` already in the local `datasets` cache), synthetic (random bytes,
    for speed only: labelled as such)."""

    source: str = "pydoc"
    path: str | None = None
    name: str | None = None
    split: str = "train"
    text_column: str = "text"
    eval_fraction: float = 0.1  # documents held out for evaluation
    split_seed: int = 1234  # fixed: the same documents are held out in every run
    # classification: the label column of a local csv | json | parquet file (text_column holds the text);
    # source=docstrings: the built-in labelled set (harness/labelled.py)
    label_column: str = "label"


@dataclass
class DistConfig:
    """How gpus>1 runs are launched (torchrun). One machine by default; several through a rendezvous."""

    nnodes: int = 1
    node_rank: int = 0
    rdzv_backend: str = "c10d"  # one node: torchrun --standalone (c10d); several: static (validation says why)
    rdzv_endpoint: str | None = None  # host:port of the rendezvous, needed when nnodes > 1
    rdzv_id: str = "harness"
    # how long a rank waits for its peers at one collective or barrier before the run ends `error` naming the
    # rank and the wait (at most half of timeout_s); supervision, not identity: not in config_hash
    timeout_s: float = 300.0


@dataclass
class HardwareConfig:
    """A device family's facts (conf/hardware/<name>.yaml, with sources), or `auto`: detect at run time and
    look the detected name up in the catalog. Peaks are dense, in TFLOP/s (TOPS for int8) per dtype."""

    name: str = "auto"
    device: str = "auto"  # auto | cpu | cuda
    family: str | None = None
    match: list[str] = field(default_factory=list)  # regexes tried on the name torch/NVML report
    memory_gb: float | None = None
    memory_bandwidth_gb_per_s: float | None = None
    board_power_w: float | None = None
    peak_tflops: dict[str, float] = field(default_factory=dict)  # fp32, tf32, fp16, bf16, int8, fp8
    peak_source: str | None = None
    price_unit: str = "device"  # usd_per_hour is per: device (a GPU) | vcpu
    usd_per_hour: float | None = None  # on-demand USD per device-hour (or per vCPU-hour)
    spot_usd_per_hour: float | None = None
    price_provider: str | None = None
    price_instance: str | None = None
    price_region: str | None = None
    price_as_of: str | None = None
    price_source: str | None = None


@dataclass
class EnergyConfig:
    enabled: bool = True  # energy trackers around the timed window (off only to measure their overhead)
    carbon_intensity_g_per_kwh: float = 436.0
    carbon_intensity_source: str = "Ember 2022 world average grid intensity"
    pue: float = 1.56  # data-centre overhead applied to CO2e and on-prem energy cost
    pue_source: str = "Uptime Institute 2024 global survey average"
    sample_interval_s: float = 0.1  # GPU power sampling where NVML has no energy counter


@dataclass
class CostConfig:
    mode: str = "cloud"  # cloud: device-hours x price | onprem: that + energy x usd_per_kwh x PUE
    usd_per_kwh: float = 0.0806
    usd_per_kwh_source: str = "EIA 2023 US industrial average electricity price"


@dataclass
class QualityConfig:
    """Outputs against the fp32 reference (harness/quality.py); MLPerf's floor is 99 % of the reference."""

    enabled: bool = True
    floor: float = 0.99  # relative quality below this marks a run as failing (kept in reports, off the front)
    eval_tokens: int = 4096  # held-out tokens (predicted positions) for the task metrics, after the timed window
    window_tokens: int = 128  # tokens predicted per evaluation window (the bootstrap resamples windows)
    bootstrap: int = 1000  # bootstrap resamples for the 95 % intervals (seeded: same data, same interval)


@dataclass
class InterferenceConfig:
    """When a run counts as `disturbed` (harness/interference.py, docs/results.md `interference`): other
    processes' CPU time above this share of the run's cores' time over the timed window, steal time above
    this share, or more other processes than this on its GPU. These judge the figures, they do not change
    what is measured: not part of config_hash (harness.results.VOLATILE)."""

    max_other_cpu_share: float = 0.10
    max_steal_share: float = 0.05
    max_other_gpu_processes: int = 0
    # a GPU's SM clock below this share of its maximum at any reading in the window (harness.probes.clocks)
    min_sm_clock_fraction: float = 0.90


@dataclass
class SloConfig:
    """Per-request latency bounds (milliseconds); a request meets the SLO when it meets every bound set."""

    ttft_ms: float | None = None  # time to first token
    tpot_ms: float | None = None  # time per output token after the first (vLLM's definition)
    e2el_ms: float | None = None  # end-to-end latency


@dataclass
class ServerConfig:
    """A server the harness starts for the run (serving.engine=openai): command, health check, shutdown."""

    command: list[str] | None = None  # argv; {port} and {model_path} are filled in; None: use serving.url
    port: int = 0  # 0: a free port on 127.0.0.1, chosen at start
    health_path: str = "/health"
    startup_timeout_s: float = 120.0
    shutdown_timeout_s: float = 10.0


@dataclass
class ServingConfig:
    """Open-loop load against a serving engine (harness/serving/, docs/serving.md)."""

    # transformers: its continuous batching in-process | sequential: the harness's batch-1 engine in-process (FIFO;
    # greedy, or speculative with workload.draft_model) | openai: an HTTP endpoint
    engine: str = "transformers"
    url: str | None = None  # openai: the base URL, e.g. http://127.0.0.1:8000/v1
    api: str = "completions"  # openai: completions | chat (the /v1/... endpoint used)
    served_model: str | None = None  # openai: the `model` field sent; None: the first of GET /v1/models
    request_extra: dict[str, Any] = field(default_factory=dict)  # openai: merged into every request body
    arrival: str = "poisson"  # poisson | gamma | constant | closed
    rate: float = 4.0  # requests per second (poisson, gamma, constant)
    burstiness: float = 1.0  # gamma shape: 1 = Poisson, < 1 burstier, > 1 smoother
    concurrency: int = 4  # closed: the number of users, each sending when its previous request ends
    max_concurrency: int | None = None  # a cap on requests in flight (later arrivals wait, as in vLLM)
    num_requests: int = 32  # measured requests per repeat
    duration_s: float | None = None  # or: arrivals within this many seconds (then num_requests is a cap)
    warmup_requests: int = 2  # sent one by one before the timed window, excluded from every figure
    request_timeout_s: float = 60.0  # per request, from its send
    input_len: int = 32  # prompt tokens (mean)
    output_len: int = 16  # tokens to generate (mean); the engine is asked for exactly this many
    len_range: float = 0.0  # lengths drawn uniformly in [len x (1 - r), len x (1 + r)] (vLLM's range ratio)
    # what is sent (harness/serving/datasets.py): random | sharegpt | trace | shared_prefix
    dataset: str = "random"
    dataset_path: str | None = None  # sharegpt: a JSON list of conversations; trace: a CSV or JSON-lines file
    think_time_s: float = 0.0  # sharegpt: from an answer to the next turn's send
    # sharegpt: the most prompt tokens a turn carries; a longer history loses its oldest exchanges first.
    # None: the model's context (max_position_embeddings) less the turn's output length
    max_context_tokens: int | None = None
    trace_speed: float = 1.0  # trace: its times divided by this (2 = twice as fast)
    prefix_count: int = 4  # shared_prefix: distinct prefixes ...
    suffixes_per_prefix: int = 8  # ... each followed by this many suffixes of input_len tokens
    prefix_len: int = 64  # shared_prefix: tokens per prefix
    metrics_url: str | None = None  # a Prometheus text endpoint of the engine (http://host:port/metrics), scraped
    metrics_interval_s: float = 1.0  # ... before, every this many seconds during, and after the timed window
    reset_cache: bool = False  # empty the engine's prefix cache before the window (harness/serving/cache_reset.py)
    lateness_tolerance_s: float = 0.01  # send lateness p99 above this flags the generator as the bottleneck
    max_failed_fraction: float = 0.05  # more failed/timed-out requests than this: status error
    slo: SloConfig = field(default_factory=SloConfig)
    search: str = "none"  # none | max_rate: the highest Poisson rate meeting the SLO (MLPerf Server)
    search_percentile: float = 99.0  # the percentile of each SLO metric that must meet its bound
    search_start_rate: float = 1.0
    search_max_probes: int = 8
    search_tolerance: float = 0.1  # stop when (fail - pass) / pass <= this
    search_probe_s: float = 30.0  # a probe offers arrivals for up to this long (it stops early once steady)
    search_keep_up_tolerance: float = 0.1  # a probe's completions may fall short of its arrivals by this fraction
    num_blocks: int | None = None  # transformers engine: KV-cache pages (None: its own default)
    max_batch_tokens: int | None = None  # transformers engine: tokens per step (None: its own default)
    server: ServerConfig = field(default_factory=ServerConfig)


@dataclass
class LoraConfig:
    """finetune=lora (peft): low-rank adapters on `target_modules`, the rest frozen but the new head."""

    rank: int = 8
    alpha: float = 16.0
    dropout: float = 0.0
    # None: peft's default for the architecture (llama: q_proj, v_proj; bert: query, value)
    target_modules: list[str] | None = None


@dataclass
class DistillConfig:
    """workload=distill (harness/distill.py): the student learns from the teacher's soft labels (Hinton et al.)."""

    temperature: float = 2.0  # softens both distributions of the KL term (its gradients scaled by T^2)
    alpha: float = 0.5  # the soft (KL) term's share of the loss; 1 - alpha is the labels' cross-entropy
    teacher_steps: int = 200  # teacher=<preset>: its training steps here (same schedule, batch and data)


@dataclass
class LauncherConfig:
    """How each run's fresh process starts (harness.launch, docs/launch.md); gpus>1 always goes through torchrun."""

    # true: forked from a server that imported torch, transformers and torchao once (per-run fixed cost
    # well under 1 s); false: a fresh interpreter per run (`python -m harness.worker`, ~4 s of imports each)
    preload: bool = True
    # a launcher a plugin registered (harness.launchers, harness.plugins); null: preload or spawn, as above
    name: str | None = None


@dataclass
class FeasibilityConfig:
    """Skip configurations the memory model (harness/memory_model.py) predicts will not fit the GPU's catalog
    memory or memory_limit_bytes: recorded `predicted-oom` with the prediction. Supervision, not identity."""

    enabled: bool = True
    force: bool = False  # run them anyway (and record the prediction beside the measurement)


@dataclass
class HarnessConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    precision: PrecisionConfig = field(default_factory=PrecisionConfig)
    backend: BackendConfig = field(default_factory=BackendConfig)
    # what changes the model before it runs, in this order (harness/transforms/): precision, int4, prune ...
    transforms: list[str] = field(default_factory=lambda: list(DEFAULT_TRANSFORMS))
    # each transform's settings, under its name (conf/transform/<name>.yaml); read only for the ones listed
    transform: dict[str, Any] = field(default_factory=transform_settings)
    workload: WorkloadConfig = MISSING  # the chosen workload's own schema (conf/workload/<name>.yaml)
    hardware: HardwareConfig = field(default_factory=HardwareConfig)
    energy: EnergyConfig = field(default_factory=EnergyConfig)
    cost: CostConfig = field(default_factory=CostConfig)
    data: DataConfig = field(default_factory=DataConfig)
    dist: DistConfig = field(default_factory=DistConfig)
    quality: QualityConfig = field(default_factory=QualityConfig)
    serving: ServingConfig = field(default_factory=ServingConfig)
    launcher: LauncherConfig = field(default_factory=LauncherConfig)
    interference: InterferenceConfig = field(default_factory=InterferenceConfig)
    finetune: str = "full"  # classification: full (every parameter trains) | lora (lora.*, harness/finetune.py)
    lora: LoraConfig = field(default_factory=LoraConfig)
    # distill: a classifier checkpoint folder (workload=classification workload.save_checkpoint=true) or a preset
    teacher: str | None = None
    distill: DistillConfig = field(default_factory=DistillConfig)
    feasibility: FeasibilityConfig = field(default_factory=FeasibilityConfig)
    batch_size: int = 1  # per device (per rank): the global batch is batch_size x gpus
    seq_len: int = 128  # prompt length in tokens
    gpus: int = 1
    seed: int = 0
    # the timed measurement is repeated this many times, each repeat kept; or "auto" (inference): until the
    # main figure's bootstrap 95 % interval is within ±repeats_target, or repeats_max / repeats_max_s
    repeats: Any = 3
    repeats_target: float = 0.02  # repeats=auto: relative half-width of the interval to reach
    repeats_min: int = adaptive.MIN_REPEATS  # repeats=auto: always measured; >= 6 (harness.adaptive says why)
    repeats_max: int = 30  # repeats=auto: stop here
    repeats_max_s: float = 120.0  # repeats=auto: start no repeat after this many seconds of timed window
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
