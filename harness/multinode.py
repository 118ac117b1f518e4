"""One run across several nodes (dist=multinode), the launcher's side: which node writes the run's result.

Every node runs the same command with its own dist.node_rank, and torchrun's static rendezvous makes node_rank the
node's rank (torch/distributed/elastic/rendezvous/static_tcp_rendezvous.py), so global rank 0, whose figures
are the run's, is always on node 0. Node 0's launcher writes the run's one result.json; every other node (a peer)
writes only node.json, its own account of its part, which no reader of results takes for a result. node_rank is
part of the config, so each node has its own run folder; on a shared file system they sit side by side.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from harness import results

NODE_FILE = "node.json"
NODE_SCHEMA = "harness.node/1"


def is_peer(config: Mapping[str, Any]) -> bool:
    """True on a node other than node 0 of a run across nodes: its launcher writes no result."""
    dist = config["dist"]
    return dist["nnodes"] > 1 and dist["node_rank"] != 0


def result_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """The config of the node that writes the run's result (node 0): the same with dist.node_rank=0."""
    out = copy.deepcopy(dict(config))
    out["dist"] = {**out["dist"], "node_rank": 0}
    return out


def result_dir(config: Mapping[str, Any], run_dir: Path) -> Path:
    """Where the run's result.json is: run_dir on node 0, node 0's run folder beside it on a peer."""
    if not is_peer(config):
        return run_dir
    return run_dir.parent / results.run_slug(result_config(config))


def peer_reason(returncode: int | None, log_tail: list[str]) -> str:
    """Why a peer node's part failed when its torchrun exited non-zero: the log's last line (a rendezvous that
    timed out, say) and where a rank's own failure went."""
    last = f": {log_tail[-1].strip()}" if log_tail else ""
    return (
        f"torchrun on this node exited with code {returncode}{last} "
        "(a rank's failure is the reason in the run's result, node 0's)"
    )


def record(config: Mapping[str, Any], run_dir: Path, result: dict[str, Any]) -> dict[str, Any]:
    """Write what this node's launcher knows of the run: result.json on node 0 (or on one node), node.json on a
    peer. Returns what was written."""
    if not is_peer(config):
        results.write_atomic(run_dir / results.RESULT_FILE, result)
        return result
    dist = config["dist"]
    node = {
        "schema": NODE_SCHEMA,
        "node_rank": dist["node_rank"],
        "nnodes": dist["nnodes"],
        "key": result.get("key") or results.canonical_key(config),
        "status": result["status"],
        "reason": result.get("reason"),
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "result_dir": str(result_dir(config, run_dir)),
        "launcher": result.get("launcher"),
        "log_tail": result.get("log_tail"),
        "warnings": result.get("warnings") or [],
    }
    results.write_atomic(run_dir / NODE_FILE, node)
    return node


def headline(node: Mapping[str, Any]) -> str:
    """The progress line's end for a peer node: its part's status, and where the run's result is."""
    reason = f" ({node['reason'].splitlines()[0][:160]})" if node.get("reason") else ""
    return (
        f"node {node['node_rank']} of {node['nnodes']}: {node['status']}{reason}; "
        f"the run's result is node 0's: {node['result_dir']}"
    )
