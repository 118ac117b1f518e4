"""GPU facts through NVML (`nvidia-ml-py`, which provides the `pynvml` module).

NVML errors are translated here, once: a reading that cannot be taken is None with a reason, never 0.
"""

from __future__ import annotations

import os
from typing import Any


def _import_pynvml() -> Any:
    import pynvml  # from nvidia-ml-py

    return pynvml


def nvml_index(cuda_index: int, visible: str | None = None) -> int:
    """NVML enumerates all GPUs; CUDA only the visible ones: map a CUDA ordinal to an NVML index."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES") if visible is None else visible
    if visible:
        ids = [v.strip() for v in visible.split(",") if v.strip()]
        if cuda_index < len(ids) and ids[cuda_index].isdigit():
            return int(ids[cuda_index])
    return cuda_index


def device_count(nvml: Any = None) -> int:
    """GPUs NVML sees that CUDA_VISIBLE_DEVICES leaves visible; 0 where NVML is unavailable."""
    try:
        nvml = nvml or _import_pynvml()
        nvml.nvmlInit()
        try:
            count = int(nvml.nvmlDeviceGetCount())
        finally:
            nvml.nvmlShutdown()
    except Exception:  # ImportError, NVMLError_*: no NVIDIA driver here
        return 0
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    return min(count, len([v for v in visible.split(",") if v.strip()])) if visible is not None else count


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class NvmlGpu:
    """One GPU seen through NVML. Construct with `nvml=` a fake module in tests."""

    def __init__(self, cuda_index: int, nvml: Any = None):
        self.error: str | None = None
        self._nvml = nvml
        self._handle = None
        try:
            self._nvml = self._nvml or _import_pynvml()
            self._nvml.nvmlInit()
            self._handle = self._nvml.nvmlDeviceGetHandleByIndex(nvml_index(cuda_index))
        except Exception as exc:  # ImportError, NVMLError_*: NVML is simply unavailable here
            self.error = f"NVML unavailable: {type(exc).__name__}: {exc}"

    @property
    def available(self) -> bool:
        return self._handle is not None

    def _read(self, fn: str, *args: Any) -> Any:
        if not self.available:
            return None
        try:
            return getattr(self._nvml, fn)(*args)
        except Exception:  # NVMLError_NotSupported and friends: this reading does not exist here
            return None

    def info(self) -> dict[str, Any]:
        """Static facts: name, driver, total memory (bytes)."""
        name = self._read("nvmlDeviceGetName", self._handle)
        driver = self._read("nvmlSystemGetDriverVersion")
        mem = self._read("nvmlDeviceGetMemoryInfo", self._handle)
        return {
            "nvml_name": _text(name) if name is not None else None,
            "driver_version": _text(driver) if driver is not None else None,
            "memory_total_bytes": int(mem.total) if mem is not None else None,
            "nvml_error": self.error,
        }

    def memory_used(self, pid: int | None = None) -> dict[str, Any]:
        """Device-wide used memory, this process's share, and whether other processes share the GPU."""
        mem = self._read("nvmlDeviceGetMemoryInfo", self._handle)
        procs = self._read("nvmlDeviceGetComputeRunningProcesses", self._handle)
        pid = os.getpid() if pid is None else pid
        own = None
        others = None
        if procs is not None:
            own_list = [p.usedGpuMemory for p in procs if p.pid == pid and p.usedGpuMemory is not None]
            own = int(sum(own_list)) if own_list else None
            others = sum(1 for p in procs if p.pid != pid)
        return {
            "nvml_used_bytes": int(mem.used) if mem is not None else None,
            "nvml_process_used_bytes": own,
            "nvml_other_processes": others,
        }

    def energy_mj(self) -> int | None:
        """The board's total-energy counter in millijoules since driver load (Volta and newer), or None."""
        value = self._read("nvmlDeviceGetTotalEnergyConsumption", self._handle)
        return int(value) if value is not None else None

    def power_mw(self) -> int | None:
        """Board power draw in milliwatts (a 1 s average on Ampere and newer, except GA100), or None."""
        value = self._read("nvmlDeviceGetPowerUsage", self._handle)
        return int(value) if value is not None else None

    def close(self) -> None:
        if self.available:
            try:
                self._nvml.nvmlShutdown()
            except Exception:
                pass
            self._handle = None
