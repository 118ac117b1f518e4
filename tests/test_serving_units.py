"""Known answers for the serving scenario's arithmetic: arrivals, latency definitions, goodput, capacity search."""

from __future__ import annotations

import asyncio
import math

import numpy as np
import pytest

from harness.serving import arrivals, capacity, loadgen, metrics
from harness.serving.metrics import Outcome
from harness.serving.prompts import Request, build


# ---- arrivals ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind,burstiness,cv", [("poisson", 1.0, 1.0), ("gamma", 0.25, 2.0), ("gamma", 4.0, 0.5)])
def test_mean_rate_and_burstiness(kind, burstiness, cv):
    gaps = arrivals.gaps_s(kind, rate=8.0, n=200_000, burstiness=burstiness, seed=1)
    assert gaps.mean() == pytest.approx(1 / 8.0, rel=0.01)  # the mean rate is the rate asked for
    assert gaps.std() / gaps.mean() == pytest.approx(cv, rel=0.02)  # CV = 1 / sqrt(burstiness)


def test_constant_and_schedule():
    assert arrivals.schedule_s("constant", 4.0, 5) == pytest.approx([0.0, 0.25, 0.5, 0.75, 1.0])
    # duration keeps the arrivals before it, still at most n
    assert arrivals.schedule_s("constant", 4.0, 100, duration_s=1.0) == pytest.approx([0.0, 0.25, 0.5, 0.75])
    a = arrivals.schedule_s("poisson", 3.0, 50, seed=7)
    assert a == arrivals.schedule_s("poisson", 3.0, 50, seed=7) != arrivals.schedule_s("poisson", 3.0, 50, seed=8)
    assert all(b > x for x, b in zip(a, a[1:], strict=False))


@pytest.mark.parametrize("rate", [0, -1.0])
def test_rate_must_be_positive(rate):
    with pytest.raises(ValueError, match="rate"):
        arrivals.gaps_s("poisson", rate, 3)


def test_prompts_lengths_are_seeded_and_in_range():
    reqs = build(64, input_len=20, output_len=10, spread=0.5, seed=3)
    assert [r.prompt_ids for r in reqs] == [r.prompt_ids for r in build(64, 20, 10, 0.5, 3)]
    assert {len(r.prompt_ids) for r in reqs} <= set(range(10, 31)) and len({len(r.prompt_ids) for r in reqs}) > 3
    assert all(5 <= r.max_tokens <= 15 for r in reqs)
    assert all(r.prompt_text.encode("utf-8", errors="replace") for r in reqs)


# ---- latency definitions ------------------------------------------------------------------------------------
def _outcome(sent=10.0, tokens=(10.2, 10.3, 10.5, 10.6), done=10.7, n=None, error=None, scheduled=None):
    o = Outcome(0, 5, scheduled, sent, sent, list(tokens), n if n is not None else len(tokens), done, error)
    return o


def test_latencies_follow_vllm():
    lat = metrics.latencies(_outcome())
    assert lat["ttft_s"] == pytest.approx(0.2)
    assert lat["e2el_s"] == pytest.approx(0.7)
    # TPOT excludes the first token: (0.7 - 0.2) / (4 - 1); not 0.7 / 4 (GuideLLM-style) nor the ITL mean
    assert lat["tpot_s"] == pytest.approx(0.5 / 3)
    assert lat["itl_s"] == pytest.approx([0.1, 0.2, 0.1])
    one = metrics.latencies(_outcome(tokens=(10.2,), done=10.25))
    assert one["tpot_s"] is None and one["itl_s"] == []


def test_summary_counts_goodput_and_failures():
    slo = {"ttft_ms": 250.0, "tpot_ms": None, "e2el_ms": 800.0}
    good = _outcome()  # ttft 200 ms, e2el 700 ms: meets both
    slow_first = _outcome(tokens=(10.3, 10.4), done=10.5)  # ttft 300 ms > 250
    slow_end = _outcome(tokens=(10.1, 10.85), done=10.9)  # e2el 900 ms > 800
    timed_out = _outcome(tokens=(), done=None, error="timeout: no complete answer within 1 s")
    failed = _outcome(tokens=(), done=None, error="error: ConnectionRefusedError")
    m = metrics.summarize_run([good, slow_first, slow_end, timed_out, failed], 2.0, slo, 0.01)
    assert m["requests_sent"] == 5 and m["requests_completed"] == 3
    assert m["requests_good"] == 1 and m["goodput_req_per_s"] == pytest.approx(0.5)
    assert m["request_throughput_req_per_s"] == pytest.approx(1.5)
    assert m["output_tok_per_s"] == pytest.approx((4 + 2 + 2) / 2.0)
    assert m["requests_timed_out"] == 1 and m["requests_failed"] == 1
    assert m["slo_attainment"] == pytest.approx(1 / 5)
    assert m["ttft_s"]["n"] == 3 and m["ttft_s"]["p50"] == pytest.approx(0.2)
    assert m["itl_s"]["n"] == 3 + 1 + 1


def test_distribution_has_p95_with_n():
    d = metrics.distribution([float(x) for x in range(1, 101)])
    assert d["n"] == 100 and d["p50"] == pytest.approx(50.5) and d["p95"] == pytest.approx(95.05)
    assert d["p99"] == pytest.approx(99.01)


def test_percentile_meets_counts_failures_as_infinite():
    slo = {"ttft_ms": 250.0, "tpot_ms": None, "e2el_ms": None}
    ok = [_outcome() for _ in range(9)]
    assert metrics.percentile_meets(ok, slo, 99) == (True, "met")
    bad = [*ok, _outcome(tokens=(), done=None, error="timeout: x")]
    met, why = metrics.percentile_meets(bad, slo, 99)
    assert not met and "failed request" in why
    assert metrics.percentile_meets(bad, slo, 50)[0]  # p50 of 10 is among the 9 good ones


def test_lateness_and_generator_flag():
    on_time = _outcome(scheduled=10.0)
    late = Outcome(1, 5, 10.0, 10.05, 10.05, [10.2], 1, 10.3)
    m = metrics.summarize_run([on_time, late], 1.0, {}, lateness_tolerance_s=0.01)
    assert m["send_lateness_s"]["max"] == pytest.approx(0.05) and m["generator_bottleneck"]
    assert not metrics.summarize_run([on_time], 1.0, {}, 0.01)["generator_bottleneck"]


# ---- capacity search ----------------------------------------------------------------------------------------
def _probe_below(limit: float):
    async def probe(rate: float) -> capacity.Probe:
        return capacity.Probe(rate, rate <= limit, "met" if rate <= limit else "ttft p99 too high", {})

    return probe


def test_search_brackets_then_bisects():
    found = asyncio.run(capacity.search(_probe_below(5.0), start_rate=1.0, max_probes=12, tolerance=0.1))
    rates = [p.rate_req_per_s for p in found.probes]
    assert rates[:4] == [1.0, 2.0, 4.0, 8.0]  # doubling until the first failure
    assert found.converged and found.capacity_req_per_s <= 5.0 < found.lowest_failing_req_per_s
    assert (found.lowest_failing_req_per_s - found.capacity_req_per_s) / found.capacity_req_per_s <= 0.1


def test_search_is_bounded_and_says_so():
    found = asyncio.run(capacity.search(_probe_below(1e9), 1.0, max_probes=3, tolerance=0.1))
    assert len(found.probes) == 3 and found.capacity_req_per_s == 4.0 and not found.converged
    assert "at least 4" in found.reason
    none = asyncio.run(capacity.search(_probe_below(0.0), 1.0, max_probes=3, tolerance=0.1))
    assert none.capacity_req_per_s is None and [p.rate_req_per_s for p in none.probes] == [1.0, 0.5, 0.25]
    assert none.reason.startswith("no probe met the SLO: the lowest, 0.25 req/s")


# ---- the load generator with a stand-in engine (its own logic only; real engines: test_serving_e2e) --------
class _Engine:
    def __init__(self, delay_s=0.0, fail_at=None):
        self.delay_s, self.fail_at, self.in_flight, self.max_in_flight = delay_s, fail_at, 0, 0

    async def stream(self, request: Request, deliver) -> None:
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if request.index == self.fail_at:
                raise RuntimeError("engine exploded")
            await asyncio.sleep(self.delay_s)
            import time

            deliver(time.perf_counter(), request.max_tokens)
        finally:
            self.in_flight -= 1


def _plan(**kw):
    base = dict(arrival="constant", rate=200.0, burstiness=1.0, concurrency=2, max_concurrency=None)
    base.update(dict(num_requests=10, duration_s=None, timeout_s=5.0, seed=0))
    base.update(kw)
    return loadgen.Plan(**base)


def _requests(n=10):
    return [Request(i, [1, 2, 3], "abc", 4) for i in range(n)]


def test_open_loop_sends_every_request_on_schedule_order():
    run = asyncio.run(loadgen.run(_Engine(), _requests(), _plan()))
    assert len(run.outcomes) == 10 and all(o.ok for o in run.outcomes)
    due = [o.scheduled_at - run.started_at for o in run.outcomes]
    assert due == pytest.approx([i / 200.0 for i in range(10)])
    assert all(o.dispatched_at >= o.scheduled_at for o in run.outcomes)  # never early


def test_max_concurrency_caps_in_flight_and_records_the_wait():
    engine = _Engine(delay_s=0.05)
    run = asyncio.run(loadgen.run(engine, _requests(), _plan(max_concurrency=2)))
    assert engine.max_in_flight == 2
    assert max(o.sent_at - o.dispatched_at for o in run.outcomes) > 0  # the cap's queueing is recorded apart


def test_closed_loop_users_and_failures_are_data():
    engine = _Engine(delay_s=0.01, fail_at=3)
    run = asyncio.run(loadgen.run(engine, _requests(), _plan(arrival="closed", concurrency=3)))
    assert engine.max_in_flight <= 3 and len(run.outcomes) == 10
    failed = [o for o in run.outcomes if not o.ok]
    assert len(failed) == 1 and failed[0].error == "error: RuntimeError: engine exploded"
    assert all(o.scheduled_at is None for o in run.outcomes)


def test_request_timeout_is_recorded_never_a_hang():
    run = asyncio.run(loadgen.run(_Engine(delay_s=10.0), _requests(2), _plan(num_requests=2, timeout_s=0.05)))
    assert [o.error for o in run.outcomes] == ["timeout: no complete answer within 0.05 s"] * 2
    assert not math.isnan(run.window_s)


def test_gamma_schedule_used_by_loadgen_is_seeded():
    a = np.diff(arrivals.schedule_s("gamma", 10.0, 20, burstiness=0.5, seed=4))
    b = np.diff(arrivals.schedule_s("gamma", 10.0, 20, burstiness=0.5, seed=4))
    assert np.array_equal(a, b)


def test_in_process_engine_failing_mid_run_fails_requests_with_a_reason_not_a_hang():
    """transformers' continuous batching with a model whose forward starts raising after a few steps."""
    import torch

    from harness import models
    from harness.serving.engines.transformers_cb import TransformersEngine

    model = models.build(models.preset("tiny", num_hidden_layers=1), torch.float32, "cpu", 0)
    calls = {"n": 0, "armed": False}

    def explode(module, args, output):  # armed once the engine is up: its own warm-up runs the model too
        calls["n"] += calls["armed"]
        if calls["n"] > 3:
            raise RuntimeError("injected device fault")

    model.model.layers[0].register_forward_hook(explode)
    cfg = {"output_len": 4, "input_len": 8, "len_range": 0.0, "arrival": "constant", "num_requests": 6}
    cfg.update(concurrency=1, max_concurrency=None, num_blocks=None, max_batch_tokens=None)
    reqs = [Request(i, list(range(10 + i, 18 + i)), "", 4) for i in range(6)]

    async def go():
        async with TransformersEngine(model, cfg) as engine:
            calls["armed"] = True
            return await loadgen.run(engine, reqs, _plan(rate=20.0, num_requests=6, timeout_s=20.0))

    run = asyncio.run(go())
    failed = [o for o in run.outcomes if not o.ok]
    assert failed and len(run.outcomes) == 6
    assert all(o.error.startswith(("error:", "timeout:")) for o in failed), [o.error for o in failed]
    assert any("injected device fault" in o.error for o in failed)  # the engine's own reason, not a hang


def test_arrival_and_completion_rates_show_saturation():
    # arrivals every 0.1 s; a saturated engine completes one every 0.25 s
    outs = [Outcome(i, 5, 10 + i / 10, 10 + i / 10, 10 + i / 10, [10.5 + i / 4], 1, 10.5 + i / 4) for i in range(5)]
    m = metrics.summarize_run(outs, 2.0, {}, 0.01)
    assert m["arrival_rate_req_per_s"] == pytest.approx(10.0) and m["completion_rate_req_per_s"] == pytest.approx(4.0)


def test_lateness_bound_scales_with_the_gap():
    # 20 ms late at 1 req/s (gaps of 1 s) does not change the offered load; at 50 req/s it would
    slow = [Outcome(i, 5, 10.0 + i, 10.02 + i, 10.02 + i, [10.1 + i], 1, 10.2 + i) for i in range(5)]
    fast = [Outcome(i, 5, 10.0 + i / 50, 10.02 + i / 50, 10.02 + i / 50, [10.1 + i], 1, 10.2 + i) for i in range(5)]
    assert not metrics.summarize_run(slow, 5.0, {}, 0.01)["generator_bottleneck"]
    assert metrics.summarize_run(fast, 5.0, {}, 0.01)["generator_bottleneck"]


def test_the_engine_gets_a_batch_budget_sized_to_the_load_never_one_from_free_memory():
    # left unset beside num_blocks, transformers 5.17 solved max_batch_tokens from free memory: 22 GB of RSS on a CPU
    from harness.serving.engines import transformers_cb as cb

    s = {"input_len": 32, "output_len": 16, "len_range": 0.0, "arrival": "poisson", "num_requests": 8}
    s.update(concurrency=4, max_concurrency=None)
    assert cb.default_max_batch_tokens(s) == 8 * (32 + 16 + 1)  # every request in flight, at its longest
    assert cb.default_max_batch_tokens({**s, "num_requests": 1, "input_len": 8}) == cb.MIN_BATCH_TOKENS
    assert cb.default_max_batch_tokens({**s, "num_requests": 1000}) == cb.MAX_BATCH_TOKENS_DEFAULT
    assert cb.default_max_batch_tokens(s, sizes=(3, 100)) == 3 * 101  # a dataset's own count and longest
