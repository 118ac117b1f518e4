"""Timing and memory trackers; the CUDA and NVML paths are driven by fakes (no GPU here)."""

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
        "nvml_error": None,
    }
    assert gpu.memory_used(pid=111) == {
        "nvml_used_bytes": 5 * 2**30,
        "nvml_process_used_bytes": 2 * 2**30,
        "nvml_other_processes": 1,
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
