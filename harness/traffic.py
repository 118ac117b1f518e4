"""Bytes moved per decode step, for model bandwidth utilisation (MBU).

A decode step produces one token per sequence and is bound by memory bandwidth: it reads every weight once
(whatever the batch) and the whole KV cache so far. MBU = bytes per step x steps/s / peak bandwidth (the
bandwidth counterpart of MFU; Databricks, "LLM Inference Performance Engineering: Best Practices", 2023).
Weights are counted from the tensors of the model as it runs — a torchao int8 weight is its int8 data
plus its scales and zero points, not its logical fp32 dtype — never from a dtype guessed from the config.
"""

from __future__ import annotations

from typing import Any

import torch


def tensor_bytes(t: torch.Tensor) -> int:
    """Bytes a tensor holds: a tensor subclass (torchao's quantized weights) is the sum of its inner tensors."""
    if hasattr(t, "__tensor_flatten__") and type(t) not in (torch.Tensor, torch.nn.Parameter):
        names, _ = t.__tensor_flatten__()
        return sum(tensor_bytes(getattr(t, n)) for n in names)
    return t.numel() * t.element_size()


def weight_bytes_per_step(model: torch.nn.Module, batch: int) -> int:
    """Bytes of weights one decode step reads: every parameter and buffer once (shared ones once), except
    an input-embedding table no matmul uses, of which a step reads only `batch` rows."""
    lookups = {
        id(m.weight): m.weight for m in model.modules() if isinstance(m, torch.nn.Embedding) and m.weight is not None
    }
    for m in model.modules():  # a table tied to lm_head is read whole by that matmul
        if isinstance(m, torch.nn.Linear):
            lookups.pop(id(m.weight), None)
    seen: set[int] = set()
    total = 0
    for t in [*model.parameters(), *model.buffers()]:
        if id(t) in seen:
            continue
        seen.add(id(t))
        if id(t) in lookups:
            total += batch * tensor_bytes(t) // t.shape[0]  # `batch` rows of the table
        else:
            total += tensor_bytes(t)
    return total


def kv_shape(model_config: Any) -> dict[str, int] | None:
    """Layers, KV heads and head size from a transformers config; None where the architecture does not say."""
    layers = getattr(model_config, "num_hidden_layers", None)
    heads = getattr(model_config, "num_attention_heads", None)
    hidden = getattr(model_config, "hidden_size", None)
    if not (layers and heads and hidden):
        return None
    kv_heads = getattr(model_config, "num_key_value_heads", None) or heads
    head_dim = getattr(model_config, "head_dim", None) or hidden // heads
    return {"n_layers": int(layers), "kv_heads": int(kv_heads), "head_dim": int(head_dim)}


def mean_decode_context(seq_len: int, decode_tokens: int) -> float:
    """Mean tokens in the cache over the decode steps: step i (1..n) attends to seq_len + i tokens."""
    return seq_len + (decode_tokens + 1) / 2


def kv_bytes_per_step(shape: dict[str, int], context: float, batch: int, element_bytes: int) -> float:
    """KV cache read by one decode step: keys and values (2) x layers x KV heads x head size x context x batch
    x bytes per element."""
    return 2.0 * shape["n_layers"] * shape["kv_heads"] * shape["head_dim"] * context * batch * element_bytes


def decode_bytes(model: torch.nn.Module, batch: int, seq_len: int, decode_tokens: int) -> dict[str, Any]:
    """The decode step's traffic for this model as run: weight bytes, mean KV-cache bytes and their sum
    (result.metrics, docs/results.md); the KV part and the sum are null where the shape is unknown."""
    weights = weight_bytes_per_step(model, batch)
    shape = kv_shape(getattr(model, "config", None))
    # the cache holds activations: the model's compute dtype (an int8-quantized model keeps fp32 ones)
    element = torch.empty((), dtype=getattr(model, "dtype", torch.float32)).element_size()
    context = mean_decode_context(seq_len, decode_tokens)
    kv = kv_bytes_per_step(shape, context, batch, element) if shape and decode_tokens > 0 else None
    return {
        "weight_bytes_per_decode_step": weights,
        "kv_cache_bytes_per_decode_step": kv,
        "kv_cache_element_bytes": element,
        "bytes_per_decode_step": weights + kv if kv is not None else None,
    }


def mbu(bytes_per_step: float | None, steps_per_s: float | None, peak_bytes_per_s: float | None) -> dict[str, Any]:
    """achieved_bytes_per_s_decode and mbu_decode (achieved / peak), per device; null when any is unknown."""
    achieved = bytes_per_step * steps_per_s if bytes_per_step and steps_per_s else None
    return {
        "achieved_bytes_per_s_decode": achieved,
        "mbu_decode": achieved / peak_bytes_per_s if achieved and peak_bytes_per_s else None,
    }
