"""Probes around the timed window (protocol and Reading: `base`): memory (`memory`), energy (`energy`:
NVML, RAPL, codecarbon), GPU facts through NVML (`nvml`), what else ran beside the window (`interference`),
and the timers of timed steps (`timing`).

`for_device` is the one place that decides which probes watch a run; a plugin (harness.plugins) adds a
probe factory with `register`, asked there for every run.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from harness.plugins import load
from harness.probes.base import Probe, ProbeSet, Reading

__all__ = ["Probe", "ProbeSet", "Reading", "for_device", "register"]

# plugins' probes: factory(config, device, place) -> a Probe for this run, or None where it does not apply
_FACTORIES: list[Callable[[dict[str, Any], Any, Any], Probe | None]] = []


def register(factory: Callable[[dict[str, Any], Any, Any], Probe | None]) -> Callable:
    """Decorator: `factory(config, device, place)` gives a probe for each run (None: not this run)."""
    _FACTORIES.append(factory)
    return factory


def for_device(
    config: dict[str, Any], device: Any, place: Any, gpu: Any = None, cuda: Any = None, replicas: bool = False
) -> ProbeSet:
    """This rank's probes: memory first (CUDA allocator or RSS; NVML's view of the GPU), interference (others'
    CPU time on the node, read by local rank 0; other processes on this rank's GPU), then energy —
    its own GPU (NVML), the machine's RAPL counters once per node (local rank 0), or, without RAPL,
    codecarbon's estimate of this rank's own process — and last, for `replicas` over several ranks, a
    barrier that opens and closes every rank's window together. `gpu` is an open NvmlGpu or None."""
    from harness.distributed import window_barrier
    from harness.probes.energy import CodecarbonEnergy, NvmlEnergy, RaplEnergy, rapl_zones
    from harness.probes.interference import Interference
    from harness.probes.memory import CpuMemory, CudaMemory, NvmlMemory

    probes: list[Probe] = []
    if device.type == "cuda":
        probes.append(CudaMemory(cuda, device.torch_device))
        if gpu is not None:
            probes.append(NvmlMemory(gpu))
    else:
        probes.append(CpuMemory())
    on_gpu = device.type == "cuda" and gpu is not None
    probes.append(
        Interference(
            measure_cpu=place.local_rank == 0,  # one reading of the node's counters; sibling ranks count as own
            ranks_on_node=place.local_world_size,
            gpu=gpu if on_gpu else None,
            gpu_label=f"{device.index} {device.name}" if on_gpu else None,
            node=int(os.environ.get("GROUP_RANK", 0)),  # torchrun's node rank
            rank=place.rank,
        )
    )
    load()
    probes.extend(p for p in (f(config, device, place) for f in _FACTORIES) if p is not None)
    barrier = window_barrier(place, replicas)
    if not config["energy"]["enabled"]:
        return ProbeSet([*probes, *barrier])
    prefix = f"rank{place.rank}:" if place.world_size > 1 else ""
    if device.type == "cuda" and gpu is not None and gpu.available:
        interval = config["energy"]["sample_interval_s"]
        probes.append(NvmlEnergy(gpu, f"{prefix}gpu:{device.index} {device.name}", interval))
    zones = rapl_zones()
    if zones:
        if place.local_rank == 0:
            probes.append(RaplEnergy(zones))
    else:
        probes.append(CodecarbonEnergy(name_prefix=prefix))
    return ProbeSet([*probes, *barrier])
