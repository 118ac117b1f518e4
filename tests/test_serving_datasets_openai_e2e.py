"""serving.dataset against a real `transformers serve` on 127.0.0.1 (serving.engine=openai): a conversation set
and a replayed trace (the samples harness.serving.samples makes), and serving.reset_cache on an engine that
offers no prefix-cache reset; one server for all three, tiny loads."""

from __future__ import annotations

import asyncio
import http.server
import threading

import pytest
from conftest import load_results
from serving_helpers import ContextLimitedServer, TransformersServe, tiny_model_dir

from harness.errors import UnsupportedError
from harness.serving import cache_reset, samples

pytestmark = pytest.mark.e2e

SMALL = ["workload=serving", "serving.warmup_requests=1", "serving.input_len=16", "serving.output_len=6", "repeats=1"]
SMALL += ["serving.request_timeout_s=60"]


def test_conversations_trace_and_reset_cache_against_transformers_serve(harness, tmp_path):
    files = samples.write_all(tmp_path / "samples")
    model = tiny_model_dir(tmp_path / "tinyllm")
    server = TransformersServe(model, tmp_path / "serve.log")
    try:
        server.wait_healthy()
        base = ["serving.engine=openai", f"serving.url={server.url}", "model=local", f"model.path={model}"]
        conv = ["sweep=conv", "serving.dataset=sharegpt", f"serving.dataset_path={files['sharegpt']}", "serving.rate=8"]
        trace = ["sweep=trace", "serving.dataset=trace", f"serving.dataset_path={files['mooncake']}"]
        proc, root = harness(*SMALL, *base, *conv, fast=False, timeout=300)
        assert proc.returncode == 0, proc.stderr
        proc, _ = harness(*SMALL, *base, *trace, f"results_dir={root}", fast=False, timeout=300)
        assert proc.returncode == 0, proc.stderr
        proc, _ = harness(*SMALL, *base, "sweep=reset", "serving.reset_cache=true", f"results_dir={root}",
                          fast=False, timeout=300)  # fmt: skip
    finally:
        server.kill()
    (c,) = load_results(root / "conv")
    assert c["status"] == "ok", c["reason"]
    reqs = c["serving"]["requests"]
    assert len(reqs) == 8 and {q["conversation"] for q in reqs} and all(q["turn"] is not None for q in reqs)
    for conv_id in {q["conversation"] for q in reqs}:
        turns = sorted((q for q in reqs if q["conversation"] == conv_id), key=lambda q: q["turn"])
        assert [q["turn"] for q in turns] == list(range(len(turns)))
        turns = [q for q in turns if q["error"] is None]
        for a, b in zip(turns, turns[1:], strict=False):  # a later turn carries the history: its prompt grows
            grows = b["input_tokens"] > a["input_tokens"] + a["output_tokens"] - 1
            assert (grows or b["history_turns_dropped"] > 0) and b["sent_s"] >= a["done_s"]
    # the longest history (276 tokens) is past the tiny model's 256 (its config.json): its oldest exchange is left
    # out, so transformers serve 5.25 (which refuses a prompt past the context) serves every turn, as 5.17 does
    assert [t["n"] for t in c["metrics"]["ttft_s_by_turn"]] == [4, 3, 1] and c["metrics"]["requests_failed"] == 0
    assert c["serving"]["dataset"]["history_turns_dropped"] >= 1

    (t,) = load_results(root / "trace")
    assert t["status"] == "ok", t["reason"] and t["serving"]["arrival"] == "trace"
    reqs = t["serving"]["requests"]
    assert [q["scheduled_s"] for q in reqs] == pytest.approx(list(samples.TRACE_OFFSETS_S), abs=1e-5)
    assert all(q["sent_s"] >= q["scheduled_s"] and q["send_lateness_s"] is not None for q in reqs)
    assert t["metrics"]["send_lateness_s"]["n"] == 8

    (r,) = load_results(root / "reset")  # transformers serve has no prefix-cache reset: not measured warm
    assert r["status"] == "unsupported" and "POST /reset_prefix_cache: HTTP 404" in r["reason"]
    assert "POST /flush_cache: HTTP 404" in r["reason"] and "unloads the model" in r["reason"]


class _VllmLike(http.server.BaseHTTPRequestHandler):
    def do_POST(self):  # noqa: N802 - http.server's name
        code = 200 if self.path == "/reset_prefix_cache" else 404
        self.send_response(code)
        self.end_headers()
        self.wfile.write(b"" if code == 200 else b"not found")

    def log_message(self, *args):
        pass


def test_reset_cache_posts_to_vllms_endpoint_and_records_the_answer():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _VllmLike)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        engine = type("E", (), {"url": f"http://127.0.0.1:{server.server_port}/v1"})()
        assert asyncio.run(cache_reset.reset(engine)) == {
            "endpoint": "/reset_prefix_cache",
            "status": 200,
            "answer": "",
        }
    finally:
        server.shutdown()
    with pytest.raises(UnsupportedError, match="in-process engine"):
        asyncio.run(cache_reset.reset(object()))


def test_conversation_histories_are_trimmed_to_the_servers_context(harness, tmp_path):
    """A history past the model's context (256 tokens) loses its oldest exchanges: no request is refused."""
    files = samples.write_all(tmp_path / "samples")
    model = tiny_model_dir(tmp_path / "tinyllm")
    server = ContextLimitedServer(context=256)
    try:
        args = ["serving.engine=openai", f"serving.url={server.url}", "model=local", f"model.path={model}"]
        args += ["serving.dataset=sharegpt", f"serving.dataset_path={files['sharegpt']}", "serving.rate=8"]
        proc, root = harness(*SMALL, *args, fast=False, timeout=300)
    finally:
        server.close()
    assert proc.returncode == 0, proc.stderr
    (c,) = load_results(root)
    assert c["status"] == "ok", c["reason"]
    assert c["metrics"]["requests_failed"] == 0 and c["metrics"]["requests_completed"] == 8
    assert all(n_in + n_out <= 256 for n_in, n_out in server.prompts)
    reqs = c["serving"]["requests"]
    trimmed = [q for q in reqs if q["history_turns_dropped"]]
    assert trimmed and all(q["history_tokens_dropped"] > 0 and q["turn"] >= 1 for q in trimmed)
    ds = c["serving"]["dataset"]
    assert ds["histories_trimmed"] == len(trimmed) and ds["prompts_cut"] == 0
    assert ds["history_turns_dropped"] == sum(q["history_turns_dropped"] for q in reqs)
