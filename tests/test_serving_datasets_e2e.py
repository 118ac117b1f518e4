"""serving.dataset end to end: the real CLI, the in-process engine, a conversation set and a replayed trace
(the samples harness.serving.samples makes), tiny loads."""

from __future__ import annotations

import pytest
from conftest import load_results

from harness import metrics
from harness.serving import datasets, samples

pytestmark = pytest.mark.e2e

SMALL = ["workload=serving", "serving.warmup_requests=1", "serving.input_len=16", "serving.output_len=6", "repeats=1"]


def test_conversations_in_order_with_think_time(harness, tmp_path):
    files = samples.write_all(tmp_path / "samples")
    args = ["sweep=conv", "serving.dataset=sharegpt", f"serving.dataset_path={files['sharegpt']}"]
    proc, root = harness(*SMALL, *args, "serving.think_time_s=0.05", "serving.rate=8", fast=False, timeout=300)
    assert proc.returncode == 0, proc.stderr
    (r,) = load_results(root / "conv")
    assert r["status"] == "ok", r["reason"]
    reqs = r["serving"]["requests"]
    assert len(reqs) == 8 and r["serving"]["dataset"]["conversations"] == 4 and r["key_fields"]["dataset"] == "sharegpt"
    for conv in {q["conversation"] for q in reqs}:
        turns = sorted((q for q in reqs if q["conversation"] == conv), key=lambda q: q["turn"])
        for a, b in zip(turns, turns[1:], strict=False):  # the next turn only after the answer and the think time
            assert b["sent_s"] >= a["done_s"] + 0.05 and b["input_tokens"] > a["input_tokens"]
    by_turn = r["metrics"]["ttft_s_by_turn"]
    assert [t["turn"] for t in by_turn] == [0, 1, 2] and [t["n"] for t in by_turn] == [4, 3, 1]
    assert set(r["metrics"]) <= set(metrics.names())


def test_trace_replayed_at_its_own_timing(harness, tmp_path):
    files = samples.write_all(tmp_path / "samples")
    args = ["sweep=trace", "serving.dataset=trace", f"serving.dataset_path={files['mooncake']}"]
    proc, root = harness(*SMALL, *args, "serving.trace_speed=0.5", fast=False, timeout=300)
    assert proc.returncode == 0, proc.stderr
    (r,) = load_results(root / "trace")
    assert r["status"] == "ok", r["reason"]
    reqs = r["serving"]["requests"]
    scheduled = [q["scheduled_s"] for q in reqs]
    assert scheduled == pytest.approx([t / 0.5 for t in samples.TRACE_OFFSETS_S], abs=1e-5)
    assert r["serving"]["arrival"] == "trace" and r["key_fields"]["arrival"] == "trace"
    assert r["metrics"]["send_lateness_s"]["n"] == 8 and r["metrics"]["offered_rate_req_per_s"] == pytest.approx(
        7 / (0.52 / 0.5)
    )
    assert [q["output_tokens"] for q in reqs] == [n for _, _, n in datasets.read_trace(str(files["mooncake"]))]
