"""Known answers for serving.dataset: ShareGPT conversations, Azure and Mooncake traces (the replayer's schedule
and its send lateness, on a fake clock), shared-prefix sets; the samples are made by harness.serving.samples."""

from __future__ import annotations

import asyncio
import json
import types

import pytest

from harness.serving import datasets, loadgen, metrics, samples
from harness.serving.datasets import DatasetError

BASE = {
    "dataset": "random",
    "dataset_path": None,
    "num_requests": 64,
    "warmup_requests": 1,
    "input_len": 12,
    "output_len": 4,
    "len_range": 0.0,
    "think_time_s": 0.0,
    "trace_speed": 1.0,
    "prefix_count": 3,
    "suffixes_per_prefix": 4,
    "prefix_len": 20,
}


@pytest.fixture
def files(tmp_path):
    return samples.write_all(tmp_path)


# ---- traces --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["azure", "mooncake"])
def test_trace_columns_and_times(files, kind):
    rows = datasets.read_trace(str(files[kind]))
    assert [t for t, _, _ in rows] == pytest.approx(samples.TRACE_OFFSETS_S, abs=1e-6)  # ms / 7-digit fractions
    assert all(8 <= n_in < 40 and 2 <= n_out < 8 for _, n_in, n_out in rows)


def test_trace_speed_scales_times_and_lengths_are_kept(files):
    rows = datasets.read_trace(str(files["mooncake"]))
    w = datasets.build({**BASE, "dataset": "trace", "dataset_path": str(files["mooncake"]), "trace_speed": 2.0}, 0)
    assert w.times_s == pytest.approx([t / 2 for t in samples.TRACE_OFFSETS_S], abs=1e-6)
    assert [(len(r.prompt_ids), r.max_tokens) for r in w.requests] == [(a, b) for _, a, b in rows]
    assert w.info["kind"] == "trace" and w.info["rows"] == len(rows) and w.info["prompts_cut"] == 0


def test_trace_rows_out_of_order_are_sorted_and_prompts_cut_to_the_context(tmp_path):
    p = tmp_path / "t.jsonl"
    p.write_text('{"timestamp": 500, "input_length": 300, "output_length": 5}\n'
                 '{"timestamp": 200, "input_length": 10, "output_length": 3}\n')  # fmt: skip
    w = datasets.build({**BASE, "dataset": "trace", "dataset_path": str(p)}, 0, max_len=64)
    assert w.times_s == pytest.approx([0.0, 0.3])
    assert [(len(r.prompt_ids), r.max_tokens) for r in w.requests] == [(10, 3), (59, 5)]
    assert w.info["prompts_cut"] == 1


def test_trace_with_unknown_columns_names_what_it_needs(tmp_path):
    p = tmp_path / "t.csv"
    p.write_text("when,in,out\n1,2,3\n")
    with pytest.raises(DatasetError, match="a trace needs TIMESTAMP/timestamp/arrival_s, ContextTokens"):
        datasets.read_trace(str(p))


def _fake_clock(lateness_s):
    """loadgen's clock and sleep replaced: each wait ends `lateness_s[i]` after its target."""
    clock = {"now": 100.0, "i": 0}

    async def sleep_until(target):
        clock["now"] = max(clock["now"], target) + lateness_s[clock["i"]]
        clock["i"] += 1

    return clock, sleep_until


class _Instant:
    async def stream(self, request, deliver):
        deliver(loadgen.time.perf_counter(), request.max_tokens)
        return request.max_tokens


def test_replayer_sends_on_the_trace_schedule_and_measures_its_lateness(files, monkeypatch):
    """Known answer: the scheduled send times are the trace's offsets / speed from the start, and send lateness
    is exactly how long after its due time each send went (here forced to 0, 0.2, 0.4, ... ms)."""
    w = datasets.build({**BASE, "dataset": "trace", "dataset_path": str(files["azure"]), "trace_speed": 4.0}, 0)
    late = [i * 2e-4 for i in range(len(w.requests))]  # each under the shortest gap (2.5 ms)
    clock, sleep_until = _fake_clock(late)
    monkeypatch.setattr(loadgen, "time", types.SimpleNamespace(perf_counter=lambda: clock["now"]))
    monkeypatch.setattr(loadgen, "_sleep_until", sleep_until)
    plan = loadgen.Plan("poisson", 1.0, 1.0, 1, None, len(w.requests), None, 5.0, 0, tuple(w.times_s))
    run = asyncio.run(loadgen.run(_Instant(), w.requests, plan))
    assert [o.scheduled_at - run.started_at for o in run.outcomes] == pytest.approx(
        [t / 4 for t in samples.TRACE_OFFSETS_S],
        abs=1e-6,  # Azure's date-times: float seconds since 1970
    )
    m = metrics.summarize_run(run.outcomes, run.window_s, {}, 0.01)
    assert [o.dispatched_at - o.scheduled_at for o in run.outcomes] == pytest.approx(late, abs=1e-9)
    assert m["send_lateness_s"]["max"] == pytest.approx(late[-1]) and m["send_lateness_s"]["n"] == len(late)
    # duration_s keeps the arrivals before it
    cut = loadgen.Plan("poisson", 1.0, 1.0, 1, None, 8, 0.1, 5.0, 0, tuple(w.times_s))
    assert loadgen._schedule(cut, 8) == pytest.approx([0.0, 0.0125, 0.03, 0.05, 0.0525, 0.0875])


# ---- conversations -------------------------------------------------------------------------------------------
def test_sharegpt_turns_carry_their_history(files):
    w = datasets.build({**BASE, "dataset": "sharegpt", "dataset_path": str(files["sharegpt"])}, 0)
    convs = json.loads(files["sharegpt"].read_text())
    assert [len(c) for c in w.conversations] == [3, 2, 1, 2] and len(w.requests) == 8
    first = w.conversations[0]
    assert [(r.conversation, r.turn) for r in first] == [("conv0", 0), ("conv0", 1), ("conv0", 2)]
    turns = convs[0]["conversations"]
    assert first[0].prompt_text == f"User: {turns[0]['value']}\n\nAssistant:"
    # turn 1's prompt extends turn 0's by the recorded answer and the next question
    assert first[1].prompt_text.startswith(first[0].prompt_text + " " + turns[1]["value"])
    assert first[1].prompt_ids[: len(first[0].prompt_ids)] == first[0].prompt_ids
    assert first[0].max_tokens == len(turns[1]["value"].encode())  # the recorded answer's length (bytes here)
    assert first[1].messages == (("user", turns[0]["value"]), ("assistant", turns[1]["value"]),
                                 ("user", turns[2]["value"]))  # fmt: skip
    assert [r.index for r in w.requests] == list(range(8))
    # num_requests caps the turns: whole conversations in file order, the last cut short
    w4 = datasets.build({**BASE, "dataset": "sharegpt", "dataset_path": str(files["sharegpt"]), "num_requests": 4}, 0)
    assert [len(c) for c in w4.conversations] == [3, 1]


def test_a_history_past_the_context_loses_its_oldest_exchanges(files):
    turns = [t["value"] for t in json.loads(files["sharegpt"].read_text())[0]["conversations"]]  # q0 a0 q1 a1 q2 a2
    kept = datasets.render([("user", turns[2]), ("assistant", turns[3]), ("user", turns[4])])
    full = datasets.render([("user", turns[0]), ("assistant", turns[1]), ("user", turns[2]), ("assistant", turns[3]),
                            ("user", turns[4])])  # fmt: skip
    s = {**BASE, "dataset": "sharegpt", "dataset_path": str(files["sharegpt"]), "max_context_tokens": len(kept)}
    w = datasets.build(s, 0)
    third = w.conversations[0][2]
    assert third.prompt_text == kept and len(third.prompt_ids) == len(kept)  # bytes: one token each
    assert third.messages == (("user", turns[2]), ("assistant", turns[3]), ("user", turns[4]))
    assert (third.history_turns_dropped, third.history_tokens_dropped) == (1, len(full) - len(kept))
    assert w.conversations[0][0].history_turns_dropped == 0 and w.info["prompts_cut"] == 0
    assert w.info["history_turns_dropped"] == sum(r.history_turns_dropped for r in w.requests) >= 1
    # without the bound: the model's context less the turn's output length
    w = datasets.build({**s, "max_context_tokens": None}, 0, max_len=len(kept) + third.max_tokens)
    assert w.conversations[0][2].prompt_text == kept and w.info["prompts_cut"] == 0
    assert all(len(r.prompt_ids) + r.max_tokens <= len(kept) + third.max_tokens for r in w.requests)
    # a question alone past the bound is cut from the left (the latest text kept), and counted
    w = datasets.build({**s, "max_context_tokens": 10}, 0)
    assert all(len(r.prompt_ids) <= 10 for r in w.requests) and w.info["prompts_cut"] == len(w.requests)


def test_conversation_turns_wait_for_the_answer_and_the_think_time(files, monkeypatch):
    w = datasets.build({**BASE, "dataset": "sharegpt", "dataset_path": str(files["sharegpt"])}, 0)
    clock, sleep_until = _fake_clock([0.0] * 100)
    monkeypatch.setattr(loadgen, "time", types.SimpleNamespace(perf_counter=lambda: clock["now"]))
    monkeypatch.setattr(loadgen, "_sleep_until", sleep_until)

    class Slow:  # every answer takes 0.5 s of the fake clock
        async def stream(self, request, deliver):
            clock["now"] += 0.5
            deliver(clock["now"], request.max_tokens)

    plan = loadgen.Plan("closed", 1.0, 1.0, 1, None, 8, None, 5.0, 0, think_time_s=2.0)  # one user: in turn
    run = asyncio.run(loadgen.run(Slow(), w.requests, plan, w.conversations))
    conv0 = sorted((o for o in run.outcomes if o.conversation == "conv0"), key=lambda o: o.turn)
    starts = [o.sent_at - run.started_at for o in conv0]
    assert starts == pytest.approx([0.0, 2.5, 5.0])  # each turn: the previous answer (0.5 s) + think time (2 s)
    assert {o.conversation for o in run.outcomes} == {"conv0", "conv1", "conv2", "conv3"}
    assert metrics.by_turn(run.outcomes)[0] == {"turn": 0, "n": 4, "p50": 0.5, "p90": 0.5, "p99": 0.5, "mean": 0.5}
    rec = metrics.request_records(run.outcomes)
    assert {(r["conversation"], r["turn"]) for r in rec} >= {("conv0", 2), ("conv3", 1)}


def test_sharegpt_bad_file_is_named(tmp_path):
    p = tmp_path / "c.json"
    p.write_text('{"not": "a list"}')
    with pytest.raises(DatasetError, match=f"serving.dataset_path={p}: expected a list"):
        datasets.read_conversations(str(p))


# ---- shared prefixes -----------------------------------------------------------------------------------------
def test_shared_prefix_set():
    w = datasets.build({**BASE, "dataset": "shared_prefix"}, 0)
    assert len(w.requests) == 12 and all(len(r.prompt_ids) == 20 + 12 for r in w.requests)
    by_prefix = {}
    for r in w.requests:
        by_prefix.setdefault(r.prefix, set()).add(tuple(r.prompt_ids[:20]))
    assert sorted(by_prefix) == [0, 1, 2] and all(len(v) == 1 for v in by_prefix.values())
    assert len({tuple(r.prompt_ids) for r in w.requests}) == 12  # every suffix differs
    assert [r.prefix for r in w.requests] != sorted(r.prefix for r in w.requests)  # a seeded shuffle
    assert len(datasets.build({**BASE, "dataset": "shared_prefix", "num_requests": 5}, 0).requests) == 5


def test_random_dataset_sends_what_it_sent_before():
    from harness.serving import prompts

    w = datasets.build(BASE, 3)
    old = prompts.build(65, 12, 4, 0.0, 3)
    assert [r.prompt_ids for r in w.requests] == [r.prompt_ids for r in old[1:]] and w.times_s is None
    assert [r.prompt_ids for r in datasets.warmup_requests(BASE, 3)] == [old[0].prompt_ids]
