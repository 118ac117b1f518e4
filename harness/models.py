"""Build the model under test: a decoder-only transformer from a preset (random weights, seeded),
or a pretrained model from a local directory. Nothing is downloaded."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Mapping
from typing import Any

import torch

_ARCH_KEYS = (
    "vocab_size",
    "hidden_size",
    "intermediate_size",
    "num_hidden_layers",
    "num_attention_heads",
    "num_key_value_heads",
    "max_position_embeddings",
    "tie_word_embeddings",
)


def preset(preset_name: str, **overrides: Any) -> dict[str, Any]:
    """A shipped model preset (conf/model/<name>.yaml) as a plain dict, with `overrides` on top."""
    from omegaconf import OmegaConf

    from harness.config import CONF_DIR, ModelConfig

    cfg = OmegaConf.merge(OmegaConf.structured(ModelConfig), OmegaConf.load(CONF_DIR / "model" / f"{preset_name}.yaml"))
    return {**OmegaConf.to_container(cfg, resolve=True), **overrides}


def build(model_cfg: Mapping[str, Any], dtype: torch.dtype, device: str, seed: int) -> torch.nn.Module:
    """The model in eval mode on `device`, its weights created (or loaded) directly in `dtype`."""
    from transformers import AutoConfig, AutoModelForCausalLM

    torch.manual_seed(seed)  # same seed, same initial weights, whatever the precision
    with torch.device(device):
        if model_cfg.get("path"):
            model = AutoModelForCausalLM.from_pretrained(model_cfg["path"], dtype=dtype, local_files_only=True)
        else:
            arch = {k: model_cfg[k] for k in _ARCH_KEYS if model_cfg.get(k) is not None}
            config = AutoConfig.for_model(model_cfg["arch"], **arch)
            model = AutoModelForCausalLM.from_config(config, dtype=dtype)
    return model.to(device).eval()


def build_classifier(model_cfg: Mapping[str, Any], dtype: torch.dtype, device: str, seed: int) -> torch.nn.Module:
    """A sequence classifier with `model_cfg["num_labels"]` classes, in train mode on `device`: BERT-shaped
    (arch=bert: BertForSequenceClassification from the preset's numbers) or the preset's decoder with a
    classification head (AutoModelForSequenceClassification); from `path` (init=checkpoint: its weights, a
    new head; init=random: its config only). Token id 0 is padding (byte-level ids: NUL never occurs in text)."""
    from transformers import AutoConfig, AutoModelForSequenceClassification, BertConfig, BertForSequenceClassification

    labels = {"num_labels": int(model_cfg["num_labels"])}
    torch.manual_seed(seed)  # same seed, same head and (init=random) the same initial weights
    path = model_cfg.get("path")
    with torch.device(device):
        if path and model_cfg.get("init") == "checkpoint":
            model = AutoModelForSequenceClassification.from_pretrained(
                path, dtype=dtype, local_files_only=True, ignore_mismatched_sizes=True, **labels
            )
        elif path:
            config = AutoConfig.from_pretrained(path, local_files_only=True, **labels)
            model = AutoModelForSequenceClassification.from_config(config, dtype=dtype)
        elif model_cfg["arch"] == "bert":
            arch = {k: model_cfg[k] for k in _ARCH_KEYS if model_cfg.get(k) is not None and "key_value" not in k}
            arch.pop("tie_word_embeddings", None)
            model = BertForSequenceClassification(BertConfig(**arch, pad_token_id=0, **labels)).to(dtype)
        else:
            arch = {k: model_cfg[k] for k in _ARCH_KEYS if model_cfg.get(k) is not None}
            config = AutoConfig.for_model(model_cfg["arch"], **arch, pad_token_id=0, **labels)
            model = AutoModelForSequenceClassification.from_config(config, dtype=dtype)
    if getattr(model.config, "pad_token_id", None) is None:  # decoder heads pool at the last non-pad token
        model.config.pad_token_id = 0
    return model.to(device).train()


def describe(model: torch.nn.Module) -> dict[str, Any]:
    """Parameter counts and the shape numbers the FLOP formula needs, of the model as it is (after transforms:
    a quantized weight counts its logical elements; params_nonzero what pruning left)."""
    total = sum(p.numel() for p in model.parameters())
    embedding = sum(m.weight.numel() for m in model.modules() if isinstance(m, torch.nn.Embedding))
    # Every nn.Linear is one matmul per token: in*out multiply-adds. A tied lm_head is counted here too,
    # which a plain "non-embedding parameters" figure would miss.
    matmul = sum(m.in_features * m.out_features for m in model.modules() if isinstance(m, torch.nn.Linear))
    cfg = model.config
    return {
        "params": int(total),
        "params_nonzero": nonzero(model),
        "params_embedding": int(embedding),
        "params_non_embedding": int(total - embedding),
        "matmul_params": int(matmul),
        "n_layers": getattr(cfg, "num_hidden_layers", None),
        "d_model": getattr(cfg, "hidden_size", None),
        "vocab_size": getattr(cfg, "vocab_size", None),
        "model_type": getattr(cfg, "model_type", None),
    }


def nonzero(model: torch.nn.Module) -> int:
    """Parameters that are not zero: a plain tensor counted; a quantized or sparse tensor subclass by the
    elements it holds (a 2:4 semi-structured weight keeps half), the rest as its logical size."""
    total = 0
    for p in model.parameters():
        if type(p) in (torch.Tensor, torch.nn.Parameter) and p.device.type != "meta":
            total += int(torch.count_nonzero(p.detach()))
        elif type(p).__name__.startswith("SparseSemiStructured"):
            total += p.numel() // 2
        else:
            total += p.numel()
    return total


# Recent transformers (5.24 here) take and return a causal LM's KV cache as `cache`; `past_key_values` (the only
# name in older ones) still works there with a deprecation warning and is due to go in 5.40. pyproject allows
# >= 4.56, so both.
def cache_keyword(model: torch.nn.Module) -> str:
    """The keyword this model's forward takes its KV cache under: `cache` where its class declares it,
    else `past_key_values`. Read from the class (once per class: it is asked at every decode step), so a
    forward wrapped on the instance does not hide it."""
    return _cache_keyword_of(type(model))


@functools.cache
def _cache_keyword_of(cls: type) -> str:
    return "cache" if "cache" in inspect.signature(cls.forward).parameters else "past_key_values"


def output_cache(out: Any) -> Any:
    """The KV cache in a transformers model output, under either name."""
    cache = getattr(out, "cache", None)
    return cache if cache is not None else getattr(out, "past_key_values", None)
