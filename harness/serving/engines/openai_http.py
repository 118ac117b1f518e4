"""Any OpenAI-compatible endpoint (vLLM, SGLang, TGI, llama.cpp's server, `transformers serve`), streamed.

Requests go to {url}/completions (or /chat/completions) with stream=true; each server-sent event that
carries a choice is one token delivery (the closing chunk only when it carries text), and the output length is
the server's `usage.completion_tokens`, asked for with `stream_options.include_usage` as the OpenAI API defines
it (servers send no usage in a stream unless asked: transformers serve from 5.25, vLLM, OpenAI itself), else
the number of deliveries, a lower bound where the server merges tokens into one chunk (transformers serve holds
back a token that ends inside a multi-byte character and sends it with the next). The result says which
(`output_tokens_counted_by`).
With serving.server.command the harness starts the server itself (harness.serving.engines.server).
"""

from __future__ import annotations

import importlib.metadata
import shutil
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from harness.serving.engines import http
from harness.serving.engines.server import Server
from harness.serving.prompts import Request


class OpenAIEngine:
    name = "openai-compatible"

    def __init__(self, serving_cfg: dict[str, Any], run_dir: str | None, model_path: str | None = None):
        self.cfg = serving_cfg
        self.server: Server | None = None
        if serving_cfg["server"]["command"]:
            log = Path(run_dir or ".") / "server.log"
            self.server = Server(serving_cfg["server"], model_path, log)
        self.url = (serving_cfg["url"] or "").rstrip("/")
        self.model_path = model_path  # the served model's id where the server cannot list its models
        self.model: str | None = serving_cfg.get("served_model")
        self._info: dict[str, Any] = {"name": self.name, "in_process": False}
        self.http = http.client(serving_cfg.get("max_concurrency"))
        self._counted = {"usage": 0, "deliveries": 0}  # requests whose output length came from each source

    async def __aenter__(self) -> OpenAIEngine:
        if self.server is not None:
            self._info["server_startup_s"] = await self.server.start()
            self.url = self.url or f"{self.server.origin}/v1"
            self._info.update(server_command=self.server.argv, server_log=str(self.server.log_path))
        self._info["url"] = self.url
        await self._identify()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.http.aclose()
        if self.server is not None:
            self._info["server_exit_code"] = self.server.stop()

    async def _identify(self) -> None:
        """The served model and the engine's name and version, from what the server says about itself."""
        # also: is it reachable at all (a server that answers with an error is reachable: transformers serve 5.17
        # answers GET /v1/models by scanning the Hugging Face cache, and a 500 where there is none)
        try:
            models, headers = await http.get_json(self.http, self.url + "/models", timeout_s=10)
        except http.HttpError as exc:
            if not (self.model or self.model_path):
                raise
            models, headers = None, exc.headers
            self._info["models_error"] = str(exc)[:300]
            self.model = self.model or self.model_path
        ids = [m.get("id") for m in (models or {}).get("data", [])]
        self.model = self.model or (ids[0] if ids else None)
        self._info.update(served_models=ids, served_model=self.model, server_header=headers.get("server"))
        origin = "{0.scheme}://{0.netloc}".format(urlparse(self.url))
        try:  # vLLM and SGLang answer GET /version
            version, _ = await http.get_json(self.http, origin + "/version", timeout_s=5)
            self._info["version"] = (version or {}).get("version")
            self._info["engine"] = "vllm" if "vllm" in str(headers).lower() else None
        except (OSError, RuntimeError, ValueError, TimeoutError):
            self._info["version"] = None
        if self.server is not None and _is_transformers_serve(self.server.argv):
            self._info["engine"] = "transformers serve"
            self._info["version"] = self._info["version"] or importlib.metadata.version("transformers")

    def info(self) -> dict[str, Any]:
        by = [name for name, n in self._counted.items() if n]
        return {**self._info, "output_tokens_counted_by": "+".join(by) or None}

    async def stream(self, request: Request, deliver: Any) -> int | None:
        chat = self.cfg["api"] == "chat"
        body: dict[str, Any] = {"model": self.model, "max_tokens": request.max_tokens, "stream": True, "temperature": 0}
        body["stream_options"] = {"include_usage": True}  # the server's own count of output tokens, at the end
        if chat:  # a conversation's turns as its messages; else the prompt as one user turn
            turns = request.messages or (("user", request.prompt_text),)
            body["messages"] = [{"role": role, "content": text} for role, text in turns]
        else:
            body["prompt"] = request.prompt_text
        body.update(self.cfg.get("request_extra") or {})
        usage_tokens = None
        async for event in http.post_sse(self.http, self.url + ("/chat/completions" if chat else "/completions"), body):
            now = time.perf_counter()
            if event.get("error"):
                raise RuntimeError(f"engine error: {event['error']}")
            for choice in event.get("choices") or []:
                text = (choice.get("delta") or {}).get("content") if chat else choice.get("text")
                # a chunk before the last one is a delivery even with empty text (a token that ends inside a
                # multi-byte character decodes to ""); the closing chunk counts only if it carries text
                # (completions only: a chat stream opens with an empty role-only delta)
                if text or (not chat and text is not None and choice.get("finish_reason") is None):
                    deliver(now, 1)
            usage = event.get("usage") or {}
            usage_tokens = usage.get("completion_tokens", usage_tokens)
            cached = (usage.get("prompt_tokens_details") or {}).get("cached_tokens")
            if cached is not None and hasattr(deliver, "cached"):  # the engine's prefix-cache hit, where it says
                deliver.cached(int(cached))
        self._counted["deliveries" if usage_tokens is None else "usage"] += 1
        return usage_tokens


def _is_transformers_serve(argv: list[str]) -> bool:
    """`transformers serve ...` from this interpreter's environment: its version is the one installed here."""
    exe = shutil.which(argv[0]) if argv else None
    same_env = exe is not None and Path(exe).parent == Path(sys.executable).parent
    return same_env and Path(argv[0]).name == "transformers" and len(argv) > 1 and argv[1] == "serve"
