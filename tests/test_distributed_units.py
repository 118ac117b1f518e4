"""Ranks: the window barrier's placement and the first-failure claim (the real two-rank runs are e2e)."""

from harness import distributed
from harness.distributed import Place


def test_only_replicated_inference_waits_at_the_window():
    two = Place(rank=0, world_size=2, local_world_size=2)
    assert [type(b) for b in distributed.window_barrier(two, "inference")] == [distributed.WindowBarrier]
    assert distributed.window_barrier(two, "training") == []  # DDP steps are synchronous already
    assert distributed.window_barrier(Place(), "inference") == []


def test_the_first_failing_rank_of_an_attempt_claims_the_result(tmp_path):
    result = tmp_path / "result.json"
    assert distributed.claim_failure(result, "100.000001")
    assert not distributed.claim_failure(result, "100.000001")  # a later rank: its reason is not kept
    assert distributed.claim_failure(result, "200.000000")  # the next attempt starts afresh
