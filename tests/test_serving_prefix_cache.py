"""Prefix caching where the engine reports it: OpenAI usage.prompt_tokens_details.cached_tokens per request (a
stand-in server), the hit rate and TTFT apart for hits and misses (known answers)."""

from __future__ import annotations

import asyncio
import dataclasses
import json

import httpx2
import pytest

from harness.config import ServingConfig
from harness.serving import loadgen, metrics
from harness.serving.engines.openai_http import OpenAIEngine
from harness.serving.metrics import Outcome
from harness.serving.prompts import Request


def _server(cached: int) -> httpx2.MockTransport:
    def answer(request: httpx2.Request) -> httpx2.Response:
        usage = {"prompt_tokens": 10, "completion_tokens": 2, "prompt_tokens_details": {"cached_tokens": cached}}
        events = [{"choices": [{"index": 0, "text": "a"}]}, {"choices": [{"index": 0, "text": "b"}]},
                  {"choices": [], "usage": usage}]  # fmt: skip
        sse = "".join(f"data: {json.dumps(e)}\n\n" for e in events) + "data: [DONE]\n\n"
        return httpx2.Response(200, text=sse, headers={"content-type": "text/event-stream"})

    return httpx2.MockTransport(answer)


def test_cached_tokens_reach_the_outcome():
    cfg = {**dataclasses.asdict(ServingConfig()), "engine": "openai", "url": "http://127.0.0.1:1/v1"}
    engine = OpenAIEngine(cfg, run_dir=None)
    engine.http, engine.model = httpx2.AsyncClient(transport=_server(8)), "m"
    outcome = Outcome(0, 10, None, 0.0, 0.0)
    asyncio.run(loadgen._one(engine, Request(0, [1] * 10, "x" * 10, 2), outcome, None, 5.0))
    assert outcome.ok and outcome.cached_tokens == 8 and outcome.output_tokens == 2
    assert metrics.request_records([outcome])[0]["cached_tokens"] == 8


def _o(ttft: float, cached: int | None, prompt: int = 100) -> Outcome:
    o = Outcome(0, prompt, None, 10.0, 10.0, [10.0 + ttft, 10.0 + ttft + 0.1], 2, 10.0 + ttft + 0.1)
    o.cached_tokens = cached
    return o


def test_hit_rate_and_ttft_by_hit_and_miss():
    done = [_o(0.01, 80), _o(0.03, 60), _o(0.2, 0), _o(0.4, 0)]
    m = metrics.summarize_run(done, 1.0, {}, 0.01)
    assert m["prompt_tokens_cached"] == 140 and m["prefix_cache_hit_rate"] == pytest.approx(140 / 400)
    assert m["ttft_s_cache_hit"]["n"] == 2 and m["ttft_s_cache_hit"]["p50"] == pytest.approx(0.02)
    assert m["ttft_s_cache_miss"]["n"] == 2 and m["ttft_s_cache_miss"]["p50"] == pytest.approx(0.3)
    # an engine that does not say: null, never 0
    silent = metrics.summarize_run([_o(0.01, None)], 1.0, {}, 0.01)
    assert silent["prefix_cache_hit_rate"] is None and silent["ttft_s_cache_hit"] is None
