"""Memory probes for the timed window: process RSS on CPU; CUDA allocator peaks and NVML's view on GPU.

Each run has its own process, so peaks are not polluted by earlier runs. Protocol: harness.probes.base.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from harness.probes.base import Reading

_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")


def _vm_hwm_bytes() -> int | None:
    """The process's resident-set high-water mark (Linux VmHWM), in bytes."""
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024  # the kernel reports kB
    except (OSError, ValueError, IndexError):
        pass
    return None


class _WindowOnly:
    """A probe whose figure exists only at the end of the window."""

    measures_energy = False
    reads_mid_window = False

    def read(self) -> Reading | None:
        return None

    def close(self) -> None:
        pass


class CpuMemory(_WindowOnly):
    """RSS high-water mark, reset at the start of the window where Linux allows it (clear_refs=5)."""

    name = "memory"

    def begin(self) -> None:
        self._before = _vm_hwm_bytes()
        try:
            _CLEAR_REFS.write_text("5")  # resets VmHWM to the current RSS (Linux >= 4.0)
            self._scope = "timed_window"
        except OSError:
            self._scope = "process"  # cannot reset: the peak includes model build

    def end(self) -> Reading:
        window = _vm_hwm_bytes()
        peaks = [p for p in (self._before, window) if p is not None]
        values = {
            "peak_rss_bytes": window,
            "peak_rss_scope": self._scope if window is not None else None,
            "process_peak_rss_bytes": max(peaks) if peaks else None,
        }
        return Reading(self.name, values)


class CudaMemory(_WindowOnly):
    """torch.cuda allocator peaks for one device, reset at the start of the window."""

    name = "memory"

    def __init__(self, cuda: Any, device: Any):
        self._cuda, self._device = cuda, device

    def begin(self) -> None:
        self._cuda.reset_peak_memory_stats(self._device)

    def end(self) -> Reading:
        values = {
            "cuda_max_allocated_bytes": int(self._cuda.max_memory_allocated(self._device)),
            "cuda_max_reserved_bytes": int(self._cuda.max_memory_reserved(self._device)),
        }
        return Reading(self.name, values)


class NvmlMemory(_WindowOnly):
    """The GPU's memory as NVML sees it at the end of the window: device-wide, this process, other processes."""

    name = "nvml-memory"

    def __init__(self, gpu: Any):
        self._gpu = gpu  # harness.probes.nvml.NvmlGpu

    def begin(self) -> None:
        pass

    def end(self) -> Reading:
        return Reading(self.name, self._gpu.memory_used())
