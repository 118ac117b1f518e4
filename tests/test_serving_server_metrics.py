"""Known answers for the server-side metrics (harness.serving.server_metrics): vLLM, SGLang and TGI exposition
pages parsed with prometheus_client's parser; and a run scraping a tiny local Prometheus page end to end."""

from __future__ import annotations

import http.server
import threading

import pytest
from conftest import load_results

from harness.serving import server_metrics

VLLM = """# HELP vllm:num_requests_running Number of requests in model execution batches.
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{engine="0",model_name="m"} 3.0
vllm:num_requests_running{engine="1",model_name="m"} 2.0
# HELP vllm:num_requests_waiting Number of requests waiting to be processed.
# TYPE vllm:num_requests_waiting gauge
vllm:num_requests_waiting{engine="0",model_name="m"} 7.0
# HELP vllm:kv_cache_usage_perc KV-cache usage. 1 means 100 percent usage.
# TYPE vllm:kv_cache_usage_perc gauge
vllm:kv_cache_usage_perc{engine="0",model_name="m"} 0.25
vllm:kv_cache_usage_perc{engine="1",model_name="m"} 0.75
# HELP vllm:prefix_cache_queries_total Prefix cache queries, in terms of number of queried tokens.
# TYPE vllm:prefix_cache_queries_total counter
vllm:prefix_cache_queries_total{engine="0",model_name="m"} 1000.0
# HELP vllm:prefix_cache_hits_total Prefix cache hits, in terms of number of cached tokens.
# TYPE vllm:prefix_cache_hits_total counter
vllm:prefix_cache_hits_total{engine="0",model_name="m"} 400.0
"""
VLLM_OLD = """# TYPE vllm:gpu_cache_usage_perc gauge
vllm:gpu_cache_usage_perc{model_name="m"} 0.5
# TYPE vllm:num_requests_waiting gauge
vllm:num_requests_waiting{model_name="m"} 0.0
"""
SGLANG = """# HELP sglang:num_running_reqs The number of running requests.
# TYPE sglang:num_running_reqs gauge
sglang:num_running_reqs{model_name="m"} 8
# HELP sglang:num_queue_reqs The number of requests in the waiting queue.
# TYPE sglang:num_queue_reqs gauge
sglang:num_queue_reqs{model_name="m"} 4
# HELP sglang:token_usage The token usage.
# TYPE sglang:token_usage gauge
sglang:token_usage{model_name="m"} 0.52
# HELP sglang:cache_hit_rate The prefix cache hit rate.
# TYPE sglang:cache_hit_rate gauge
sglang:cache_hit_rate{model_name="m"} 0.28
"""
TGI = """# TYPE tgi_queue_size gauge
tgi_queue_size 5
# TYPE tgi_batch_current_size gauge
tgi_batch_current_size 12
# TYPE tgi_request_count counter
tgi_request_count 40
"""


def test_vllm_page():
    got = server_metrics.parse(VLLM)
    assert got == {
        "running_requests": 5.0,  # summed over the two engines behind the endpoint
        "waiting_requests": 7.0,
        "kv_cache_usage": 0.5,  # a fraction: averaged
        "prefix_cache_queries": 1000.0,
        "prefix_cache_hits": 400.0,
    }
    assert server_metrics.parse(VLLM_OLD) == {"waiting_requests": 0.0, "kv_cache_usage": 0.5}  # before v0.10


def test_sglang_and_tgi_pages():
    assert server_metrics.parse(SGLANG) == {
        "running_requests": 8.0,
        "waiting_requests": 4.0,
        "kv_cache_usage": 0.52,
        "prefix_cache_hit_rate": 0.28,
    }
    assert server_metrics.parse(TGI) == {"running_requests": 12.0, "waiting_requests": 5.0}
    assert server_metrics.parse("# an unrelated page\nprocess_cpu_seconds_total 3.5\n") == {}


def test_summary_over_a_window():
    samples = [{"t": 0.0, "waiting_requests": 9}, {"t": 1.0, "waiting_requests": 2, "kv_cache_usage": 0.1},
               {"t": 2.0, "waiting_requests": 4, "kv_cache_usage": 0.3}, {"t": 3.0}]  # fmt: skip
    got = server_metrics.summarize(samples, 0.5, 3.0)
    assert got == {
        "server_waiting_requests_mean": 3.0,
        "server_waiting_requests_max": 4,
        "server_running_requests_mean": None,
        "server_kv_cache_usage_max": 0.3,
        "server_metrics_samples": 3,
    }


class _Page(http.server.BaseHTTPRequestHandler):
    hits = 0

    def do_GET(self):  # noqa: N802 - http.server's name
        type(self).hits += 1
        body = f"# TYPE vllm:num_requests_waiting gauge\nvllm:num_requests_waiting {type(self).hits}\n".encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.mark.e2e
def test_a_run_scrapes_the_page_before_during_and_after(harness):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Page)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/metrics"
        args = ["workload=serving", "serving.num_requests=8", "serving.warmup_requests=1", "serving.input_len=16"]
        args += ["serving.output_len=6", "repeats=1", "serving.arrival=constant", "serving.rate=4", "sweep=prom"]
        proc, root = harness(*args, f"serving.metrics_url={url}", "serving.metrics_interval_s=0.2", fast=False)
        assert proc.returncode == 0, proc.stderr
        (r,) = load_results(root / "prom")
        assert r["status"] == "ok", r["reason"]
        sm = r["serving"]["server_metrics"]
        phases = [s["phase"] for s in sm["samples"]]
        assert phases[0] == "before" and phases[-1] == "after" and phases.count("during") >= 3 and not sm["errors"]
        waiting = [s["waiting_requests"] for s in sm["samples"]]
        assert waiting == sorted(waiting)  # the page counts its own scrapes: each sample is a later one
        m = r["metrics"]
        assert m["server_metrics_samples"] >= 3
        assert m["server_waiting_requests_max"] >= m["server_waiting_requests_mean"]
        assert r["repeats"][0]["server_waiting_requests_max"] is not None
    finally:
        server.shutdown()
        server.server_close()
