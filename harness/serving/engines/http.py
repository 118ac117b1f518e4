"""HTTP for OpenAI-compatible engines, on httpx2 (installed with huggingface_hub): JSON GETs and a streamed
POST read as server-sent events, each event yielded the moment its line arrives (TTFT and ITL depend on it).

One pooled client per engine keeps connections alive between requests, as the serving benchmarks' clients
do (vLLM's `bench serve` on aiohttp, GuideLLM on httpx); failures surface as `ConnectionError` (the server
cannot be reached or dropped the connection) or `HttpError` (it answered with a non-2xx status).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx2


class HttpError(RuntimeError):
    """A non-2xx answer: the status and the start of the body; `headers`, the answer's."""

    def __init__(self, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.headers = headers or {}


def client(max_connections: int | None = None) -> httpx2.AsyncClient:
    """A pooled client without its own timeouts (every request's deadline is the load generator's) and
    without proxies from the environment (engines under test listen on a local or cluster address)."""
    limits = httpx2.Limits(max_connections=max_connections, max_keepalive_connections=max_connections)
    return httpx2.AsyncClient(timeout=None, limits=limits, trust_env=False)


async def _get(http: httpx2.AsyncClient, url: str, timeout_s: float) -> httpx2.Response:
    """GET with the engine errors translated once: TimeoutError, ConnectionError, HttpError (a non-2xx status)."""
    try:
        answer = await http.get(url, timeout=timeout_s)
    except httpx2.TimeoutException as exc:
        raise TimeoutError(f"GET {url}: no answer within {timeout_s:g} s") from exc
    except httpx2.TransportError as exc:
        raise ConnectionError(f"cannot reach {url}: {exc or type(exc).__name__}") from exc
    if not answer.is_success:
        raise HttpError(f"GET {url}: HTTP {answer.status_code}: {answer.text[:200]}", dict(answer.headers))
    return answer


async def get_json(http: httpx2.AsyncClient, url: str, timeout_s: float) -> tuple[Any, dict[str, str]]:
    """GET a JSON document; (parsed body, response headers). Raises HttpError on a non-2xx status."""
    answer = await _get(http, url, timeout_s)
    return (answer.json() if answer.content.strip() else None), dict(answer.headers)


async def get_text(http: httpx2.AsyncClient, url: str, timeout_s: float) -> str:
    """GET a text document (a Prometheus exposition page). Raises HttpError on a non-2xx status."""
    return (await _get(http, url, timeout_s)).text


async def post_sse(http: httpx2.AsyncClient, url: str, payload: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
    """POST JSON and yield each server-sent event's `data:` object as it arrives, until `[DONE]` or the end."""
    try:
        async with http.stream("POST", url, json=payload) as answer:
            if not answer.is_success:
                body = (await answer.aread()).decode(errors="replace")
                raise HttpError(f"POST {url}: HTTP {answer.status_code}: {body[:300]}")
            async for line in answer.aiter_lines():
                if not line.startswith("data:"):
                    continue  # blank separators, comments (":"), event: and id: fields
                text = line[5:].strip()
                if text == "[DONE]":
                    return
                yield json.loads(text)
    except httpx2.TransportError as exc:
        raise ConnectionError(f"{url}: {exc or type(exc).__name__}") from exc
