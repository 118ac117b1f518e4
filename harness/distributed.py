"""Several devices: ranks started by torchrun (torch.distributed elastic launch).

Ranks read their place from torchrun's environment. DDP uses NCCL on CUDA and gloo on CPU. On a CPU-only
machine the ranks are CPU processes, each given cores // ranks threads on purpose: a simulation of
multi-GPU scaling, labelled as such in the result, not a GPU figure.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from harness.errors import UnsupportedError

CPU_LABEL = "CPU ranks: a simulation of multi-device scaling on one CPU, not a GPU figure"


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
    return backend


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
