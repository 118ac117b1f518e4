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


# torch's total_memory (cudaDeviceProp.totalGlobalMem) is a little below NVML's total (driver-reserved
# memory); a different GPU model differs by far more than this.
MEMORY_MATCH_TOLERANCE = 0.05
PID_NAMESPACE_NOTE = "process memory unknown (pid namespace)"


def _is_mig_handle(nvml: Any, handle: Any) -> bool:
    try:  # pynvml returns a ctypes c_uint here, whose truth is its value
        return bool(nvml.nvmlDeviceIsMigDeviceHandle(handle))
    except Exception:  # NVMLError_NotSupported on GPUs without MIG, or an older driver
        return False


class NvmlGpu:
    """One GPU seen through NVML: the same physical device torch runs on, found by its UUID, else its PCI
    bus id, else (last resort, said so) the CUDA ordinal mapped through CUDA_VISIBLE_DEVICES.
    Construct with a harness.hardware.Device (or a CUDA ordinal) and, in tests, `nvml=` a fake module."""

    def __init__(self, device: Any, nvml: Any = None):
        self.error: str | None = None
        self._device = device if not isinstance(device, int) else None
        cuda_index = device if isinstance(device, int) else device.index
        self._nvml = nvml
        self._handle = None
        self._board = None  # the whole GPU: where the energy counter and power sensor are
        self.how: str | None = None
        self.mig = False
        try:
            self._nvml = self._nvml or _import_pynvml()
            self._nvml.nvmlInit()
            self._handle, self.how = self._find(cuda_index)
            self.mig = _is_mig_handle(self._nvml, self._handle)
            self._board = (
                self._nvml.nvmlDeviceGetDeviceHandleFromMigDeviceHandle(self._handle) if self.mig else self._handle
            )
        except Exception as exc:  # ImportError, NVMLError_*: NVML is simply unavailable here
            self.error = f"NVML unavailable: {type(exc).__name__}: {exc}"
            self._handle = self._board = None

    def _find(self, cuda_index: int) -> tuple[Any, str]:
        """The NVML handle of the torch device, and how it was found."""
        d = self._device
        tried = []
        for how, key, fn in (
            ("uuid", getattr(d, "uuid", None), "nvmlDeviceGetHandleByUUID"),
            ("pci_bus_id", getattr(d, "pci_bus_id", None), "nvmlDeviceGetHandleByPciBusId"),
        ):
            if key is None:
                continue
            try:
                return getattr(self._nvml, fn)(key), how
            except Exception as exc:  # NVMLError_NotFound: try the next key
                tried.append(f"{how} {key}: {type(exc).__name__}")
        visible = os.environ.get("CUDA_VISIBLE_DEVICES") or ""
        ids = [v.strip() for v in visible.split(",") if v.strip()]
        if cuda_index < len(ids) and ids[cuda_index].startswith(("GPU-", "MIG-")):
            return self._nvml.nvmlDeviceGetHandleByUUID(ids[cuda_index]), "uuid (CUDA_VISIBLE_DEVICES)"
        note = f"; {', '.join(tried)}" if tried else ""
        index = nvml_index(cuda_index)
        return self._nvml.nvmlDeviceGetHandleByIndex(index), f"index {index} (CUDA_VISIBLE_DEVICES order){note}"

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

    @property
    def scope(self) -> str | None:
        """What the memory figures cover: this GPU, one MIG slice, or the whole board of a slice."""
        if not self.available:
            return None
        if self.mig:
            return "mig-slice"
        return "board (shared by MIG slices)" if getattr(self._device, "mig", False) else "device"

    def info(self) -> dict[str, Any]:
        """Static facts: name, driver, total memory (bytes), UUID, and how the handle was found."""
        name = self._read("nvmlDeviceGetName", self._handle)
        driver = self._read("nvmlSystemGetDriverVersion")
        mem = self._read("nvmlDeviceGetMemoryInfo", self._handle)
        uuid = self._read("nvmlDeviceGetUUID", self._handle)
        mig_mode = self._read("nvmlDeviceGetMigMode", self._board)
        return {
            "nvml_name": _text(name) if name is not None else None,
            "driver_version": _text(driver) if driver is not None else None,
            "memory_total_bytes": int(mem.total) if mem is not None else None,
            "nvml_uuid": _text(uuid) if uuid is not None else None,
            "nvml_matched_by": self.how,
            "nvml_scope": self.scope,
            "mig_mode": int(mig_mode[0]) if mig_mode is not None else None,  # NVML_DEVICE_MIG_ENABLE = 1
            "nvml_error": self.error,
        }

    def identity_warnings(self) -> list[str]:
        """Where NVML's device and torch's disagree (name, total memory): the NVML figures would be another
        GPU's. Empty when they agree or when there is nothing to compare."""
        d = self._device
        if not self.available or d is None:
            return []
        info = self.info()
        out = []
        nvml_name, torch_name = info["nvml_name"], getattr(d, "name", None)
        if nvml_name and torch_name and nvml_name.strip() != torch_name.strip():
            parent = self.scope.startswith("board") and torch_name.startswith(nvml_name.strip() + " MIG")
            if not parent:
                out.append(
                    f"NVML device ({info['nvml_matched_by']}) is '{nvml_name}' but torch runs on '{torch_name}': "
                    "NVML energy and memory may be another GPU's"
                )
        nvml_total, torch_total = info["memory_total_bytes"], getattr(d, "memory_total_bytes", None)
        if nvml_total and torch_total and self.scope != "board (shared by MIG slices)":
            if abs(nvml_total - torch_total) > MEMORY_MATCH_TOLERANCE * nvml_total:
                out.append(
                    f"NVML device ({info['nvml_matched_by']}) has {nvml_total} bytes but torch's has {torch_total}: "
                    "NVML energy and memory may be another GPU's"
                )
        return out

    def memory_used(self, pid: int | None = None) -> dict[str, Any]:
        """Used memory (of the device, or of the slice), this process's share, and how many other processes
        share it. NVML lists host PIDs: inside a container's PID namespace none is ours, so this process's
        share is unknown and one of the listed processes is taken to be this one."""
        mem = self._read("nvmlDeviceGetMemoryInfo", self._handle)
        procs = self._read("nvmlDeviceGetComputeRunningProcesses", self._handle)
        pid = os.getpid() if pid is None else pid
        own = others = note = None
        if procs is not None:
            mine = [p for p in procs if p.pid == pid]
            if mine:
                own_list = [p.usedGpuMemory for p in mine if p.usedGpuMemory is not None]
                own = int(sum(own_list)) if own_list else None
                others = len(procs) - len(mine)
            elif procs:  # this process holds a CUDA context, so it is listed, under its host PID
                note = PID_NAMESPACE_NOTE
                others = len(procs) - 1
            else:
                note = "process list empty (not visible from here)"
        return {
            "nvml_used_bytes": int(mem.used) if mem is not None else None,
            "nvml_process_used_bytes": own,
            "nvml_other_processes": others,
            "nvml_process_note": note,
            "nvml_memory_scope": self.scope,
        }

    def running_processes(self) -> list[dict[str, Any]] | None:
        """Every process NVML lists on this GPU (or MIG slice), compute and graphics: `pid`,
        `used_gpu_memory_bytes` (None where NVML does not say), `kind`; None when neither list is readable."""
        out, read = [], False
        for kind, fn in (
            ("compute", "nvmlDeviceGetComputeRunningProcesses"),
            ("graphics", "nvmlDeviceGetGraphicsRunningProcesses"),
        ):
            procs = self._read(fn, self._handle)
            if procs is None:
                continue
            read = True
            for p in procs:
                used = getattr(p, "usedGpuMemory", None)
                out.append(
                    {"pid": int(p.pid), "used_gpu_memory_bytes": int(used) if used is not None else None, "kind": kind}
                )
        return out if read else None

    def energy_mj(self) -> int | None:
        """The board's total-energy counter in millijoules since driver load (Volta and newer), or None."""
        value = self._read("nvmlDeviceGetTotalEnergyConsumption", self._board)
        return int(value) if value is not None else None

    def power_mw(self) -> int | None:
        """Board power draw in milliwatts (a 1 s average on Ampere and newer, except GA100), or None."""
        value = self._read("nvmlDeviceGetPowerUsage", self._board)
        return int(value) if value is not None else None

    # nvmlClockType_t (pynvml NVML_CLOCK_SM, NVML_CLOCK_MEM)
    _CLOCK_SM, _CLOCK_MEM = 1, 2

    def clocks(self) -> dict[str, int | None]:
        """The board's current SM and memory clocks (MHz), performance state (0 = P0, the fastest) and clock-event
        reason mask (nvmlClocksEventReason* bits; the older ...ThrottleReasons call where the driver lacks it).
        Each None where unreadable."""
        reasons = self._read("nvmlDeviceGetCurrentClocksEventReasons", self._board)
        if reasons is None:
            reasons = self._read("nvmlDeviceGetCurrentClocksThrottleReasons", self._board)
        values = {
            "sm_mhz": self._read("nvmlDeviceGetClockInfo", self._board, self._CLOCK_SM),
            "mem_mhz": self._read("nvmlDeviceGetClockInfo", self._board, self._CLOCK_MEM),
            "pstate": self._read("nvmlDeviceGetPerformanceState", self._board),
            "event_reasons": reasons,
        }
        return {k: int(v) if v is not None else None for k, v in values.items()}

    def max_clocks(self) -> dict[str, int | None]:
        """The board's maximum SM and memory clocks (MHz), or None each where unreadable."""
        sm = self._read("nvmlDeviceGetMaxClockInfo", self._board, self._CLOCK_SM)
        mem = self._read("nvmlDeviceGetMaxClockInfo", self._board, self._CLOCK_MEM)
        return {"sm_mhz": int(sm) if sm is not None else None, "mem_mhz": int(mem) if mem is not None else None}

    def close(self) -> None:
        if self.available:
            try:
                self._nvml.nvmlShutdown()
            except Exception:
                pass
            self._handle = self._board = None
