"""Timers of timed steps (the clock probe): perf_counter on CPU, CUDA events on GPU.

Both share one small protocol: `mark()` records a point in time, `sync()` waits for the device, and
`elapsed_s(a, b)` gives the seconds between two marks (valid after `sync()`).
"""

from __future__ import annotations

import time
from typing import Any


class CpuTimer:
    method = "perf_counter"

    def mark(self) -> float:
        return time.perf_counter()

    def sync(self) -> None:
        pass

    def elapsed_s(self, start: float, end: float) -> float:
        return end - start


class CudaTimer:
    """CUDA events record on the stream, so marks cost no host sync; `sync()` waits once at the end."""

    method = "cuda_event"

    def __init__(self, cuda: Any, device: Any = None):
        self._cuda = cuda  # torch.cuda, or a fake in tests
        self._device = device

    def mark(self) -> Any:
        event = self._cuda.Event(enable_timing=True)
        event.record()
        return event

    def sync(self) -> None:
        self._cuda.synchronize(self._device)

    def elapsed_s(self, start: Any, end: Any) -> float:
        return start.elapsed_time(end) / 1e3  # CUDA reports milliseconds


def timer_for(device_type: str, cuda: Any = None, device: Any = None) -> CpuTimer | CudaTimer:
    if device_type == "cuda":
        return CudaTimer(cuda, device)
    return CpuTimer()
