"""Checks of the serving.* settings before anything runs: one ConfigError naming the key, value and choices."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from harness.errors import ConfigError

ENGINES = ("transformers", "sequential", "openai")
ARRIVALS = ("poisson", "gamma", "constant", "closed")
SEARCHES = ("none", "max_rate")
APIS = ("completions", "chat")
DATASETS = ("random", "sharegpt", "trace", "shared_prefix")


def _positive(key: str, value: Any) -> None:
    if value is None or value <= 0:
        raise ConfigError(key, value, "must be > 0")


def _choice(key: str, value: Any, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(key, value, f"choose one of {', '.join(choices)}")


def validate_serving(s: Any, model: Any, gpus: int = 1) -> None:
    """Raise ConfigError for the first bad serving.* key."""
    if gpus != 1:
        raise ConfigError(
            "gpus", gpus, "workload=serving runs one engine: gpus=1 (a server's own parallelism goes in its command)"
        )
    _choice("serving.engine", s.engine, ENGINES)
    _choice("serving.arrival", s.arrival, ARRIVALS)
    _choice("serving.search", s.search, SEARCHES)
    _choice("serving.api", s.api, APIS)
    if s.arrival != "closed" or s.search == "max_rate":
        _positive("serving.rate", s.rate)
    _positive("serving.burstiness", s.burstiness)
    _positive("serving.request_timeout_s", s.request_timeout_s)
    _positive("serving.num_requests", s.num_requests)
    _positive("serving.concurrency", s.concurrency)
    if s.duration_s is not None:
        _positive("serving.duration_s", s.duration_s)
    if s.max_concurrency is not None:
        _positive("serving.max_concurrency", s.max_concurrency)
    if s.warmup_requests < 0:
        raise ConfigError("serving.warmup_requests", s.warmup_requests, "must be >= 0")
    _positive("serving.input_len", s.input_len)
    _positive("serving.output_len", s.output_len)
    if not 0 <= s.len_range < 1:
        raise ConfigError("serving.len_range", s.len_range, "must be in [0, 1)")
    if not 0 <= s.max_failed_fraction <= 1:
        raise ConfigError("serving.max_failed_fraction", s.max_failed_fraction, "must be between 0 and 1")
    _positive("serving.lateness_tolerance_s", s.lateness_tolerance_s)
    for key in ("ttft_ms", "tpot_ms", "e2el_ms"):
        value = getattr(s.slo, key)
        if value is not None:
            _positive(f"serving.slo.{key}", value)
    _validate_dataset(s)
    if s.metrics_url is not None:
        parsed = urlparse(s.metrics_url)
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise ConfigError("serving.metrics_url", s.metrics_url, "give a Prometheus page: http://host:port/metrics")
    _positive("serving.metrics_interval_s", s.metrics_interval_s)
    if s.search == "max_rate":
        _validate_search(s)
    if s.engine == "openai":
        _validate_openai(s)
    elif model.path is None:
        prefix = s.prefix_len if s.dataset == "shared_prefix" else 0
        longest = prefix + int(s.input_len * (1 + s.len_range)) + int(s.output_len * (1 + s.len_range)) + 1
        if longest > model.max_position_embeddings:
            raise ConfigError(
                "serving.input_len",
                s.input_len,
                f"the longest request ({longest} tokens) exceeds model.max_position_embeddings="
                f"{model.max_position_embeddings}",
            )


def _validate_dataset(s: Any) -> None:
    _choice("serving.dataset", s.dataset, DATASETS)
    if s.dataset in ("sharegpt", "trace"):
        kinds = ".json" if s.dataset == "sharegpt" else ".csv, .jsonl or .json"
        if not s.dataset_path or not Path(s.dataset_path).is_file():
            need = f"serving.dataset={s.dataset} needs an existing {kinds} file"
            raise ConfigError("serving.dataset_path", s.dataset_path, need)
    if s.max_context_tokens is not None:
        _positive("serving.max_context_tokens", s.max_context_tokens)
    if s.think_time_s < 0:
        raise ConfigError("serving.think_time_s", s.think_time_s, "must be >= 0")
    _positive("serving.trace_speed", s.trace_speed)
    if s.dataset == "trace" and s.search == "max_rate":
        raise ConfigError(
            "serving.search", s.search, "a trace keeps its own timing: choose none (or scale it: serving.trace_speed)"
        )
    if s.dataset == "shared_prefix":
        for key in ("prefix_count", "suffixes_per_prefix", "prefix_len"):
            _positive(f"serving.{key}", getattr(s, key))


def _validate_search(s: Any) -> None:
    if all(getattr(s.slo, k) is None for k in ("ttft_ms", "tpot_ms", "e2el_ms")):
        raise ConfigError(
            "serving.slo", None, "serving.search=max_rate needs at least one of ttft_ms, tpot_ms, e2el_ms"
        )
    if not 0 < s.search_percentile <= 100:
        raise ConfigError("serving.search_percentile", s.search_percentile, "must be in (0, 100]")
    _positive("serving.search_start_rate", s.search_start_rate)
    if s.search_max_probes < 2:
        raise ConfigError("serving.search_max_probes", s.search_max_probes, "must be >= 2")
    if not 0 < s.search_tolerance < 1:
        raise ConfigError("serving.search_tolerance", s.search_tolerance, "must be in (0, 1)")
    _positive("serving.search_probe_s", s.search_probe_s)
    if not 0 < s.search_keep_up_tolerance < 1:
        raise ConfigError("serving.search_keep_up_tolerance", s.search_keep_up_tolerance, "must be in (0, 1)")


def _validate_openai(s: Any) -> None:
    if s.server.command is not None:
        if not s.server.command:
            raise ConfigError(
                "serving.server.command", s.server.command, "give the server's argv, e.g. [vllm, serve, ...]"
            )
        return
    parsed = urlparse(s.url or "")
    if parsed.scheme not in ("http",) or not parsed.hostname:
        raise ConfigError(
            "serving.url",
            s.url,
            "serving.engine=openai needs serving.url=http://host:port/v1 or serving.server.command",
        )
