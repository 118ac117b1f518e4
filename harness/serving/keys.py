"""What a serving run *is*, for the canonical key (harness.results): the load and the engine, not the timeouts."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

IN_PROCESS = ("transformers", "sequential")  # serving.engine that runs the model in the worker's process


def in_process(s: Mapping[str, Any]) -> bool:
    """Whether the served weights load in the worker's process (else a remote server holds them)."""
    return s["engine"] in IN_PROCESS


def serving_key_fields(s: Mapping[str, Any]) -> dict[str, Any]:
    """The serving settings that change what is measured; the SLO and server settings hashed into one field."""
    search = s["search"]
    detail = {
        "slo": dict(s["slo"]),
        "server": list(s["server"]["command"] or []),
        "url": s["url"],
        "api": s["api"],
        "request_extra": dict(s["request_extra"] or {}),
        "max_concurrency": s["max_concurrency"],
        "len_range": s["len_range"],
        "cb": [s["num_blocks"], s["max_batch_tokens"]],
        "search": [s["search_percentile"], s["search_start_rate"], s["search_max_probes"], s["search_tolerance"]]
        + [s["search_probe_s"], s["search_keep_up_tolerance"]]
        if search != "none"
        else None,
        "duration_s": s["duration_s"],
    }
    if s.get("max_context_tokens") is not None:  # only then: a run without it keeps the key it had before
        detail["max_context_tokens"] = s["max_context_tokens"]
    if s.get("reset_cache"):  # only then: a run without it keeps the key it had before
        detail["reset_cache"] = True
    dataset = s.get("dataset", "random")
    if dataset != "random":  # only then: a random run keeps the key it had before datasets existed
        detail["dataset"] = {
            "path": s["dataset_path"] if dataset in ("sharegpt", "trace") else None,
            "think_time_s": s["think_time_s"] if dataset == "sharegpt" else None,
            "trace_speed": s["trace_speed"] if dataset == "trace" else None,
            "prefix": [s["prefix_count"], s["suffixes_per_prefix"], s["prefix_len"]]
            if dataset == "shared_prefix"
            else None,
        }
    fields = {
        "engine": s["engine"],
        "arrival": s["arrival"] if search == "none" else "poisson",
        "rate": s["rate"] if search == "none" and s["arrival"] != "closed" else None,
        "burstiness": s["burstiness"] if s["arrival"] == "gamma" and search == "none" else None,
        "concurrency": s["concurrency"] if s["arrival"] == "closed" and search == "none" else None,
        "search": search,
        "num_requests": s["num_requests"],
        "input_len": s["input_len"],
        "output_len": s["output_len"],
        "serving": hashlib.sha256(json.dumps(detail, sort_keys=True, default=str).encode()).hexdigest()[:8],
    }
    if dataset != "random":
        fields["dataset"] = dataset
        fields["arrival"] = "trace" if dataset == "trace" else fields["arrival"]
        fields["rate"] = None if dataset == "trace" else fields["rate"]
    return fields
