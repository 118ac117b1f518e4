"""Which device a run uses, and what it is called: detected, never assumed."""

from __future__ import annotations

import os
import platform
import re
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
    uuid: str | None = None  # CUDA's device UUID as NVML writes it: "GPU-<hex>" (a MIG slice: "MIG-<hex>")
    pci_bus_id: str | None = None  # NVML's form, "00000000:3B:00.0"; None where torch does not expose it
    memory_total_bytes: int | None = None  # as torch sees it (a MIG slice: the slice's memory)
    mig: bool = False  # a MIG slice: energy, power and some memory figures are the whole board's

    @property
    def torch_device(self) -> str:
        return "cpu" if self.type == "cpu" else f"cuda:{self.index}"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


# A MIG slice reports its parent's name plus the profile, e.g. "NVIDIA A100-SXM4-40GB MIG 1g.10gb"
# (NVML nvmlDeviceGetName on a MIG handle; torch.cuda.get_device_name says the same).
_MIG = re.compile(r"\bMIG\b", re.IGNORECASE)


def is_mig(device_name: str) -> bool:
    """Whether the name is that of a MIG slice (a fraction of a GPU), not of a whole GPU."""
    return bool(_MIG.search(device_name))


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
    name = cuda.get_device_name(index)
    props = cuda.get_device_properties(index)
    mig = is_mig(name)
    return Device(
        type="cuda",
        name=name,
        index=index,
        count=cuda.device_count(),
        capability=f"{major}.{minor}",
        uuid=_uuid(props, mig),
        pci_bus_id=_pci_bus_id(props),
        memory_total_bytes=int(props.total_memory),
        mig=mig,
    )


def _uuid(props: Any, mig: bool) -> str | None:
    """torch prints the CUDA UUID as bare hex ("8-4-4-4-12"); NVML names it "GPU-..." or, for a MIG
    slice, "MIG-..." (nvmlDeviceGetUUID, and the form CUDA_VISIBLE_DEVICES takes)."""
    raw = getattr(props, "uuid", None)
    if raw is None:
        return None
    text = str(raw)
    if text.startswith(("GPU-", "MIG-")):
        return text
    return ("MIG-" if mig else "GPU-") + text


def _pci_bus_id(props: Any) -> str | None:
    """The PCI address in NVML's form (nvmlPciInfo_t.busId: 8 hex digits of domain), from torch's
    pci_domain_id / pci_bus_id / pci_device_id where this torch has them (newer builds), else None."""
    parts = [getattr(props, k, None) for k in ("pci_domain_id", "pci_bus_id", "pci_device_id")]
    if any(p is None for p in parts):
        return None
    domain, bus, dev = (int(p) for p in parts)
    return f"{domain:08X}:{bus:02X}:{dev:02X}.0"


def synchronize(cuda: Any) -> None:
    """Wait for the device's queued work (CUDA is asynchronous), so that a perf_counter reading after it
    includes that work; nothing to wait for on CPU (cuda None)."""
    if cuda is not None:
        cuda.synchronize()
