"""The OpenAI engine's count of output tokens, against a stand-in server that streams as transformers serve 5.25
does: tokens merged into one chunk where a character spans two of them, and usage only when the request asks for
it with `stream_options.include_usage` (as the OpenAI API defines it)."""

from __future__ import annotations

import asyncio
import dataclasses
import json

import httpx2

from harness.config import ServingConfig
from harness.serving.engines.openai_http import OpenAIEngine
from harness.serving.prompts import Request

CHUNKS = ["\ufffda", "\ufffd\u0006", ",", "x"]  # 6 tokens in 4 deliveries: two chunks carry two tokens each


def _server(seen: list[dict]) -> httpx2.MockTransport:
    def answer(request: httpx2.Request) -> httpx2.Response:
        body = json.loads(request.content)
        seen.append(body)
        events = [{"choices": [{"index": 0, "text": text}]} for text in CHUNKS]
        events.append({"choices": [{"index": 0, "text": "", "finish_reason": "length"}]})
        if (body.get("stream_options") or {}).get("include_usage"):
            events.append({"choices": [], "usage": {"prompt_tokens": 4, "completion_tokens": 6, "total_tokens": 10}})
        sse = "".join(f"data: {json.dumps(e)}\n\n" for e in events) + "data: [DONE]\n\n"
        return httpx2.Response(200, text=sse, headers={"content-type": "text/event-stream"})

    return httpx2.MockTransport(answer)


def _engine(transport: httpx2.MockTransport) -> OpenAIEngine:
    cfg = {**dataclasses.asdict(ServingConfig()), "engine": "openai", "url": "http://127.0.0.1:1/v1"}
    engine = OpenAIEngine(cfg, run_dir=None)
    engine.http = httpx2.AsyncClient(transport=transport)
    engine.model = "m"
    return engine


def test_the_count_is_the_servers_usage_asked_for_in_the_stream():
    seen: list[dict] = []
    engine = _engine(_server(seen))
    deliveries: list[int] = []
    request = Request(index=0, prompt_ids=[1, 2, 3, 4], prompt_text="abcd", max_tokens=6)
    counted = asyncio.run(engine.stream(request, lambda t, n: deliveries.append(n)))
    assert seen[0]["stream_options"] == {"include_usage": True} and seen[0]["max_tokens"] == 6
    assert counted == 6 and len(deliveries) == 4  # the server's count, not the 4 chunks it sent
    assert engine.info()["output_tokens_counted_by"] == "usage"


def test_a_server_without_usage_is_counted_by_deliveries_and_said_so():
    engine = _engine(httpx2.MockTransport(lambda r: httpx2.Response(200, text='data: {"choices":[{"text":"a"}]}\n\n')))
    request = Request(index=0, prompt_ids=[1], prompt_text="a", max_tokens=6)
    assert asyncio.run(engine.stream(request, lambda t, n: None)) is None
    assert engine.info()["output_tokens_counted_by"] == "deliveries"
