"""serving.engine=sequential (harness/serving/engines/sequential.py, harness/serving/stepwise.py): requests served
one at a time in arrival order on the engine's own thread, each step's tokens delivered as they come (a verify step's
several at once), a request the load generator gives up on dropped; the generations' known answers on a real tiny
model (greedy = the model's own greedy decode; the model drafting for itself accepts every proposal); the draft
counts per request and over the run; and the report's pairing of a served draft run with its run without one."""

from __future__ import annotations

import asyncio
import threading
import time

import pandas as pd
import pytest
import torch

from harness import models, speculative
from harness.backends.hf import HFEager
from harness.serving import loadgen, metrics, stepwise
from harness.serving.engines import open_engine
from harness.serving.engines.sequential import SequentialEngine
from harness.serving.prompts import Request


class _Generation:
    """Models a stepwise generation: blocking work per step (as a forward is), on whatever thread calls it; each
    request's steps are `chunks` tokens at a time; returns its draft counts (or None, as Greedy does)."""

    def __init__(self, chunks=(1, 3), step_s=0.002, counts=None, gate=None):
        self.chunks, self.step_s, self.counts, self.gate = chunks, step_s, counts, gate
        self.started, self.finished, self.threads, self.closed = [], [], set(), []

    def describe(self):
        return {"generation": "fake"}

    def steps(self, prompt_ids, max_tokens):
        index = prompt_ids[0]
        self.started.append(index)
        self.threads.add(threading.get_ident())
        made = 0
        try:
            for n in self.chunks:
                if self.gate is not None:
                    self.gate.wait(5)
                time.sleep(self.step_s)
                yield list(range(made, made + n))
                made += n
        except GeneratorExit:
            self.closed.append(index)
            raise
        self.finished.append(index)
        return self.counts


def _requests(n):
    return [Request(i, [i, 7, 7], "", 4) for i in range(n)]


def _plan(n, **kw):
    base = dict(arrival="constant", rate=2000.0, burstiness=1.0, concurrency=1, max_concurrency=None,
                num_requests=n, duration_s=None, timeout_s=30.0, seed=0)  # fmt: skip
    return loadgen.Plan(**{**base, **kw})


async def _load(engine, n, **kw):
    async with engine:
        return await loadgen.run(engine, _requests(n), _plan(n, **kw))


def test_requests_are_served_one_at_a_time_in_arrival_order_off_the_event_loop():
    gen = _Generation(step_s=0.01)
    run = asyncio.run(_load(SequentialEngine(gen), 6))  # all six arrive within 3 ms: five wait in the queue
    assert all(o.ok for o in run.outcomes) and gen.started == gen.finished == list(range(6))  # FIFO
    assert threading.get_ident() not in gen.threads and len(gen.threads) == 1  # one engine thread, not the loop's
    ordered = sorted(run.outcomes, key=lambda o: o.sent_at)
    assert [o.index for o in ordered] == list(range(6))
    for before, after in zip(ordered, ordered[1:], strict=False):  # batch 1: a request starts after the last ended
        assert after.token_times[0] > before.token_times[-1]
    # the queue shows in TTFT: a later arrival's first token comes after every earlier request's whole service
    assert ordered[-1].token_times[0] - ordered[-1].sent_at > ordered[0].token_times[-1] - ordered[0].sent_at


def test_a_step_of_several_tokens_is_one_delivery():
    run = asyncio.run(_load(SequentialEngine(_Generation(chunks=(1, 3, 2))), 2))
    o = run.outcomes[0]
    assert o.output_tokens == 6 and len(o.token_times) == 3  # three steps: three deliveries, two ITL gaps
    lat = metrics.latencies(o)
    assert len(lat["itl_s"]) == 2 and lat["tpot_s"] == pytest.approx((lat["e2el_s"] - lat["ttft_s"]) / 5)


def test_a_request_the_load_generator_gives_up_on_is_stopped_and_the_next_is_served():
    gate = threading.Event()
    gen = _Generation(chunks=(1, 1, 1), gate=gate)

    async def go():
        async with SequentialEngine(gen) as engine:
            first = asyncio.ensure_future(engine.stream(_requests(2)[0], lambda t, n: None))
            while not gen.started:
                await asyncio.sleep(0.001)
            first.cancel()  # as loadgen's wait_for does at the request's timeout
            with pytest.raises(asyncio.CancelledError):
                await first
            gate.set()
            got = []
            await engine.stream(_requests(2)[1], lambda t, n: got.append(n))
            return got

    assert asyncio.run(go()) == [1, 1, 1]
    assert gen.closed == [0] and gen.finished == [1]  # the first stopped at its next step, never finished


def test_draft_counts_per_request_and_over_the_run():
    c = speculative.Counts()
    c.add(3, 3)  # a verify step keeps all 3 proposals (+1)
    c.add(3, 1)
    c.add(0, 0)  # the last token: a target step, no proposals
    run = asyncio.run(_load(SequentialEngine(_Generation(counts=c)), 2))
    assert all(o.drafted is c for o in run.outcomes)
    figures = metrics.summarize_run(run.outcomes, run.window_s, {}, 0.01)
    # two requests of (6 proposed, 4 accepted, 3 steps, 2 that proposed)
    assert figures["acceptance_rate"] == pytest.approx(8 / 12) and figures["mean_accepted_tokens"] == 2.0
    assert figures["tokens_per_verify_step"] == pytest.approx((8 + 6) / 6)
    assert (figures["draft_tokens_proposed"], figures["draft_tokens_accepted"], figures["verify_steps"]) == (12, 8, 6)
    record = metrics.request_records(run.outcomes)[0]
    assert record["acceptance_rate"] == pytest.approx(4 / 6) and record["verify_steps"] == 3
    plain = asyncio.run(_load(SequentialEngine(_Generation()), 2))  # no draft: none of these figures
    assert "acceptance_rate" not in metrics.summarize_run(plain.outcomes, plain.window_s, {}, 0.01)
    assert "acceptance_rate" not in metrics.request_records(plain.outcomes)[0]


@pytest.fixture(scope="module")
def tiny():
    cfg = models.preset("tiny", weights="random", num_hidden_layers=1)
    return models.build(cfg, torch.float32, "cpu", 0)


def _collect(steps):
    chunks = []
    while True:
        try:
            chunks.append(next(steps))
        except StopIteration as done:
            return chunks, done.value


def test_greedy_through_the_backend_is_the_models_own_greedy_output(tiny):
    prompt = list(range(20, 28))
    chunks, counts = _collect(stepwise.Greedy(HFEager.around(tiny).forward, "cpu").steps(prompt, 6))
    with torch.inference_mode():
        ref = speculative.greedy(tiny, torch.tensor([prompt]), 5)
    assert chunks == [[t] for t in ref] and counts is None  # one token per step, the first from the prefill


def test_a_model_drafting_for_itself_accepts_every_proposal_and_gives_its_greedy_output(tiny):
    draft = speculative.Draft.__new__(speculative.Draft)  # the served model as its own draft (same weights)
    draft.cfg, draft.model, draft.target, draft.k = {"name": "tiny"}, tiny, tiny, 3
    prompt = list(range(20, 28))
    chunks, counts = _collect(stepwise.Speculative(draft, "cpu").steps(prompt, 8))
    with torch.inference_mode():
        ref = speculative.greedy(tiny, torch.tensor([prompt]), 7)
    # [] at the prefill, the first token, then verify steps of 3 accepted + 1 and 2 + 1
    assert chunks == [[], ref[:1], ref[1:5], ref[5:8]]
    assert counts.figures()["acceptance_rate"] == 1.0 and counts.accepted_per_step == [3, 2]


def test_open_engine_chooses_the_sequential_engine():
    gen = _Generation()
    engine = open_engine({"engine": "sequential"}, gen, None)
    assert isinstance(engine, SequentialEngine) and engine.info()["config"] == {
        "batch_size": 1, "order": "fifo", "generation": "fake"}  # fmt: skip
    assert engine.info()["name"] == "harness-sequential" and engine.info()["in_process"] is True


def test_the_report_pairs_a_served_draft_run_with_the_same_engine_without_it():
    from harness.report import speculative as section

    key = (
        "workload=serving model=small precision=fp32 batch_size=1 seq_len=128 engine=sequential arrival=poisson "
        "rate=2.0 search=none num_requests=8 input_len=32 output_len=16 serving=1a422df2 gpus=1 seed=0"
    )
    base = {"status": "ok", "model": "small", "precision": "fp32", "batch_size": 1, "seq_len": 128, "gpus": 1,
            "workload": "serving", "engine": "sequential", "arrival": "poisson", "rate": 2.0, "search": "none",
            "created_at": "2026-01-01"}  # fmt: skip
    plain = {"ttft_s_p50": 0.04, "itl_s_p50": 0.01, "tpot_s_p50": 0.01, "output_tok_per_s": 32.0,
             "usd_per_1m_output_tokens": 2.0}  # fmt: skip
    spec = {"ttft_s_p50": 0.03, "itl_s_p50": 0.02, "tpot_s_p50": 0.004, "output_tok_per_s": 32.0,
            "usd_per_1m_output_tokens": 2.0, "acceptance_rate": 0.8, "mean_accepted_tokens": 2.4,
            "speculative_greedy_equal_equal": True}  # fmt: skip
    with_draft = key.replace(" gpus=", " draft_model=tiny draft_tokens=3 gpus=")
    frame = pd.DataFrame([
        {**base, "key": key, "draft_model": None, **plain},
        {**base, "key": with_draft, "draft_model": "tiny", "draft_tokens": 3, **spec},
        {**base, "key": with_draft.replace("engine=sequential", "engine=transformers"), "draft_model": "tiny",
         "draft_tokens": 3, **spec},  # another engine: no partner, left out
    ])  # fmt: skip
    p = section.pairs(frame)
    assert len(p) == 1 and bool(p.iloc[0]["served"]) is True
    assert p.iloc[0]["speedup"] == pytest.approx(2.5)  # TPOT without ÷ with
    assert p.iloc[0]["throughput_ratio"] == 1.0 and p.iloc[0]["cost_ratio"] == 1.0
    assert "sequential" in p.iloc[0]["run"] and "draft=tiny k=3" in p.iloc[0]["run"]
    html, _ = section.section(frame)
    assert "speed-up (TPOT)" in html and "2.5x" in html and "40 / 30" in html  # TTFT ms without / with
