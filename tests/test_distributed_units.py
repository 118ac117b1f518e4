"""Ranks: the window barrier's placement and the first-failure claim (the real two-rank runs are e2e)."""

from harness import distributed
from harness.distributed import Place


def test_only_replicated_inference_waits_at_the_window():
    two = Place(rank=0, world_size=2, local_world_size=2)
    assert [type(b) for b in distributed.window_barrier(two, True)] == [distributed.WindowBarrier]
    assert distributed.window_barrier(two, False) == []  # DDP steps are synchronous already
    assert distributed.window_barrier(Place(), True) == []


def test_the_barrier_is_the_last_probe_of_replicas_whether_energy_is_on_or_off(monkeypatch):
    from types import SimpleNamespace

    from harness import probes
    from harness.probes import energy

    monkeypatch.setattr(energy, "rapl_zones", lambda: [])
    cpu, two = SimpleNamespace(type="cpu"), Place(rank=1, local_rank=1, world_size=2, local_world_size=2)
    for enabled in (True, False):
        config = {"energy": {"enabled": enabled, "sample_interval_s": 0.1}}
        kinds = [type(p) for p in probes.for_device(config, cpu, two, replicas=True).probes]
        # memory, interference, (codecarbon energy), the barrier
        assert kinds[-1] is distributed.WindowBarrier and len(kinds) == (4 if enabled else 3)
        assert distributed.WindowBarrier not in [type(p) for p in probes.for_device(config, cpu, two).probes]
    barrier = distributed.WindowBarrier(two)
    assert barrier.read() is None and not barrier.measures_energy and not barrier.reads_mid_window


def test_the_first_failing_rank_of_an_attempt_claims_the_result(tmp_path):
    result = tmp_path / "result.json"
    assert distributed.claim_failure(result, "100.000001")
    assert not distributed.claim_failure(result, "100.000001")  # a later rank: its reason is not kept
    assert distributed.claim_failure(result, "200.000000")  # the next attempt starts afresh
