"""The engine's own figures beside the client's: a Prometheus text endpoint (serving.metrics_url, as vLLM,
SGLang and TGI expose at /metrics) scraped before the timed window, every serving.metrics_interval_s
during it, and after it, parsed with prometheus_client's parser (the maintained one).

Each engine names its gauges its own way; a figure is read from the first of its names the page has, summed
over label sets (several engines or ranks behind one endpoint), a fraction averaged instead:
  running requests   vllm:num_requests_running, sglang:num_running_reqs, tgi_batch_current_size
  waiting requests   vllm:num_requests_waiting, sglang:num_queue_reqs, tgi_queue_size
  KV-cache use (0-1) vllm:kv_cache_usage_perc (vllm:gpu_cache_usage_perc before v0.10), sglang:token_usage
  prefix-cache hits  sglang:cache_hit_rate (0-1); vLLM's counters prefix_cache_hits / prefix_cache_queries
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

# figure -> (names in order of preference, how label sets combine)
FIGURES: dict[str, tuple[tuple[str, ...], str]] = {
    "running_requests": (("vllm:num_requests_running", "sglang:num_running_reqs", "tgi_batch_current_size"), "sum"),
    "waiting_requests": (("vllm:num_requests_waiting", "sglang:num_queue_reqs", "tgi_queue_size"), "sum"),
    "kv_cache_usage": (("vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc", "sglang:token_usage"), "mean"),
    "prefix_cache_hit_rate": (("sglang:cache_hit_rate",), "mean"),
    "prefix_cache_hits": (("vllm:prefix_cache_hits_total", "vllm:gpu_prefix_cache_hits_total"), "sum"),
    "prefix_cache_queries": (("vllm:prefix_cache_queries_total", "vllm:gpu_prefix_cache_queries_total"), "sum"),
}


def parse(text: str) -> dict[str, float]:
    """The known figures on a Prometheus exposition page (absent ones left out)."""
    values: dict[str, list[float]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            values.setdefault(sample.name, []).append(float(sample.value))
    out = {}
    for figure, (names, combine) in FIGURES.items():
        name = next((n for n in names if n in values), None)
        if name is not None:
            v = values[name]
            out[figure] = sum(v) if combine == "sum" else sum(v) / len(v)
    return out


def summarize(samples: Sequence[dict[str, Any]], start: float, end: float) -> dict[str, Any]:
    """server_* figures of the samples taken in [start, end] (perf_counter s): queue depth and running
    requests (mean, max), KV-cache use (max); null where the page had none."""
    inside = [s for s in samples if start <= s["t"] <= end]

    def pick(key: str) -> list[float]:
        return [s[key] for s in inside if key in s]

    waiting, running, kv = pick("waiting_requests"), pick("running_requests"), pick("kv_cache_usage")
    return {
        "server_waiting_requests_mean": sum(waiting) / len(waiting) if waiting else None,
        "server_waiting_requests_max": max(waiting) if waiting else None,
        "server_running_requests_mean": sum(running) / len(running) if running else None,
        "server_kv_cache_usage_max": max(kv) if kv else None,
        "server_metrics_samples": len(inside),
    }


class Scraper:
    """Scrapes `url` on the load generator's event loop: `scrape()` once (before, after), `start()`/`stop()`
    around the window for the samples between. A failed scrape is recorded, never fatal to the run."""

    def __init__(self, url: str, interval_s: float):
        from harness.serving.engines import http

        self.url, self.interval_s = url, interval_s
        self.http = http.client(2)
        self.samples: list[dict[str, Any]] = []
        self.errors: list[str] = []
        self._task: asyncio.Task | None = None

    async def scrape(self, phase: str) -> dict[str, Any] | None:
        from harness.serving.engines import http

        try:
            text = await http.get_text(self.http, self.url, timeout_s=max(1.0, self.interval_s))
            sample = {"t": time.perf_counter(), "phase": phase, **parse(text)}
        except (OSError, RuntimeError, ValueError) as exc:  # unreachable, non-2xx, or not Prometheus text
            self.errors.append(f"{phase}: {type(exc).__name__}: {exc}"[:200])
            return None
        self.samples.append(sample)
        return sample

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            await self.scrape("during")

    def start(self) -> None:
        self._task = asyncio.ensure_future(self._loop())

    async def stop(self) -> None:
        """End the scrapes during the window (then `scrape("after")`, then `close()`)."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def close(self) -> None:
        await self.stop()
        await self.http.aclose()

    def section(self, t0: float) -> dict[str, Any]:
        """result.serving.server_metrics: every sample (t in s from the window's start), and the errors."""
        rel = [{**s, "t": round(s["t"] - t0, 4)} for s in self.samples]
        return {"url": self.url, "interval_s": self.interval_s, "samples": rel, "errors": self.errors[:5]}
