"""Serving engines, chosen by name (serving.engine): each is an async context manager with `stream` and `info`."""

from __future__ import annotations

from typing import Any


def open_engine(
    serving_cfg: dict[str, Any],
    model: Any,
    run_dir: str | None,
    model_path: str | None = None,
    sizes: tuple[int, int] | None = None,
) -> Any:
    """The engine for serving.engine (imports only what that engine needs). `model`: what serves in this process
    (transformers: the model; sequential: a harness.serving.stepwise generation; openai: None); `sizes`:
    (requests, longest request in tokens, prompt + output) of the run, for the transformers engine's KV cache."""
    if serving_cfg["engine"] == "sequential":
        from harness.serving.engines.sequential import SequentialEngine

        return SequentialEngine(model)
    if serving_cfg["engine"] == "transformers":
        from harness.serving.engines.transformers_cb import TransformersEngine

        return TransformersEngine(model, serving_cfg, sizes)
    from harness.serving.engines.openai_http import OpenAIEngine

    return OpenAIEngine(serving_cfg, run_dir, model_path)
