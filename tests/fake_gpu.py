"""Fakes of torch.cuda and of pynvml (nvidia-ml-py) that behave like the real libraries where the harness
relies on them: return shapes and types, NVMLError subclasses, MIG handles, host PIDs, bf16 emulation."""

from __future__ import annotations

import ctypes
from dataclasses import dataclass, field
from types import SimpleNamespace

import pynvml


def nvml_error(code: int) -> pynvml.NVMLError:
    return pynvml.NVMLError(code)  # pynvml maps the code to its subclass, e.g. NVMLError_NotFound


@dataclass
class FakeBoard:
    """One GPU as NVML sees it. `mig_slices` are (uuid, name, total bytes) of its MIG devices."""

    name: str = "NVIDIA H100 80GB HBM3"
    uuid: str = "GPU-11111111-2222-3333-4444-555555555555"
    pci_bus_id: str = "00000000:3B:00.0"
    total_bytes: int = 81559 * 2**20  # nvidia-smi's 81559 MiB on an H100 SXM
    used_bytes: int = 5 * 2**30
    energy_mj: int | None = 1_000_000
    power_mw: int | None = 300_000
    processes: list = field(default_factory=list)  # SimpleNamespace(pid=, usedGpuMemory=)
    graphics: list = field(default_factory=list)  # graphics processes, the same shape
    mig_slices: list = field(default_factory=list)
    capability: tuple = (9, 0)  # nvmlDeviceGetCudaComputeCapability
    # clocks: each read takes the next value of a timeline (the last one repeats); None: NVML_ERROR_NOT_SUPPORTED
    sm_mhz: list = field(default_factory=lambda: [1980])
    mem_mhz: list = field(default_factory=lambda: [3201])
    pstate: list = field(default_factory=lambda: [0])
    event_reasons: list | None = field(default_factory=lambda: [0])
    event_api: bool = True  # nvmlDeviceGetCurrentClocksEventReasons exists (newer drivers); else ...ThrottleReasons
    max_sm_mhz: int = 1980
    max_mem_mhz: int = 3201


class _Handle:
    def __init__(self, board: FakeBoard, mig: tuple | None = None):
        self.board, self.mig = board, mig


class FakeNvml:
    """A machine's NVML: boards enumerated in PCI order, whatever CUDA's order is."""

    NVMLError = pynvml.NVMLError

    def __init__(self, boards: list[FakeBoard]):
        self.boards = boards
        self.inits = self.shutdowns = 0
        self.calls: list[str] = []

    def nvmlInit(self):
        self.inits += 1

    def nvmlShutdown(self):
        self.shutdowns += 1

    def nvmlDeviceGetCount(self):
        return len(self.boards)

    def nvmlSystemGetDriverVersion(self):
        return "560.35.03"

    def nvmlDeviceGetHandleByIndex(self, index):
        self.calls.append(f"index {index}")
        if not 0 <= index < len(self.boards):
            raise nvml_error(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        return _Handle(self.boards[index])

    def nvmlDeviceGetHandleByUUID(self, uuid):
        self.calls.append(f"uuid {uuid}")
        for b in self.boards:
            if b.uuid == uuid:
                return _Handle(b)
            for s in b.mig_slices:
                if s[0] == uuid:
                    return _Handle(b, s)
        raise nvml_error(pynvml.NVML_ERROR_NOT_FOUND)

    def nvmlDeviceGetHandleByPciBusId(self, bus_id):
        self.calls.append(f"pci {bus_id}")
        for b in self.boards:
            if b.pci_bus_id.lower() == bus_id.lower():
                return _Handle(b)
        raise nvml_error(pynvml.NVML_ERROR_NOT_FOUND)

    def nvmlDeviceIsMigDeviceHandle(self, h):
        return ctypes.c_uint(1 if h.mig else 0)  # pynvml returns the c_uint itself

    def nvmlDeviceGetDeviceHandleFromMigDeviceHandle(self, h):
        if not h.mig:
            raise nvml_error(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        return _Handle(h.board)

    def nvmlDeviceGetMigMode(self, h):
        return [1 if h.board.mig_slices else 0, 1 if h.board.mig_slices else 0]  # [current, pending]

    @staticmethod
    def _next(timeline):
        if timeline is None:
            raise nvml_error(pynvml.NVML_ERROR_NOT_SUPPORTED)
        return timeline.pop(0) if len(timeline) > 1 else timeline[0]

    def nvmlDeviceGetClockInfo(self, h, clock_type):  # pynvml: an int, MHz
        if clock_type == pynvml.NVML_CLOCK_SM:
            return self._next(h.board.sm_mhz)
        if clock_type == pynvml.NVML_CLOCK_MEM:
            return self._next(h.board.mem_mhz)
        raise nvml_error(pynvml.NVML_ERROR_INVALID_ARGUMENT)

    def nvmlDeviceGetMaxClockInfo(self, h, clock_type):
        return {pynvml.NVML_CLOCK_SM: h.board.max_sm_mhz, pynvml.NVML_CLOCK_MEM: h.board.max_mem_mhz}[clock_type]

    def nvmlDeviceGetPerformanceState(self, h):  # pynvml: the _nvmlPstates_t value, 0 (P0) .. 15, 32 unknown
        return self._next(h.board.pstate)

    def nvmlDeviceGetCurrentClocksEventReasons(self, h):  # pynvml: c_ulonglong.value, an int bit mask
        if not h.board.event_api:
            raise nvml_error(pynvml.NVML_ERROR_FUNCTION_NOT_FOUND)
        return self._next(h.board.event_reasons)

    def nvmlDeviceGetCurrentClocksThrottleReasons(self, h):
        return self._next(h.board.event_reasons)

    def nvmlDeviceGetCudaComputeCapability(self, h):
        return tuple(h.board.capability)  # pynvml: (major, minor), two ints

    def nvmlDeviceGetName(self, h):
        return h.mig[1] if h.mig else h.board.name

    def nvmlDeviceGetUUID(self, h):
        return h.mig[0] if h.mig else h.board.uuid

    def nvmlDeviceGetMemoryInfo(self, h):
        total = h.mig[2] if h.mig else h.board.total_bytes
        return SimpleNamespace(total=total, used=h.board.used_bytes, free=total - h.board.used_bytes)

    def nvmlDeviceGetComputeRunningProcesses(self, h):
        return list(h.board.processes)

    def nvmlDeviceGetGraphicsRunningProcesses(self, h):
        return list(h.board.graphics)

    def _board_only(self, h, value):
        if h.mig or value is None:  # MIG devices have no energy counter or power sensor of their own
            raise nvml_error(pynvml.NVML_ERROR_NOT_SUPPORTED)
        return value

    def nvmlDeviceGetTotalEnergyConsumption(self, h):
        return self._board_only(h, h.board.energy_mj)

    def nvmlDeviceGetPowerUsage(self, h):
        return self._board_only(h, h.board.power_mw)


class FakeProps(SimpleNamespace):
    """torch.cuda.get_device_properties(i): `uuid` prints as bare hex, as torch's _CUuuid does."""


class FakeUuid:
    def __init__(self, text: str):
        self._text = text

    def __str__(self):
        return self._text


class FakeTorchCuda:
    """torch.cuda for one visible device, as far as harness.hardware and harness.precision use it."""

    def __init__(
        self,
        name="NVIDIA H100 80GB HBM3",
        capability=(9, 0),
        uuid_hex="11111111-2222-3333-4444-555555555555",
        total_memory=79 * 2**30 + 2**29,  # torch reports a little less than NVML's total
        pci=(0, 0x3B, 0),
        count=1,
        available=True,
    ):
        self._name, self._capability, self._count, self._available = name, capability, count, available
        domain, bus, dev = pci if pci is not None else (None, None, None)
        self.props = FakeProps(
            name=name,
            major=capability[0],
            minor=capability[1],
            total_memory=total_memory,
            uuid=FakeUuid(uuid_hex) if uuid_hex else None,
            **({"pci_domain_id": domain, "pci_bus_id": bus, "pci_device_id": dev} if pci is not None else {}),
        )

    def is_available(self):
        return self._available

    def current_device(self):
        return 0

    def device_count(self):
        return self._count

    def get_device_name(self, index=None):
        return self._name

    def get_device_capability(self, index=None):
        return self._capability

    def get_device_properties(self, index=None):
        return self.props

    def is_bf16_supported(self, including_emulation: bool = True):
        # torch.cuda.is_bf16_supported: True from 8.0; below, True by default through emulation
        if self._capability[0] >= 8:
            return True
        return including_emulation
