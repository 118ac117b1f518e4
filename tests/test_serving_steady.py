"""Known answers for the capacity probe's rules (harness.serving.steady) on synthetic sequences, and a probe
past a fake engine's capacity stopping in a fraction of its duration."""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest

from harness.serving import loadgen, steady
from harness.serving.prompts import Request

RULES = steady.Rules(rate=10.0, keep_up_tolerance=0.1, min_completed=20)


def test_trend_slope_and_t():
    xs = [float(i) for i in range(10)]
    assert steady.trend(xs, [2 * x + 1 for x in xs]) == (pytest.approx(2.0), float("inf"))
    slope, t = steady.trend(xs, [5.0] * 10)
    assert slope == 0 and t == 0
    noisy = [0.5 * x + e for x, e in zip(xs, [0.1, -0.1] * 5, strict=True)]
    slope, t = steady.trend(xs, noisy)
    assert slope == pytest.approx(0.5, abs=0.05) and t > 10


def _queue(levels, dt=0.1):
    return [(i * dt, int(q)) for i, q in enumerate(levels)]


def test_growing_queue_is_over_saturated():
    # arrivals 10 req/s, completions 7: the queue grows at ~3 req/s (> 0.1 x 10) for 5 s
    q = _queue([3 * 0.1 * i for i in range(50)])
    why = steady.over_saturated(q, [], RULES)
    assert why and why.startswith("over-saturated: the queue grew at 2.98 req/s (to 14 in flight)")


def test_flat_noisy_queue_is_not_over_saturated_and_settles():
    rng = np.random.default_rng(0)
    q = _queue(4 + rng.integers(-2, 3, 40))  # Little's law: 10 req/s x 0.4 s, with noise
    assert steady.over_saturated(q, [], RULES) is None
    sends = list(np.arange(0, 4, 0.1))  # 10 req/s over 4 s, each answered 0.4 s later
    dones = [t + 0.4 for t in sends if t + 0.4 <= 3.9]
    why = steady.settled(q, sends, dones, RULES)
    assert why and why.startswith("settled: ")


def test_filling_queue_before_one_latency_is_no_trend():
    # a healthy engine's queue fills for one latency (here 3 s) before it levels: not judged before `since`
    q = _queue([min(i, 30) for i in range(40)])
    assert steady.over_saturated(q, [], RULES, since=0.0) is not None  # the latest half alone: a false alarm
    assert steady.over_saturated(q, [], RULES, since=3.0) is None


def test_settled_needs_answers_and_keeping_up():
    q = _queue([4] * 40)
    sends = list(np.arange(0, 4, 0.1))
    assert steady.settled(q, sends, sends[:10], RULES) is None  # fewer than min_completed answers
    few = [t + 0.4 for t in sends[:25]]  # answers stopped at 2.9 s: the last half's fall short of its arrivals
    assert steady.settled(q, sends, few, RULES) is None


def test_rising_ttft_is_over_saturated_flat_is_not():
    sends = [i * 0.1 for i in range(40)]
    rising = [(t, 0.05 + 0.1 * t) for t in sends]
    assert steady.over_saturated([], rising, RULES).startswith("over-saturated: TTFT grew from")
    rng = np.random.default_rng(1)
    flat = [(t, 0.05 + 0.01 * rng.random()) for t in sends]
    assert steady.over_saturated([], flat, RULES) is None


class _OneAtATime:
    """A fake engine serving one request at a time, `service_s` each: its capacity is 1 / service_s req/s."""

    def __init__(self, service_s):
        self.service_s, self.lock = service_s, asyncio.Lock()

    async def stream(self, request, deliver):
        async with self.lock:
            await asyncio.sleep(self.service_s)
            deliver(time.perf_counter(), 1)
        return 1


@pytest.mark.alone  # against the clock
def test_a_probe_past_capacity_stops_early_and_one_below_settles():
    reqs = [Request(i, [1, 2, 3], "abc", 1) for i in range(8)]
    probe_s = 30.0

    def probe(rate):
        plan = loadgen.Plan("poisson", rate, 1.0, 1, None, int(rate * probe_s * 1.5), probe_s, 60.0, 0)
        watch = steady.Watch(steady.Rules(rate, 0.1, 16))
        t0 = time.perf_counter()
        run = asyncio.run(loadgen.run(_OneAtATime(0.02), reqs, plan, watch=watch))
        return run, time.perf_counter() - t0

    over, took = probe(200.0)  # 4 x the capacity (50 req/s)
    assert over.stopped and over.stopped.startswith("over-saturated"), over.stopped
    assert took < 0.2 * probe_s  # stopped in seconds, not at the end of its duration
    assert any(o.error and o.error.startswith("cancelled") for o in over.outcomes)
    under, took = probe(10.0)  # a fifth of the capacity
    assert under.stopped and under.stopped.startswith("settled"), under.stopped
    assert took < 0.5 * probe_s and all(o.ok for o in under.outcomes)
