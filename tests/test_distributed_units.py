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


def test_across_nodes_the_runs_first_failure_is_every_failed_ranks_reason(monkeypatch):
    # the store torchrun serves the ranks (a real TCPStore here, as node 0's agent hosts it): the first rank to fail,
    # on any node, leaves its reason; every later one reports that, so node 0 writes a peer node's real failure
    from datetime import timedelta

    from torch.distributed import TCPStore

    master = TCPStore("127.0.0.1", 0, is_master=True, wait_for_workers=False, timeout=timedelta(seconds=10))
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.setenv("MASTER_PORT", str(master.port))
    multi = {"nnodes": 2, "node_rank": 1}
    first = distributed.rank_failure("RuntimeError: boom", Place(rank=1, world_size=2), multi)
    assert first == "rank 1 of 2 (node 1): RuntimeError: boom"
    later = distributed.rank_failure("RankWaitError: peer gone", Place(rank=0, world_size=2), {**multi, "node_rank": 0})
    assert later == first
    # one node: the rank's own reason, as before (its peers share its run folder's claim)
    assert distributed.rank_failure("x", Place(rank=1, world_size=2), {"nnodes": 1, "node_rank": 0}) == "rank 1 of 2: x"
    assert distributed.writes_result({"node_rank": 0}) and not distributed.writes_result({"node_rank": 1})


def test_without_the_store_a_failed_rank_keeps_its_own_reason(monkeypatch, capsys):
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.setenv("MASTER_PORT", str(port))
    assert distributed.first_failure("mine", timeout_s=0.5) == "mine"
    assert "did not answer" in capsys.readouterr().err
    monkeypatch.delenv("MASTER_ADDR")
    assert distributed.first_failure("mine") == "mine"
