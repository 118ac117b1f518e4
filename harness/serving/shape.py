"""The served model's shape without its weights (meta tensors), for FLOP figures when the engine is remote."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def meta_model(model_cfg: Mapping[str, Any], dtype: Any) -> Any:
    """The model of model_cfg (a preset or model.path's config.json) on the meta device: no memory, no weights."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    from harness import models

    if model_cfg.get("path"):
        config = AutoConfig.from_pretrained(model_cfg["path"], local_files_only=True)
    else:
        arch = {k: model_cfg[k] for k in models._ARCH_KEYS if model_cfg.get(k) is not None}
        config = AutoConfig.for_model(model_cfg["arch"], **arch)
    with torch.device("meta"):
        return AutoModelForCausalLM.from_config(config, dtype=dtype).eval()
