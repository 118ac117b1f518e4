"""The serving scenario end to end: the real CLI against real engines (transformers' continuous batching
in-process; `transformers serve` over HTTP on 127.0.0.1), tiny loads, and the bad inputs."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
from conftest import load_results, run_cli
from serving_helpers import SERVE, TransformersServe, free_port, tiny_model_dir

from harness import accounting, metrics, scenarios

pytestmark = pytest.mark.e2e

# tiny: few requests, short outputs, one repeat; the model is the tiny preset
SMALL = [
    "workload=serving",
    "serving.num_requests=8",
    "serving.warmup_requests=1",
    "serving.input_len=16",
    "serving.output_len=6",
    "serving.request_timeout_s=60",
    "repeats=1",
]


def _serving_run(harness, *args, timeout=300):
    return harness(*SMALL, *args, fast=False, timeout=timeout)


@pytest.mark.alone  # a rate against the clock / the machine's quiet
def test_transformers_engine_two_rates_throughput_grows(harness):
    proc, root = _serving_run(harness, "-m", "sweep=rates", "serving.arrival=constant", "serving.rate=1,40")
    assert proc.returncode == 0, proc.stderr
    by = {r["key_fields"]["rate"]: r for r in load_results(root / "rates")}
    assert set(by) == {1.0, 40.0} and all(r["status"] == "ok" for r in by.values()), [r["reason"] for r in by.values()]
    low, high = by[1.0]["metrics"], by[40.0]["metrics"]
    # at 1 req/s the engine keeps up: throughput is the offered rate (8 sends over 7 s + the last answer)
    assert 0.5 < low["request_throughput_req_per_s"] <= 8 / 7
    assert high["request_throughput_req_per_s"] > 1.5 * low["request_throughput_req_per_s"]
    for m in (low, high):
        assert m["ttft_s"]["n"] == m["e2el_s"]["n"] == m["tpot_s"]["n"] == 8
        assert m["itl_s"]["n"] == 8 * 5  # 6 tokens per request: 5 gaps each
        assert m["ttft_s"]["p50"] <= m["ttft_s"]["p95"] <= m["ttft_s"]["p99"] <= m["e2el_s"]["max"]
        assert m["output_tokens"] == 8 * 6 and m["send_lateness_s"]["n"] == 8
    r = by[40.0]
    assert r["serving"]["engine"]["name"] == "transformers-continuous-batching" and r["serving"]["engine"]["version"]
    assert r["quality"]["status"] == "ok"  # the weights served, against the fp32 reference (itself here)
    # tiny's default weights are the harness-trained checkpoint, served as such (not random weights)
    assert r["weights"]["kind"] == "trained" and r["quality"]["quality_meaningful"] is not False
    assert r["quality"]["loss_nats"] < 4.5  # random weights score ~5.6 nats/token on the held-out text
    assert r["energy"]["j_per_token"] is not None and r["metrics"]["j_per_1m_output_tokens"] == pytest.approx(
        r["energy"]["j_per_token"] * 1e6
    )
    assert r["repeats"][0]["ttft_s_n"] == 8 and "tiny fp32 transformers constant rate=40" in proc.stdout
    assert "TTFT p99 ms" in proc.stdout and "goodput req/s" in proc.stdout  # the summary, from the registry
    assert "USD/1M out tok" in proc.stdout and "held-out loss [95% CI]" in proc.stdout  # cost and quality too
    # what the worker wrote is what the scenario and the worker declare, and all of it is registered
    written = set(r["metrics"]) | {k for rep in r["repeats"] for k in rep}
    assert written <= set(metrics.names()), sorted(written - set(metrics.names()))
    assert written <= set(scenarios.get("serving").writes) | set(accounting.COMMON_METRICS)
    # each load window is priced from its own output throughput, where the hardware has a price at all
    assert (r["repeats"][0]["usd_per_1m_output_tokens"] is None) == (r["cost"] is None)


@pytest.mark.alone  # a rate against the clock / the machine's quiet
def test_capacity_search_with_a_loose_slo(harness):
    proc, root = _serving_run(
        harness,
        "sweep=cap",
        "serving.search=max_rate",
        "serving.slo.e2el_ms=60000",
        "serving.search_start_rate=2",
        "serving.search_max_probes=2",
        "serving.search_probe_s=3",
        "hardware.usd_per_hour=1.0",
    )
    assert proc.returncode == 0, proc.stderr
    (r,) = load_results(root / "cap")
    assert r["status"] == "ok", r["reason"]
    cap = r["serving"]["capacity"]
    assert [p["rate_req_per_s"] for p in cap["probes"]] == [2.0, 4.0] and all(p["passed"] for p in cap["probes"])
    assert r["metrics"]["capacity_req_per_s"] == 4.0 and not cap["converged"] and "at least 4" in cap["reason"]
    # each probe offered arrivals for up to search_probe_s and says why it ended; the tolerances are stated
    assert all(p["probe_stopped"] for p in cap["probes"]) and cap["keep_up_tolerance"] == 0.1 and cap["probe_s"] == 3
    m = r["metrics"]
    # $ per 1 M output tokens at capacity = USD per second / output tokens per second x 1e6
    assert m["usd_per_1m_output_tokens"] == pytest.approx(1.0 / 3600 / m["output_tok_per_s"] * 1e6)
    assert m["j_per_1m_output_tokens"] > 0 and "capacity probe" in m["j_per_1m_output_tokens_method"]
    assert r["repeats"] == [] and cap["probes"][1]["request_throughput_req_per_s"] > 0  # probes are not repeats


def test_slo_no_probe_meets_is_an_error_with_its_reason(harness):
    proc, root = _serving_run(
        harness,
        "sweep=nocap",
        "serving.search=max_rate",
        "serving.slo.ttft_ms=0.001",
        "serving.search_max_probes=2",
        "serving.search_probe_s=2",
    )
    assert proc.returncode == 0, proc.stderr  # a failed run is data: the sweep goes on
    (r,) = load_results(root / "nocap")
    assert r["status"] == "error" and r["reason"].startswith("ServingFailed: no probe met the SLO: the lowest, 0.5")
    assert [p["passed"] for p in r["serving"]["capacity"]["probes"]] == [False, False]


@pytest.mark.parametrize("bad", ["serving.rate=0", "serving.rate=-2"])
def test_rate_not_positive_is_refused_in_one_line(tmp_path, bad):
    proc = run_cli("workload=serving", bad, cwd=tmp_path, timeout=60)
    assert proc.returncode == 2
    value = bad.split("=")[1]
    assert proc.stderr.strip().splitlines() == [
        f"harness: error: serving.rate={float(value)} is not valid: must be > 0"
    ]


def test_unreachable_url_is_an_error_result(harness):
    url = f"http://127.0.0.1:{free_port()}/v1"
    proc, root = _serving_run(harness, "sweep=unreach", "serving.engine=openai", f"serving.url={url}")
    assert proc.returncode == 0, proc.stderr
    (r,) = load_results(root / "unreach")
    assert r["status"] == "error", r["reason"]
    assert f"ConnectionError: cannot reach {url}/models" in r["reason"], r["reason"]


def test_openai_engine_against_transformers_serve_then_killed_mid_run(harness, tmp_path):
    model = tiny_model_dir(tmp_path / "tinyllm")
    server = TransformersServe(model, tmp_path / "serve.log")
    try:
        server.wait_healthy()
        base = ["serving.engine=openai", f"serving.url={server.url}", "model=local", f"model.path={model}"]
        proc, root = _serving_run(harness, "sweep=http", *base, "serving.rate=8")
        assert proc.returncode == 0, proc.stderr
        (r,) = load_results(root / "http")
        assert r["status"] == "ok", r["reason"]
        engine, m = r["serving"]["engine"], r["metrics"]
        assert engine["server_header"] == "uvicorn" and engine["served_model"] == str(model)
        # the server's usage.completion_tokens, asked for with stream_options (transformers serve >= 5.25 sends
        # none otherwise, and its chunks can carry two tokens each: counting them would undercount)
        assert engine["output_tokens_counted_by"] == "usage"
        assert m["requests_completed"] == 8 and m["output_tokens"] == 8 * 6
        assert m["itl_s"]["n"] > 0 and m["ttft_s"]["n"] == 8  # streamed: deliveries seen one by one
        assert r["quality"]["status"] == "skipped" and r["precision"]["method"].startswith("the remote engine")
        # the weights stay with the server: the harness built the model's shape on meta, for its figures only
        assert m["params"] > 0 and m["flops_per_token_decode"] > 0 and m["mfu_decode"] > 0

        # the engine dies mid-run: the requests after it fail with their reason, and the run says so
        before = server.posts()
        late = [*SMALL, *base, "serving.num_requests=40", "serving.rate=4", "sweep=killed"]
        cmd = [sys.executable, "-m", "harness", *late, f"results_dir={root}"]
        run = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 240
        while server.posts() < before + 4 and time.monotonic() < deadline and run.poll() is None:
            time.sleep(0.2)
        server.kill()
        out, err = run.communicate(timeout=300)
        assert run.returncode == 0, err
        (k,) = load_results(root / "killed")
        assert k["status"] == "error" and "requests failed or timed out" in k["reason"], k["reason"]
        assert k["metrics"]["requests_completed"] < 40 and k["metrics"]["failure_reasons"]
    finally:
        server.kill()


def test_harness_starts_and_stops_the_server(harness, tmp_path):
    model = tiny_model_dir(tmp_path / "tinyllm")
    argv = f"[{SERVE},serve,'{{model_path}}',--host,127.0.0.1,--port,'{{port}}',--device,cpu]"
    proc, root = _serving_run(
        harness,
        "sweep=started",
        "serving.engine=openai",
        "model=local",
        f"model.path={model}",
        f"serving.server.command={argv}",
    )
    assert proc.returncode == 0, proc.stderr
    (r,) = load_results(root / "started")
    assert r["status"] == "ok", r["reason"]
    engine = r["serving"]["engine"]
    assert engine["engine"] == "transformers serve" and engine["version"] and engine["server_exit_code"] is not None
    log = (root / "started").glob("*/server.log")
    assert "Uvicorn running" in next(log).read_text()
