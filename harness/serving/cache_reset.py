"""serving.reset_cache=true: empty the engine's prefix cache after the warm-up, just before the timed window,
so a run starts cold whatever ran before it on the same server.

Engines that offer it over HTTP (tried in this order, on the API's origin):
  POST /reset_prefix_cache   vLLM (a development endpoint: the server needs VLLM_SERVER_DEV_MODE=1)
  POST /flush_cache          SGLang
transformers serve's POST /reset is not one: it stops the model's process (the next request loads the model
again), which would put a model load inside the timed window; the in-process engine offers none. Where no
reset is offered the run ends `unsupported` with the reason: a run asked to start cold is never measured warm.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlparse

from harness.errors import UnsupportedError

ENDPOINTS = ("/reset_prefix_cache", "/flush_cache")


async def reset(engine: Any) -> dict[str, Any]:
    """POST the first reset endpoint the engine answers with a 2xx; {endpoint, status, answer}. Raises
    UnsupportedError where it offers none (every endpoint answered 404/405, or the engine is in-process)."""
    url = getattr(engine, "url", None)
    if not url:
        raise UnsupportedError(
            "serving.reset_cache=true: the in-process engines (serving.engine=transformers, sequential) offer no "
            "prefix-cache reset; use serving.engine=openai against vLLM or SGLang, or serving.reset_cache=false"
        )
    from harness.serving.engines import http

    origin = "{0.scheme}://{0.netloc}".format(urlparse(url))
    tried = []
    client = http.client(1)
    try:
        for path in ENDPOINTS:
            answer = await client.post(origin + path, timeout=30)
            if answer.is_success:
                return {"endpoint": path, "status": answer.status_code, "answer": answer.text[:200]}
            tried.append(f"POST {path}: HTTP {answer.status_code}")
            if answer.status_code not in (404, 405):  # offered, but it failed: say so, do not measure warm
                raise UnsupportedError(f"serving.reset_cache=true: {tried[-1]}: {answer.text[:200]}")
    finally:
        await client.aclose()
    raise UnsupportedError(
        f"serving.reset_cache=true: the engine at {origin} offers no prefix-cache reset ({'; '.join(tried)}); "
        "vLLM offers POST /reset_prefix_cache with VLLM_SERVER_DEV_MODE=1, SGLang POST /flush_cache "
        "(transformers serve's POST /reset unloads the model, so it is not used)"
    )
