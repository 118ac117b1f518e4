"""Several devices: ranks started by torchrun (torch.distributed elastic launch).

Ranks read their place from torchrun's environment. DDP uses NCCL on CUDA and gloo on CPU. On a CPU-only
machine the ranks are CPU processes, each given cores // ranks threads on purpose: a simulation of
multi-GPU scaling, labelled as such in the result, not a GPU figure.
"""

from __future__ import annotations

import faulthandler
import gc
import os
import sys
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from harness.errors import UnsupportedError

CPU_LABEL = "CPU ranks: a simulation of multi-device scaling on one CPU, not a GPU figure"
# Fault injection for the failure path's tests: HARNESS_FAULT_RANK=<rank> makes that rank raise right after
# it joined the process group, where the other ranks go on to wait for it at their next collective.
FAULT_ENV = "HARNESS_FAULT_RANK"
FAILED_EXIT_CODE = 1
# Fault injection for the teardown test: HARNESS_FAULT_LATE_WORK=1 leaves a collective in flight on the process
# group's worker thread when the ranks begin to tear down (rank 1 joins it a second late), the shape of the race
# in which a gloo thread frees finished work, and needs the GIL for it, while the group is being destroyed.
LATE_WORK_ENV = "HARNESS_FAULT_LATE_WORK"
LATE_WORK_DELAY_S = 1.0
# HARNESS_FAULT_STALL_RANK=<rank>: that rank never reaches the gather, so its peers wait there until the timeout.
STALL_ENV = "HARNESS_FAULT_STALL_RANK"
# A rank whose process group does not come down within this long ends at once (faulthandler dumps every thread's
# stack into the run's log first); by then its figures are written or gathered, so nothing measured is lost.
TEARDOWN_TIMEOUT_S = 60.0


class RankWaitError(RuntimeError):
    """A rank waited at a collective or barrier longer than the collective timeout: names the wait."""


@dataclass(frozen=True)
class Place:
    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    local_world_size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def place() -> Place:
    """This process's place among the ranks (one rank when not started by torchrun)."""
    env = os.environ
    return Place(
        rank=int(env.get("RANK", 0)),
        local_rank=int(env.get("LOCAL_RANK", 0)),
        world_size=int(env.get("WORLD_SIZE", 1)),
        local_world_size=int(env.get("LOCAL_WORLD_SIZE", 1)),
    )


def check_fits(gpus: int, device_type: str, cuda_count: int, cpu_cores: int) -> None:
    """gpus ranks per node must each get a device: a GPU each, or a CPU core each."""
    if device_type == "cuda" and gpus > cuda_count:
        raise UnsupportedError(f"gpus={gpus} but this machine has {cuda_count} visible CUDA device(s)")
    if device_type == "cpu" and gpus > cpu_cores:
        raise UnsupportedError(f"gpus={gpus} CPU ranks need a core each; this machine gives {cpu_cores}")


def threads_per_rank(cpu_cores: int, local_world_size: int) -> int:
    return max(1, cpu_cores // max(1, local_world_size))


def collective_timeout_s(dist_cfg: dict, run_timeout_s: float) -> float:
    """How long a rank waits for its peers at one collective: dist.timeout_s, at most half the run's timeout_s,
    so that a rank left waiting ends the run `error` naming the wait before the launcher's timeout kills it."""
    return min(float(dist_cfg.get("timeout_s") or run_timeout_s), run_timeout_s / 2)


def init(p: Place, device_type: str, timeout_s: float) -> str | None:
    """Join the process group, every collective on it bounded by `timeout_s`; returns the backend (None for a
    single rank)."""
    if p.world_size == 1:
        return None
    import torch.distributed as dist

    backend = "nccl" if device_type == "cuda" else "gloo"
    dist.init_process_group(backend, timeout=timedelta(seconds=timeout_s))
    if os.environ.get(FAULT_ENV) == str(p.rank):
        raise RuntimeError(f"injected fault on rank {p.rank} ({FAULT_ENV}={p.rank})")
    return backend


class WindowBarrier:
    """A probe that holds every rank at the start and at the end of the timed window, so that the
    replicas of gpus=N inference run at the same time and their summed throughput is concurrent. It is
    the last probe (it begins just before the window opens) and records nothing."""

    name = "window-barrier"
    measures_energy = False
    reads_mid_window = False

    def __init__(self, p: Place):
        self._p = p

    def _wait(self) -> None:
        import torch.distributed as dist

        with named_wait(self._p, "the timed window's barrier"):
            dist.barrier()

    def begin(self) -> None:
        self._wait()

    def read(self) -> None:
        return None

    def end(self) -> Any:
        from harness.probes.base import Reading

        self._wait()
        return Reading(self.name)

    def close(self) -> None:
        pass


def window_barrier(p: Place, replicas: bool) -> list[WindowBarrier]:
    """[a WindowBarrier] for replicas (each rank its own load) over several ranks; [] otherwise (DDP
    training steps are already synchronous)."""
    return [WindowBarrier(p)] if p.world_size > 1 and replicas else []


def claim_failure(result_path: Path, attempt_id: str) -> bool:
    """True for the first rank of this attempt to fail: it writes the run's result, the others do not, so
    the reason kept is the first failure's, not a peer's later "connection closed"."""
    claim = result_path.with_name(f".rank-failure-{attempt_id}")
    try:
        os.close(os.open(claim, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        return False
    return True


def exit_failed_rank() -> None:
    """End a failed rank at once and non-zero: torchrun then stops the other ranks (within its monitor
    interval, 0.1 s) instead of leaving them waiting at a collective until a timeout. os._exit skips
    the interpreter's teardown, which can itself block on a process group a peer still holds."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(FAILED_EXIT_CODE)


class named_wait:  # noqa: N801 - used as a context manager, like contextlib's
    """Turn a collective's failure (gloo's and NCCL's timeouts, a peer gone) into RankWaitError naming the wait."""

    def __init__(self, p: Place, what: str):
        self.p, self.what, self.t0 = p, what, time.monotonic()

    def __enter__(self) -> None:
        self.t0 = time.monotonic()

    def __exit__(self, kind: Any, exc: BaseException | None, tb: Any) -> None:
        if exc is None or not isinstance(exc, RuntimeError) or isinstance(exc, RankWaitError):
            return
        waited = time.monotonic() - self.t0
        raise RankWaitError(f"waited {waited:.1f} s at {self.what} for the other ranks: {exc}") from exc


def gather(obj: Any, p: Place) -> list[Any]:
    """Every rank's `obj`, in rank order (just [obj] for a single rank)."""
    if p.world_size == 1:
        return [obj]
    import torch.distributed as dist

    out: list[Any] = [None] * p.world_size
    if os.environ.get(STALL_ENV) == str(p.rank):
        time.sleep(3600)
    with named_wait(p, "the gather of every rank's figures"):
        dist.all_gather_object(out, obj)
    _late_work(p)
    return out


def _late_work(p: Place) -> None:
    """HARNESS_FAULT_LATE_WORK=1 (tests only): an all_gather left in flight, its handle dropped."""
    if os.environ.get(LATE_WORK_ENV) != "1":
        return
    import torch
    import torch.distributed as dist

    if p.rank == 1:
        time.sleep(LATE_WORK_DELAY_S)
    dist.all_gather([torch.zeros(1) for _ in range(p.world_size)], torch.ones(1), async_op=True)


def shutdown(p: Place) -> None:
    """Leave the process group, once the run's figures are written and what used the group is gone.

    Order matters: a DDP wrapper's Reducer holds the group, and if it is the last holder the group's gloo teardown
    runs in the Reducer's destructor with the GIL held, joining a worker thread that needs the GIL to free finished
    work: a deadlock (seen in ~1 of 7 two-rank CPU runs, rank 0 done, rank 1 stuck in ~ProcessGroupGloo). So
    collect what is left first (the Reducer only drops a reference while the group is still registered); then
    destroy_process_group drops the last one through torch's binding, which releases the GIL while it joins.
    A teardown that still hangs ends the rank after TEARDOWN_TIMEOUT_S, its stacks in the run's log."""
    if p.world_size == 1:
        return
    import torch.distributed as dist

    if not dist.is_initialized():
        return
    gc.collect()
    faulthandler.dump_traceback_later(TEARDOWN_TIMEOUT_S, exit=True)
    try:
        dist.destroy_process_group()
    finally:
        faulthandler.cancel_dump_traceback_later()


def torchrun_args(gpus: int, dist_cfg: dict, rendezvous_timeout_s: int = 300) -> list[str]:
    """torchrun arguments: standalone on one node; across several, a static rendezvous in which dist.node_rank is
    the node's rank, so global rank 0 is always on node 0 (c10d would rank the nodes by host name and pid)."""
    args = ["--nproc-per-node", str(gpus)]
    if dist_cfg["nnodes"] == 1:
        return [*args, "--standalone"]
    return [
        *args,
        "--nnodes",
        str(dist_cfg["nnodes"]),
        "--node-rank",
        str(dist_cfg["node_rank"]),
        "--rdzv-backend",
        dist_cfg["rdzv_backend"],
        "--rdzv-endpoint",
        dist_cfg["rdzv_endpoint"],
        "--rdzv-id",
        dist_cfg["rdzv_id"],
        "--rdzv-conf",
        f"timeout={rendezvous_timeout_s}",  # how long node 0 waits for the others to arrive, and they for it
    ]


def rank_failure(reason: str, p: Place, dist_cfg: dict) -> str:
    """The reason a failed rank reports: "rank r of n: <reason>" on one node; across nodes, the run's first
    failure on any node, "rank r of n (node k): <reason>", handed over through torchrun's store (below)."""
    if dist_cfg["nnodes"] == 1:
        return f"rank {p.rank} of {p.world_size}: {reason}"
    return first_failure(f"rank {p.rank} of {p.world_size} (node {dist_cfg['node_rank']}): {reason}")


FAILURES_KEY = "harness/failures"
FIRST_FAILURE_KEY = "harness/first-failure"
STORE_TIMEOUT_S = 10.0


def first_failure(reason: str, timeout_s: float = STORE_TIMEOUT_S) -> str:
    """The first failure of the run on any node: this rank's `reason` if it is the first to fail, else the reason
    the first one left in the store that torchrun serves every rank (at MASTER_ADDR:MASTER_PORT, on node 0).
    Node 0 writes the run's result, and a peer node's failure reaches it only this way: on node 0 the same
    failure shows only as a peer gone ("Connection closed by peer"). Without the store: this rank's reason."""
    addr, port = os.environ.get("MASTER_ADDR"), os.environ.get("MASTER_PORT")
    if not addr or not port:
        return reason
    try:
        from torch.distributed import TCPStore

        store = TCPStore(addr, int(port), is_master=False, timeout=timedelta(seconds=timeout_s))
        if store.add(FAILURES_KEY, 1) == 1:
            store.set(FIRST_FAILURE_KEY, reason)
            return reason
        return store.get(FIRST_FAILURE_KEY).decode(errors="replace")  # waits for the first to set it
    except Exception as exc:  # noqa: BLE001 - the store is gone (node 0 died): this rank's own reason
        print(
            f"harness: the run's store at {addr}:{port} did not answer ({exc}); keeping this rank's reason",
            file=sys.stderr,
            flush=True,
        )
        return reason


def writes_result(dist_cfg: dict) -> bool:
    """Whether this node's ranks write the run's result (a failure's, when they fail): on node 0 only."""
    return dist_cfg["node_rank"] == 0
