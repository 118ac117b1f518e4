"""Which node of a run across nodes writes the run's result (harness.multinode); the real runs are e2e."""

import json

from composed import resolved

from harness import multinode, results


def _config(nnodes: int, node_rank: int) -> dict:
    return resolved(
        "dist=multinode", "dist.rdzv_endpoint=n0:29500", f"dist.nnodes={nnodes}", f"dist.node_rank={node_rank}"
    )


def test_node_0_writes_the_result_and_a_peer_only_its_node_record(tmp_path):
    node0, node1 = _config(2, 0), _config(2, 1)
    assert not multinode.is_peer(node0) and multinode.is_peer(node1)
    dir0, dir1 = tmp_path / results.run_slug(node0), tmp_path / results.run_slug(node1)
    assert dir0 != dir1  # node_rank is part of the config: each node its own folder
    assert multinode.result_dir(node0, dir0) == dir0 and multinode.result_dir(node1, dir1) == dir0
    assert results.config_hash(multinode.result_config(node1)) == results.config_hash(node0)

    failed = results.make_result(node1, "error", "the worker exited with code 1", {}, launcher={"returncode": 1})
    written = multinode.record(node1, dir1, failed)
    assert not (dir1 / results.RESULT_FILE).exists() and list(results.iter_results(tmp_path)) == []
    assert json.loads((dir1 / multinode.NODE_FILE).read_text()) == written
    assert written["status"] == "error" and written["node_rank"] == 1 and written["result_dir"] == str(dir0)
    assert multinode.headline(written).startswith("node 1 of 2: error (the worker exited with code 1); the run's")

    multinode.record(node0, dir0, results.make_result(node0, "ok", None, {}))
    assert (dir0 / results.RESULT_FILE).exists() and not (dir0 / multinode.NODE_FILE).exists()


def test_a_peer_that_failed_says_what_its_torchrun_last_said():
    reason = multinode.peer_reason(1, ["Traceback ...", "DistNetworkError: The client socket has timed out"])
    assert reason == (
        "torchrun on this node exited with code 1: DistNetworkError: The client socket has timed out "
        "(a rank's failure is the reason in the run's result, node 0's)"
    )
    assert multinode.peer_reason(1, []).startswith("torchrun on this node exited with code 1 (a rank's")


def test_the_node_count_is_part_of_the_key_only_across_nodes():
    one, two = resolved(), _config(2, 0)
    assert "nnodes" not in results.key_fields(one)  # a one-node run keeps its key (tests/test_seams.py goldens)
    assert results.key_fields(two)["nnodes"] == 2 and results.key_fields(two)["gpus"] == one["gpus"]
    assert results.canonical_key(two) != results.canonical_key(one)  # the gate never pools the two
