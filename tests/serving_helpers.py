"""Helpers for the serving tests: a tiny local model folder with a byte-level tokenizer (ids = UTF-8 bytes,
as the harness's own prompts), and `transformers serve` started on the loopback address."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

SERVE = str(Path(sys.executable).parent / "transformers")  # the console script of this environment
CB_BOUNDS = ["--cb-num-blocks", "64", "--cb-max-batch-tokens", "2048"]  # KV pages and tokens per step, both fixed


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's byte -> printable character table (what tokenizers' ByteLevel pre-tokenizer uses)."""
    bs = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    cs, n = bs[:], 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs), strict=True))


def tiny_model_dir(path: Path) -> Path:
    """A 1-layer llama with random weights and a byte-level tokenizer, saved as a local model folder."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import AutoModelForCausalLM, LlamaConfig, PreTrainedTokenizerFast

    vocab = {ch: b for b, ch in _bytes_to_unicode().items()}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tok.decoder = decoders.ByteLevel()
    PreTrainedTokenizerFast(tokenizer_object=tok).save_pretrained(path)
    cfg = LlamaConfig(
        vocab_size=256,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
        max_position_embeddings=256,
        bos_token_id=None,
        eos_token_id=None,
    )
    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(cfg).save_pretrained(path)
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class TransformersServe:
    """`transformers serve <model dir>` on 127.0.0.1, offline, in its own process group."""

    def __init__(self, model_dir: Path, log: Path):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/v1"
        argv = [SERVE, "serve", str(model_dir), "--host", "127.0.0.1", "--port", str(self.port), "--device", "cpu"]
        # a bounded cache: unbounded, transformers serve 5.17 sizes it from free memory, which on a CPU is all RAM
        argv += ["--continuous-batching", *CB_BOUNDS]
        self.log = log
        with open(log, "wb") as f:
            env = {**os.environ, "HF_HUB_OFFLINE": "1"}
            self.proc = subprocess.Popen(argv, stdout=f, stderr=subprocess.STDOUT, env=env, start_new_session=True)

    def wait_healthy(self, timeout_s: float = 240) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.log.read_text()[-2000:]
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=2) as r:
                    if r.status == 200 and json.loads(r.read()).get("status") == "ok":
                        return
            except OSError:
                time.sleep(0.5)
        raise AssertionError(f"transformers serve not healthy in {timeout_s} s: {self.log.read_text()[-2000:]}")

    def posts(self) -> int:
        return self.log.read_text(errors="replace").count('"POST /v1/completions')

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)


class ContextLimitedServer:
    """A stand-in OpenAI completions server on 127.0.0.1 that refuses, with HTTP 400, a request whose prompt
    (1 token per UTF-8 byte, as the byte-level tokenizer above) and output do not fit `context` tokens — what
    transformers serve 5.25 does — and otherwise streams `max_tokens` one-token chunks; it keeps every prompt."""

    def __init__(self, context: int):
        import http.server
        import threading

        self.context, self.prompts = context, []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - http.server's name
                body = json.dumps({"data": [{"id": "stand-in"}]}).encode() if self.path == "/v1/models" else b"{}"
                self.send_response(200 if self.path == "/v1/models" else 404)
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self):  # noqa: N802
                req = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                n_in, n_out = len(req["prompt"].encode()), int(req["max_tokens"])
                outer.prompts.append((n_in, n_out))
                if n_in + n_out > outer.context:
                    self.send_response(400)
                    self.end_headers()
                    msg = f"prompt of {n_in} tokens + {n_out} new tokens: the context is at most {outer.context}"
                    self.wfile.write(json.dumps({"error": {"message": msg}}).encode())
                    return
                self.send_response(200)
                self.send_header("content-type", "text/event-stream")
                self.end_headers()
                events = [{"choices": [{"index": 0, "text": "a"}]} for _ in range(n_out)]
                events.append({"choices": [], "usage": {"prompt_tokens": n_in, "completion_tokens": n_out}})
                self.wfile.write(("".join(f"data: {json.dumps(e)}\n\n" for e in events) + "data: [DONE]\n\n").encode())

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
