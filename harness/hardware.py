"""Which device a run uses, and what it is called: detected, never assumed."""

from __future__ import annotations

import os
import platform
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from harness.errors import UnsupportedError


@dataclass(frozen=True)
class Device:
    type: str  # "cpu" | "cuda"
    name: str
    index: int | None = None  # CUDA ordinal
    count: int = 1  # devices of this type visible to the process
    capability: str | None = None  # CUDA compute capability, e.g. "9.0"

    @property
    def torch_device(self) -> str:
        return "cpu" if self.type == "cpu" else f"cuda:{self.index}"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def select(requested: str, cuda: Any) -> Device:
    """The device for `hardware.device` (auto | cpu | cuda); cuda without a GPU is unsupported."""
    has_cuda = bool(cuda is not None and cuda.is_available())
    if requested == "cuda" and not has_cuda:
        raise UnsupportedError("hardware.device=cuda but no CUDA device is visible to torch")
    if requested == "cpu" or not has_cuda:
        return Device(type="cpu", name=cpu_name(), count=os.cpu_count() or 1)
    index = cuda.current_device()
    major, minor = cuda.get_device_capability(index)
    return Device(
        type="cuda",
        name=cuda.get_device_name(index),
        index=index,
        count=cuda.device_count(),
        capability=f"{major}.{minor}",
    )
