"""Timing and memory trackers; the CUDA and NVML paths are driven by fakes (no GPU here)."""

import ctypes
from types import SimpleNamespace
from unittest import mock

import pytest

from harness.probes.memory import CpuMemory, CudaMemory
from harness.probes.nvml import NvmlGpu, nvml_index
from harness.probes.timing import CpuTimer, CudaTimer, timer_for


class FakeEvent:
    clock_ms = 0.0

    def __init__(self, enable_timing=False):
        assert enable_timing
        self.t = None

    def record(self):
        self.t = FakeEvent.clock_ms

    def elapsed_time(self, end):  # CUDA's API: milliseconds
        return end.t - self.t


class FakeCuda:
    Event = FakeEvent

    def __init__(self):
        self.synced, self.peaks_reset = 0, []

    def synchronize(self, device=None):
        self.synced += 1

    def reset_peak_memory_stats(self, device):
        self.peaks_reset.append(device)

    def max_memory_allocated(self, device):
        return 3 * 2**30

    def max_memory_reserved(self, device):
        return 4 * 2**30


def test_cuda_timer_converts_milliseconds_to_seconds_once():
    cuda = FakeCuda()
    timer = timer_for("cuda", cuda, "cuda:0")
    assert isinstance(timer, CudaTimer) and timer.method == "cuda_event"
    FakeEvent.clock_ms = 10.0
    a = timer.mark()
    FakeEvent.clock_ms = 35.0
    b = timer.mark()
    timer.sync()
    assert timer.elapsed_s(a, b) == pytest.approx(0.025) and cuda.synced == 1


def test_cpu_timer_is_monotonic():
    timer = timer_for("cpu")
    assert isinstance(timer, CpuTimer)
    a, b = timer.mark(), timer.mark()
    assert timer.elapsed_s(a, b) >= 0


def test_cuda_memory_resets_then_reads_peaks():
    cuda = FakeCuda()
    mem = CudaMemory(cuda, "cuda:1")
    mem.begin()
    assert cuda.peaks_reset == ["cuda:1"]
    assert mem.end().values == {"cuda_max_allocated_bytes": 3 * 2**30, "cuda_max_reserved_bytes": 4 * 2**30}


def test_cpu_memory_peak_of_window_sees_an_allocation():
    mem = CpuMemory()
    mem.begin()
    block = bytearray(64 * 2**20)  # touched: 64 MiB resident
    out = mem.end().values
    del block
    assert out["peak_rss_bytes"] >= 64 * 2**20
    assert out["process_peak_rss_bytes"] >= out["peak_rss_bytes"]
    assert out["peak_rss_scope"] in ("timed_window", "process")


class FakeNvmlError(Exception):
    pass


def _fake_nvml(**overrides):
    import pynvml

    fake = mock.create_autospec(pynvml, instance=True)
    fake.nvmlDeviceGetHandleByIndex.return_value = "h"
    fake.nvmlDeviceIsMigDeviceHandle.return_value = ctypes.c_uint(0)  # pynvml returns the c_uint itself
    fake.nvmlDeviceGetUUID.return_value = "GPU-11111111-2222-3333-4444-555555555555"
    fake.nvmlDeviceGetMigMode.return_value = [0, 0]
    fake.nvmlDeviceGetName.return_value = "NVIDIA H100 80GB HBM3"
    fake.nvmlSystemGetDriverVersion.return_value = b"560.35.03"
    fake.nvmlDeviceGetMemoryInfo.return_value = SimpleNamespace(total=80 * 2**30, used=5 * 2**30, free=75 * 2**30)
    fake.nvmlDeviceGetComputeRunningProcesses.return_value = [
        SimpleNamespace(pid=111, usedGpuMemory=2 * 2**30),
        SimpleNamespace(pid=222, usedGpuMemory=1 * 2**30),
    ]
    for name, value in overrides.items():
        setattr(fake, name, value)
    return fake


def test_nvml_reads_static_facts_and_process_memory():
    fake = _fake_nvml()
    gpu = NvmlGpu(0, nvml=fake)
    assert gpu.available
    assert gpu.info() == {
        "nvml_name": "NVIDIA H100 80GB HBM3",
        "driver_version": "560.35.03",
        "memory_total_bytes": 80 * 2**30,
        "nvml_uuid": "GPU-11111111-2222-3333-4444-555555555555",
        "nvml_matched_by": "index 0 (CUDA_VISIBLE_DEVICES order)",
        "nvml_scope": "device",
        "mig_mode": 0,
        "nvml_error": None,
    }
    assert gpu.memory_used(pid=111) == {
        "nvml_used_bytes": 5 * 2**30,
        "nvml_process_used_bytes": 2 * 2**30,
        "nvml_other_processes": 1,
        "nvml_process_note": None,
        "nvml_memory_scope": "device",
    }
    gpu.close()
    fake.nvmlShutdown.assert_called_once()


def test_nvml_missing_readings_are_none_not_zero():
    fake = _fake_nvml()
    fake.nvmlDeviceGetComputeRunningProcesses.side_effect = FakeNvmlError("Not Supported")
    gpu = NvmlGpu(0, nvml=fake)
    used = gpu.memory_used(pid=111)
    assert used["nvml_process_used_bytes"] is None and used["nvml_other_processes"] is None
    assert used["nvml_used_bytes"] == 5 * 2**30


def test_nvml_unavailable_says_why():
    fake = _fake_nvml()
    fake.nvmlInit.side_effect = FakeNvmlError("Driver Not Loaded")
    gpu = NvmlGpu(0, nvml=fake)
    assert not gpu.available and "Driver Not Loaded" in gpu.error
    assert gpu.info()["nvml_name"] is None and gpu.memory_used()["nvml_used_bytes"] is None


def test_nvml_index_follows_cuda_visible_devices():
    assert nvml_index(0, visible="3,1") == 3
    assert nvml_index(1, visible="3,1") == 1
    assert nvml_index(1, visible="") == 1
    assert nvml_index(0, visible="GPU-uuid-abc") == 0  # UUIDs: fall back to the ordinal


def test_nvml_device_count_respects_visible_devices(monkeypatch):
    from harness.probes.nvml import device_count

    fake = _fake_nvml()
    fake.nvmlDeviceGetCount.return_value = 8
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert device_count(fake) == 8
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,5")
    assert device_count(fake) == 2
    fake.nvmlInit.side_effect = FakeNvmlError("Driver Not Loaded")
    assert device_count(fake) == 0


# --- device identity, MIG and containers, against a fake NVML that behaves like pynvml -----------------

from fake_gpu import FakeBoard, FakeNvml, FakeTorchCuda  # noqa: E402

from harness import hardware  # noqa: E402
from harness.probes.energy import NvmlEnergy  # noqa: E402

A100 = FakeBoard(
    name="NVIDIA A100-SXM4-80GB",
    uuid="GPU-aaaaaaaa-0000-0000-0000-000000000000",
    pci_bus_id="00000000:07:00.0",
    total_bytes=81920 * 2**20,
)
H100 = FakeBoard()  # GPU-11111111-..., 00000000:3B:00.0


def _device(**kw):
    return hardware.select("cuda", FakeTorchCuda(**kw))


def test_nvml_handle_is_found_by_uuid_not_by_ordinal(monkeypatch):
    """A mixed box: NVML index 0 is an A100, but CUDA's device 0 (fastest first) is the H100."""
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    fake = FakeNvml([A100, H100])
    gpu = NvmlGpu(_device(), nvml=fake)
    info = gpu.info()
    assert info["nvml_name"] == "NVIDIA H100 80GB HBM3" and info["nvml_matched_by"] == "uuid"
    assert fake.calls == ["uuid GPU-11111111-2222-3333-4444-555555555555"]
    assert gpu.identity_warnings() == []  # torch's total (79.5 GiB) is within a few % of NVML's


def test_nvml_handle_falls_back_to_the_pci_bus_id(monkeypatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    fake = FakeNvml([A100, H100])
    gpu = NvmlGpu(_device(uuid_hex="99999999-0000-0000-0000-000000000000"), nvml=fake)
    assert gpu.info()["nvml_matched_by"] == "pci_bus_id" and gpu.info()["nvml_name"] == "NVIDIA H100 80GB HBM3"


def test_nvml_by_index_last_and_then_the_cross_check_speaks(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    fake = FakeNvml([A100, H100])
    gpu = NvmlGpu(_device(uuid_hex=None, pci=None), nvml=fake)  # an old torch: no UUID, no PCI fields
    assert gpu.info()["nvml_matched_by"].startswith("index 0") and gpu.info()["nvml_name"] == A100.name
    (warning,) = gpu.identity_warnings()  # both have 80 GB: only the name tells them apart
    assert "is 'NVIDIA A100-SXM4-80GB' but torch runs on 'NVIDIA H100 80GB HBM3'" in warning
    small = FakeBoard(total_bytes=40 * 2**30)  # same name, half the memory: not the device torch has
    (warning,) = NvmlGpu(_device(uuid_hex=None, pci=None), nvml=FakeNvml([small])).identity_warnings()
    assert "bytes but torch's has" in warning


def test_nvml_uuid_from_cuda_visible_devices(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "GPU-11111111-2222-3333-4444-555555555555")
    gpu = NvmlGpu(_device(uuid_hex=None, pci=None), nvml=FakeNvml([A100, H100]))
    assert gpu.info()["nvml_matched_by"] == "uuid (CUDA_VISIBLE_DEVICES)" and gpu.identity_warnings() == []


def test_a_mig_slice_reads_its_memory_and_the_boards_energy(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "MIG-5b1a0000-0000-0000-0000-000000000001")
    slice_name = "NVIDIA A100-SXM4-80GB MIG 1g.10gb"
    board = FakeBoard(
        name=A100.name,
        uuid=A100.uuid,
        pci_bus_id=A100.pci_bus_id,
        total_bytes=A100.total_bytes,
        mig_slices=[("MIG-5b1a0000-0000-0000-0000-000000000001", slice_name, 9728 * 2**20)],
    )
    cuda = FakeTorchCuda(name=slice_name, capability=(8, 0), uuid_hex="5b1a0000-0000-0000-0000-000000000001")
    cuda.props.total_memory = 9728 * 2**20 - 2**27
    gpu = NvmlGpu(hardware.select("cuda", cuda), nvml=FakeNvml([board]))
    info = gpu.info()
    assert gpu.mig and info["nvml_scope"] == "mig-slice" and info["mig_mode"] == 1
    assert info["memory_total_bytes"] == 9728 * 2**20 and gpu.identity_warnings() == []
    assert gpu.energy_mj() == 1_000_000 and gpu.power_mw() == 300_000  # the parent board's sensors
    energy = NvmlEnergy(gpu, "gpu:0")
    energy.begin()
    board.energy_mj += 5_000
    (component,) = energy.end().components
    assert component["energy_j"] == 5.0 and any(f.startswith("board-wide") for f in component["flags"])


def test_in_a_pid_namespace_process_memory_is_unknown_not_shared(monkeypatch):
    """NVML lists host PIDs; the container's own PID (here 7) is not among them."""
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    board = FakeBoard(processes=[SimpleNamespace(pid=3_141_592, usedGpuMemory=2 * 2**30)])
    gpu = NvmlGpu(_device(), nvml=FakeNvml([board]))
    used = gpu.memory_used(pid=7)
    assert used["nvml_process_used_bytes"] is None and used["nvml_other_processes"] == 0
    assert used["nvml_process_note"] == "process memory unknown (pid namespace)"
    energy = NvmlEnergy(gpu, "gpu:0")
    energy.begin()
    board.energy_mj += 2_000
    assert not any("shared-gpu" in f for f in energy.end().components[0]["flags"])
    board.processes.append(SimpleNamespace(pid=2_718_281, usedGpuMemory=None))  # a real neighbour
    assert gpu.memory_used(pid=7)["nvml_other_processes"] == 1
