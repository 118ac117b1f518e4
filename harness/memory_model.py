"""Predicted peak memory of one run, before it is launched: does this configuration fit the device?

Per rank (each rank of gpus=N holds the whole model and `batch_size` sequences), above what the process holds
before the model exists (interpreter, torch, libraries: not predicted here):
- weights as transformed: 4 / 2 / 2 bytes per parameter for fp32 / fp16 / bf16; int8 as torchao's
  Int8DynamicActivationInt8WeightConfig stores it: every nn.Linear weight 1 byte per element plus one scale
  per output row (in the build dtype: fp32 on CPU, bf16 on GPU), the embedding and norms left in the build dtype;
- training (fp32 master weights whatever the precision: bf16/fp16 are autocast): gradients 4 bytes per parameter,
  AdamW's two moments 8, autocast's low-precision copies of the matmul weights 2, and the activations the
  backward pass keeps (per layer, in the compute dtype: ~10·d + 4·I elements per token — inputs of the two norms,
  q, k, v, roped q and k, attention output, the o-projection input, and the MLP's gate, up, activation and
  product — Korthikanti et al. 2022, "Reducing Activation Recomputation", counted for a SwiGLU block; in fp32 on
  CPU, where bf16 autocast was measured to keep as much as fp32), the attention scores and probabilities
  (2 · heads · seq_len per token per layer, fp32), plus the logits and their softmax for the loss (2·V, fp32);
  with workload.grad_accum_steps=N the activations are one micro-batch's (batch_size / N sequences): the backward
  of each micro-batch frees them before the next; with workload.grad_checkpointing=true each layer keeps only its
  input (the residual stream, d per token, fp32: autocast leaves the residual adds in fp32) and the backward
  recomputes one layer at a time, so the peak holds every layer's input plus one layer's activations and scores;
- inference: the KV cache at batch × (seq_len + decode_tokens) (2 · layers · kv_heads · head_dim elements per
  token in the compute dtype), counted twice (it grows by torch.cat, old and new copies held by the allocator),
  and the prefill's largest transient: one layer's MLP (3·I per token: gate, up and their product, the SwiGLU
  peak; in fp32 on CPU, where low-precision kernels compute in fp32). On CPU an int8 model also holds its fp32
  build copy: quantize_ frees it, glibc keeps the pages, and the RSS (what memory_limit_bytes judges) counts them.
Serving runs are predicted as inference at `serving.input_len + serving.output_len` per slot.

Plus the device's baseline, measured, never fitted: what a run's process holds before its model exists. On CPU
the peak is the process's resident set (what memory_limit_bytes judges), and the interpreter, torch, transformers
and the harness's own modules (harness.prepare: the state every run starts from) are most of it for a small model
(~0.5 GB against tiny's 4 MiB of weights): `baseline_bytes()` measures it once per machine and library versions in
a fresh process (prepare.ready(), then a one-layer, width-8 model built and run once, so the intra-op thread pool
and the allocator's first arenas exist) and keeps it in the harness cache. On CUDA the peak is the caching
allocator's (`cuda_max_allocated_bytes`), which holds nothing before the model: the baseline is 0 there (the CUDA
context itself, outside the allocator, is not predicted).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from harness import scenarios

BYTES = {"fp32": 4, "fp16": 2, "bf16": 2, "int8": 1}
GB = 1e9  # the catalog's memory_gb is in decimal gigabytes, as vendors state it (H200: 141 GB)


@dataclass(frozen=True)
class Prediction:
    """Predicted bytes per rank, by part; `total_bytes` is their sum, the process baseline included (the peak the
    run measures: resident set on CPU, allocator peak on CUDA)."""

    weights_bytes: int
    gradients_bytes: int
    optimizer_bytes: int
    activations_bytes: int
    kv_cache_bytes: int
    total_bytes: int
    params: int
    baseline_bytes: int = 0  # measured (baseline_bytes()), not predicted

    @property
    def model_bytes(self) -> int:
        """The predicted part: the peak above the process baseline."""
        return self.total_bytes - self.baseline_bytes

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def param_counts(model: Mapping[str, Any]) -> tuple[int, int, int]:
    """(linear, embedding, other) parameters of a Llama-shaped decoder: matmul weights, input embedding (and the
    lm_head when tied), norms."""
    d, i, n_layers, vocab = (
        int(model[k]) for k in ("hidden_size", "intermediate_size", "num_hidden_layers", "vocab_size")
    )
    heads = int(model["num_attention_heads"])
    kv_heads = int(model.get("num_key_value_heads") or heads)
    head_dim = d // heads
    per_layer = 2 * d * d + 2 * d * kv_heads * head_dim + 3 * d * i  # q, o; k, v; gate, up, down
    linear = n_layers * per_layer + (0 if model.get("tie_word_embeddings") else vocab * d)
    return linear, vocab * d, n_layers * 2 * d + d


def _weights(model: Mapping[str, Any], precision: str, device: str) -> int:
    linear, embedding, other = param_counts(model)
    if precision != "int8":
        return (linear + embedding + other) * BYTES[precision]
    build = 2 if device == "cuda" else 4  # torchao quantizes from bf16 on GPU, fp32 on CPU (precision.build_dtype)
    n_layers, d, i = (int(model[k]) for k in ("num_hidden_layers", "hidden_size", "intermediate_size"))
    heads = int(model["num_attention_heads"])
    kv = int(model.get("num_key_value_heads") or heads) * (d // heads)
    rows = n_layers * (d + 2 * kv + d + 2 * i + d)  # output rows of q, k, v, o, gate, up, down
    rows += 0 if model.get("tie_word_embeddings") else int(model["vocab_size"])
    quantized = linear + rows * build + (embedding + other) * build
    # on CPU the build-dtype copy is freed by quantize_ but glibc keeps its pages: the RSS holds both (measured)
    return quantized + (linear * build if device == "cpu" else 0)


def predict(config: Mapping[str, Any], device: str = "cpu", baseline: int = 0) -> Prediction:
    """The predicted peak of `config` (a resolved run config) on `device` (cpu | cuda), in bytes per rank, above
    `baseline` bytes the process holds before its model exists (baseline_bytes(device): measured)."""
    model, precision = config["model"], config["precision"]["name"]
    # what the workload holds at once (Spec.memory_shape): training's step, or sequences and their KV cache
    kind, b, seq, total = scenarios.spec(config["workload"]["name"], strict=False).memory_shape(config)
    d, i, n_layers, vocab = (
        int(model[k]) for k in ("hidden_size", "intermediate_size", "num_hidden_layers", "vocab_size")
    )
    heads = int(model["num_attention_heads"])
    kv_dim = int(model.get("num_key_value_heads") or heads) * (d // heads)
    params = sum(param_counts(model))
    if kind == "train":  # b: one micro-batch (Spec.memory_shape divides by workload.grad_accum_steps)
        w = config["workload"]
        tokens = b * seq
        compute = 4 if precision in ("fp32", "int8") else 2
        linear = param_counts(model)[0]
        weights = 4 * params + (2 * linear if compute == 2 else 0)  # fp32 master + autocast copies
        act = 4 if device == "cpu" else compute  # measured on CPU: bf16 autocast keeps as much as fp32
        # + the attention scores and probabilities kept for the backward pass (heads × seq_len per token, fp32)
        layer = (10 * d + 4 * i) * act + 2 * heads * seq * 4
        # gradient checkpointing keeps each layer's input (d per token) and recomputes one layer at a time
        kept = n_layers * d * 4 + layer if w.get("grad_checkpointing") else n_layers * layer
        per_token = kept + 2 * vocab * 4
        parts = (weights, 4 * params, 8 * params, tokens * per_token, 0)
    else:
        kv_bytes = 2 if precision in ("fp16", "bf16") or (precision == "int8" and device == "cuda") else 4
        kv = b * total * 2 * n_layers * kv_dim * kv_bytes
        # CPU kernels compute bf16/fp16/int8 activations in fp32 (oneDNN, dynamic int8 quantization): measured
        act = 4 if device == "cpu" else kv_bytes
        transient = b * seq * max(3 * i, d + 2 * kv_dim + d) * act
        # the KV cache grows by torch.cat at every decode step: each layer's old and new tensors coexist, and the
        # freed ones stay with the allocator (glibc's heap on CPU, the caching allocator's reserve on GPU), so the
        # cache's footprint is about twice its size (measured on CPU: benchmarks/memory_model.py)
        parts = (_weights(model, precision, device), 0, 0, transient + kv, kv)
    return Prediction(*parts, total_bytes=sum(parts) + baseline, params=params, baseline_bytes=baseline)


BASELINE_FILE = "process_baseline.json"
# the baseline's process: the state every run starts from, then a degenerate model built and run once
_BASELINE_CODE = """
import sys, torch
from harness import models, prepare
prepare.ready()
torch.set_num_threads(int(sys.argv[1]))
cfg = dict(models.preset("tiny"), hidden_size=8, intermediate_size=8, num_hidden_layers=1,
           num_attention_heads=1, num_key_value_heads=1)
model = models.build(cfg, torch.float32, "cpu", 0)
with torch.inference_mode():
    model(torch.zeros(1, 8, dtype=torch.long))
for line in open("/proc/self/status"):
    if line.startswith("VmRSS:"):
        print(int(line.split()[1]) * 1024)
"""


def _baseline_key(threads: int) -> str:
    import torch
    import transformers

    from harness.hardware import cpu_name

    v = sys.version_info
    versions = f"py{v.major}.{v.minor}|torch {torch.__version__}|transformers {transformers.__version__}"
    return f"{cpu_name()}|{versions}|libs {_installed()}|threads {threads}"


def _installed() -> str:
    """8 hex digits over every installed distribution and its version. An optional library changes the baseline
    as much as a new torch: with scipy installed (the search extra) the libraries' imports pull it in and a run's
    process holds 39 MiB more (506 against 467 MiB, measured on the CPU VM, 2026-12-05)."""
    import hashlib
    from importlib import metadata

    pairs = sorted(f"{d.metadata['Name']}=={d.version}" for d in metadata.distributions())
    return hashlib.sha256("\n".join(pairs).encode()).hexdigest()[:8]


def measure_baseline(threads: int) -> int:
    """The CPU process baseline, measured now in a fresh process (seconds): its resident set once the degenerate
    model has run (VmRSS, not the high-water mark: a run's window peak starts from its resident set, and the
    imports' transients before it are not in it)."""
    out = subprocess.run(
        [sys.executable, "-c", _BASELINE_CODE, str(threads)], capture_output=True, text=True, check=True
    )
    return int(out.stdout.split()[-1])


def baseline_bytes(device: str, threads: int | None = None) -> int:
    """What a run's process holds before its model exists, on `device`: 0 on CUDA (the allocator's peak starts
    empty); on CPU the resident set measured by measure_baseline, once per machine, library versions and thread
    count, kept in the harness cache ($HARNESS_CACHE, default ~/.cache/harness)."""
    if device == "cuda":
        return 0
    threads = int(threads or os.cpu_count() or 1)
    root = os.environ.get("HARNESS_CACHE") or os.environ.get("HARNESS_CACHE_DIR")
    path = Path(root or Path.home() / ".cache" / "harness") / BASELINE_FILE
    key = _baseline_key(threads)
    try:
        known = json.loads(path.read_text())
    except (OSError, ValueError):
        known = {}
    if key not in known:
        known[key] = measure_baseline(threads)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(known, indent=1, sort_keys=True))
        tmp.replace(path)
    return int(known[key])


def device_limit(config: Mapping[str, Any]) -> tuple[int | None, str]:
    """The memory a run must fit in, bytes per rank, and where the figure comes from: the smaller of
    `memory_limit_bytes` and, on a GPU, the catalog's `hardware.memory_gb`. (None, ...) when neither is known."""
    limits = []
    if config.get("memory_limit_bytes"):
        limits.append((int(config["memory_limit_bytes"]), "memory_limit_bytes"))
    hw = config.get("hardware") or {}
    if hw.get("memory_gb") and hw.get("device") == "cuda":
        limits.append((int(float(hw["memory_gb"]) * GB), f"hardware.memory_gb={hw['memory_gb']:g} ({hw.get('name')})"))
    return min(limits) if limits else (None, "no memory_limit_bytes and no GPU memory_gb")


def feasibility(config: Mapping[str, Any]) -> dict[str, Any]:
    """The result's `feasibility` section: the prediction, the limit it was held against, and the verdict."""
    hw = config.get("hardware") or {}
    device = "cuda" if hw.get("device") == "cuda" else "cpu"
    limit, source = device_limit(config)
    try:
        predict(config, device)  # the shape is known (before the baseline is measured for nothing)
    except (KeyError, TypeError, ValueError) as exc:  # a local model without its shape in the config
        return {"predicted": None, "limit_bytes": None, "fits": None, "note": f"not predicted: {exc!r}"}
    # the baseline is measured (once per machine, cached) only when there is a limit to hold the peak against
    base = 0 if limit is None else baseline_bytes(device, config.get("threads"))
    pred = predict(config, device, base)
    fits = None if limit is None else pred.total_bytes <= limit
    return {"predicted": pred.as_dict(), "device": device, "limit_bytes": limit, "limit_source": source, "fits": fits}
