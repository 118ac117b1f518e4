"""End to end: a multirun with and without a draft (model=tiny, its own copy as the draft: acceptance 1) writes
the acceptance and the greedy-equality check in the result, and the report pairs the two runs into a speed-up."""

from __future__ import annotations

import shlex

import pytest
from conftest import load_results, run_cli

from harness.report import aggregate

pytestmark = pytest.mark.e2e


def test_a_draft_run_is_paired_with_its_run_without_one(harness, tmp_path):
    proc, root = harness("-m", "sweep=spec", "model=tiny", "model.weights=random", "batch_size=1",
                         "workload.draft_model=null,tiny", "workload.draft_tokens=3")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    by_draft = {(r["key_fields"].get("draft_model")): r for r in load_results(root)}
    spec, plain = by_draft["tiny"], by_draft[None]
    assert spec["status"] == plain["status"] == "ok", (spec["reason"], plain["reason"])
    # the same seed builds the same weights: the draft is the target's copy, every proposal is kept
    m = spec["metrics"]
    assert m["acceptance_rate"] == 1.0 and m["mean_accepted_tokens"] == 3.0  # decode_tokens=4: one step of 3 + 1
    assert m["draft_tokens_accepted"] == m["draft_tokens_proposed"] > 0
    assert spec["speculative"]["greedy_equal"]["equal"] is True
    assert spec["key"] == plain["key"].replace(" gpus=", " draft_model=tiny draft_tokens=3 gpus=")
    assert "draft_model" not in plain["key"] and "acceptance_rate" not in plain["metrics"]
    assert sorted("drafttinyk3" in p.parent.name for p in root.rglob("result.json")) == [False, True]  # the slug
    row = aggregate.flatten_result(spec, "spec")
    assert "workload.draft_model=tiny" in shlex.split(row["command"])
    page = (tmp_path / "reports" / "spec" / "index.html").read_text()
    assert 'id="speculative"' in page and 'id="speculative-speedup"' in page
    assert "draft=tiny k=3" in page  # the run's label


def test_serving_with_a_draft_is_unsupported_with_the_reason(harness):
    import importlib.metadata

    proc, root = harness("workload=serving", "model.weights=random", "workload.draft_model=tiny",
                         "serving.num_requests=2", "serving.warmup_requests=1", "repeats=1", fast=False)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    (r,) = load_results(root)
    version = importlib.metadata.version("transformers")
    assert r["status"] == "unsupported" and f"transformers {version} continuous batching" in r["reason"]
    assert "takes no assistant model" in r["reason"] and "draft_model=tiny" in r["key"]
    assert "serving.engine=sequential" in r["reason"]  # the way to serve with a draft


def test_served_with_a_draft_by_the_sequential_engine_and_paired_with_the_run_without(harness, tmp_path):
    proc, root = harness("-m", "sweep=sserve", "workload=serving", "serving.engine=sequential", "model=tiny",
                         "model.weights=random", "workload.draft_model=null,tiny", "workload.draft_tokens=3",
                         "serving.num_requests=4", "serving.warmup_requests=1", "serving.input_len=16",
                         "serving.output_len=6", "serving.rate=50", "repeats=1", "quality.enabled=false",
                         fast=False)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    by_draft = {r["key_fields"].get("draft_model"): r for r in load_results(root)}
    spec, plain = by_draft["tiny"], by_draft[None]
    assert spec["status"] == plain["status"] == "ok", (spec["reason"], plain["reason"])
    assert spec["key"] == plain["key"].replace(" gpus=", " draft_model=tiny draft_tokens=3 gpus=")
    assert "engine=sequential" in plain["key"] and "acceptance_rate" not in plain["metrics"]
    # the draft is the target's copy (same seed, same weights): every proposal kept; 6 tokens = the prefill's, a
    # verify step of 3 + 1 and a target step for the last: two deliveries after the first, per request
    m = spec["metrics"]
    assert m["acceptance_rate"] == 1.0 and m["mean_accepted_tokens"] == 3.0 and m["verify_steps"] == 4 * 2
    assert m["output_tokens"] == 4 * 6 and m["itl_s"]["n"] == 4 * 2 and plain["metrics"]["itl_s"]["n"] == 4 * 5
    assert all(r["acceptance_rate"] == 1.0 and r["verify_steps"] == 2 for r in spec["serving"]["requests"])
    assert spec["speculative"]["greedy_equal"]["equal"] is True and spec["speculative"]["draft_model"] == "tiny"
    engines = [r["serving"]["engine"] for r in (spec, plain)]
    assert [e["name"] for e in engines] == ["harness-sequential"] * 2 and engines[0]["config"]["draft_tokens"] == 3
    assert "draft=tiny k=3" in proc.stdout  # the summary's label
    page = (tmp_path / "reports" / "sserve" / "index.html").read_text()
    assert 'id="speculative-speedup"' in page and "speed-up (TPOT)" in page


def test_a_draft_for_training_is_refused_in_one_line(tmp_path):
    proc = run_cli("workload=training", "workload.draft_model=tiny", cwd=tmp_path, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "harness: error: workload.draft_model=tiny is not valid: is used only by workload=inference, serving; "
        "this run is workload=training"
    ]
