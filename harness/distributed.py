"""Several devices: ranks started by torchrun (torch.distributed elastic launch).

Ranks read their place from torchrun's environment. DDP uses NCCL on CUDA and gloo on CPU. On a CPU-only
machine the ranks are CPU processes, each given cores // ranks threads on purpose: a simulation of
multi-GPU scaling, labelled as such in the result, not a GPU figure.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.errors import UnsupportedError

CPU_LABEL = "CPU ranks: a simulation of multi-device scaling on one CPU, not a GPU figure"
# Fault injection for the failure path's tests: HARNESS_FAULT_RANK=<rank> makes that rank raise right after
# it joined the process group, where the other ranks go on to wait for it at their next collective.
FAULT_ENV = "HARNESS_FAULT_RANK"
FAILED_EXIT_CODE = 1


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


def init(p: Place, device_type: str) -> str | None:
    """Join the process group; returns the backend (None for a single rank)."""
    if p.world_size == 1:
        return None
    import torch.distributed as dist

    backend = "nccl" if device_type == "cuda" else "gloo"
    dist.init_process_group(backend)
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


def gather(obj: Any, p: Place) -> list[Any]:
    """Every rank's `obj`, in rank order (just [obj] for a single rank)."""
    if p.world_size == 1:
        return [obj]
    import torch.distributed as dist

    out: list[Any] = [None] * p.world_size
    dist.all_gather_object(out, obj)
    return out


def shutdown(p: Place) -> None:
    if p.world_size > 1:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()


def torchrun_args(gpus: int, dist_cfg: dict) -> list[str]:
    """torchrun arguments: standalone on one node; a c10d rendezvous across several."""
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
    ]
