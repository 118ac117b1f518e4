"""`dist=multinode` without a cluster: two "nodes" on this machine, each the real CLI in its own process, as srun
starts them on a cluster (tests/test_slurm_e2e.py does the same under Slurm). One torchrun per node, one CPU rank
each, DDP over gloo; both write into one results folder, as nodes sharing a file system do.

The order in which the nodes arrive is forced: node 1 first, node 0 once node 1's torchrun is running. torchrun's
c10d rendezvous ranks the nodes by (host name, torchrun's pid) (torch/distributed/elastic/rendezvous/
dynamic_rendezvous.py, _mark_rendezvous_complete), so on one host the node that starts first takes global rank 0;
on a cluster the host names decide, which for the node that srun calls node 0 is no better than chance. Under c10d
this order put global rank 0 on node 1: node 0's launcher found no result and wrote a spurious `error` one beside
the real one (issue 30).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import slurm_cluster
from conftest import load_results

from harness.distributed import FAULT_ENV

TIMEOUT_S = 300  # each run's limit: a hang would end as `timeout` after it
TRAIN = ["workload=training", "workload.max_steps=4", "workload.eval_interval=4", "workload.eval_batches=1"]
TRAIN += ["workload.lr_warmup_steps=1", "batch_size=2", "seq_len=32", "repeats=1", "model.weights=random"]


def _node(results: Path, node_rank: int, port: int, log: Path, env: dict) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "harness", "gpus=1", "dist=multinode", f"dist.node_rank={node_rank}"]
    cmd += [f"dist.rdzv_endpoint=127.0.0.1:{port}", "sweep=mn", f"results_dir={results}", f"timeout_s={TIMEOUT_S}"]
    with open(log, "w") as out:
        return subprocess.Popen(
            [*cmd, *TRAIN], cwd=results.parent, stdout=out, stderr=subprocess.STDOUT, text=True, env=env
        )


def _wait_for_worker(results: Path, node_rank: int, node: subprocess.Popen, log: Path) -> None:
    """Until the node's launcher has started its torchrun (it opens worker.log just before)."""
    deadline = time.monotonic() + 200
    while time.monotonic() < deadline:
        specs = [json.loads(p.read_text()) for p in results.rglob("run_spec.json")]
        if any(s["config"]["dist"]["node_rank"] == node_rank for s in specs):
            return
        assert node.poll() is None, log.read_text()
        time.sleep(0.1)
    raise AssertionError(f"node {node_rank} never started its worker:\n{log.read_text()}")


def _two_nodes(tmp_path: Path, port: int, env: dict | None = None) -> tuple[Path, list[str]]:
    """Node 1 first, then node 0; both to their end. Returns the results folder and each node's output."""
    results = tmp_path / "results"
    results.mkdir(exist_ok=True)
    env = dict(os.environ, **(env or {}))
    logs = [tmp_path / "node0.out", tmp_path / "node1.out"]
    nodes: list[subprocess.Popen] = []
    try:
        nodes.append(_node(results, 1, port, logs[1], env))
        _wait_for_worker(results, 1, nodes[0], logs[1])
        nodes.append(_node(results, 0, port, logs[0], env))
        for node, log in zip(nodes, reversed(logs), strict=True):
            assert node.wait(timeout=TIMEOUT_S + 120) == 0, log.read_text()
    finally:
        for node in nodes:
            if node.poll() is None:
                node.kill()
                node.wait()
    return results, [log.read_text() for log in logs]


def _by_node(results: Path) -> dict[int, Path]:
    """Each node's run folder (node_rank is part of the config, so each node has its own)."""
    out = {}
    for spec in results.rglob("run_spec.json"):
        out[json.loads(spec.read_text())["config"]["dist"]["node_rank"]] = spec.parent
    return out


@pytest.mark.alone  # CPU ranks: a core each
@pytest.mark.timeout(900)
def test_the_run_has_one_result_written_by_node_0_whichever_node_arrives_first(tmp_path):
    port = slurm_cluster._free_port()
    results, out = _two_nodes(tmp_path, port)
    found = load_results(results)
    assert [(r["status"], r["reason"]) for r in found] == [("ok", None)], out
    (run,) = found
    assert run["config"]["dist"]["node_rank"] == 0 and run["config"]["dist"]["nnodes"] == 2
    assert run["distributed"]["world_size"] == 2 and run["distributed"]["backend"] == "gloo", run["distributed"]
    folders = _by_node(results)
    assert (folders[0] / "result.json").exists() and not (folders[1] / "result.json").exists()
    # node 1 keeps its own account of its part, beside its log, in a file no reader takes for a result
    node = json.loads((folders[1] / "node.json").read_text())
    assert node["status"] == "ok" and node["node_rank"] == 1, node
    assert node["result_dir"] == str(folders[0]), node
    assert "node 1 of 2: ok" in out[1] and f"the run's result is node 0's: {folders[0]}" in out[1], out[1]

    # the same commands again: node 0 skips its complete run, and node 1, reading node 0's result, skips too
    # (had it launched, it would wait for a peer that never comes); the endpoint is part of the config, as on a
    # cluster where the same allocation's head node and port name the run
    results, out = _two_nodes_again(tmp_path, port)
    assert all("already complete" in o for o in out), out
    assert [r["status"] for r in load_results(results)] == ["ok"]


def _two_nodes_again(tmp_path: Path, port: int) -> tuple[Path, list[str]]:
    results = tmp_path / "results"
    procs = [_node(results, n, port, tmp_path / f"again{n}.out", dict(os.environ)) for n in (0, 1)]
    for proc, n in zip(procs, (0, 1), strict=True):
        assert proc.wait(timeout=200) == 0, (tmp_path / f"again{n}.out").read_text()
    return results, [(tmp_path / f"again{n}.out").read_text() for n in (0, 1)]


@pytest.mark.alone  # CPU ranks: a core each
@pytest.mark.timeout(900)
def test_a_rank_failing_on_node_1_is_the_reason_in_node_0s_result(tmp_path):
    # rank 1 (node 1's only rank) raises right after joining; rank 0, on node 0, then loses its peer at the gather.
    # The run's one result is node 0's, and its reason is node 1's failure, not rank 0's lost connection.
    results, out = _two_nodes(tmp_path, slurm_cluster._free_port(), {FAULT_ENV: "1"})
    found = load_results(results)
    assert len(found) == 1, [(r["status"], r["reason"]) for r in found] + out
    (run,) = found
    assert run["status"] == "error", run["reason"]
    assert run["reason"].startswith("rank 1 of 2 (node 1): RuntimeError: injected fault on rank 1"), run["reason"]
    assert run["launcher"]["wall_s"] < TIMEOUT_S  # ended by the failure, not by the launcher's timeout
    node = json.loads((_by_node(results)[1] / "node.json").read_text())
    assert node["status"] == "error" and node["launcher"]["returncode"] != 0, node
    assert node["reason"].startswith("torchrun on this node exited with code"), node["reason"]


def test_a_node_whose_peers_never_come_records_the_rendezvous_timeout_and_no_result(tmp_path):
    # node 1 alone (node 0 never started, or skipped a run it completed where node 1 cannot see it): it waits at
    # the rendezvous for dist.timeout_s, then says so in its node.json; no result is written for the run
    results = tmp_path / "results"
    args = [
        "gpus=1",
        "dist=multinode",
        "dist.node_rank=1",
        f"dist.rdzv_endpoint=127.0.0.1:{slurm_cluster._free_port()}",
    ]
    args += ["dist.timeout_s=2", "timeout_s=120", "sweep=alone", f"results_dir={results}", *TRAIN]
    proc = subprocess.run(
        [sys.executable, "-m", "harness", *args], cwd=tmp_path, capture_output=True, text=True, timeout=240
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert load_results(results) == []
    (path,) = results.rglob("node.json")
    node = json.loads(path.read_text())
    assert node["status"] == "error", node
    assert node["reason"].startswith("torchrun on this node exited with code 1: "), node["reason"]
    assert "timed out" in node["reason"], node["reason"]
    assert "node 1 of 2: error (torchrun on this node exited with code 1" in proc.stdout, proc.stdout
