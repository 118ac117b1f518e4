"""The hardware catalog: conf/hardware/*.yaml as data (facts with sources), and matching the device a
run actually got against it. Unknown hardware gives None and a warning that names the override, never
a borrowed figure."""

from __future__ import annotations

import copy
import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from omegaconf import OmegaConf

from harness.config import CONF_DIR
from harness.hardware import is_mig

FLOP_PER_S_PER_TFLOPS = 1e12
_PRICE_KEYS = ("price_provider", "price_instance", "price_region", "price_as_of", "price_source")


@functools.lru_cache(maxsize=256)
def _parsed(path: str, mtime_ns: int, size: int) -> dict[str, Any]:
    """One catalog file as data; cached per file, modification time and size, so an edited file is read again."""
    return OmegaConf.to_container(OmegaConf.load(path), resolve=True)


def entries() -> dict[str, dict[str, Any]]:
    """Every catalog entry (a conf/hardware file with facts), by name: copies, the caller may change them."""
    out = {}
    for path in sorted((CONF_DIR / "hardware").glob("*.yaml")):
        stat = path.stat()
        entry = copy.deepcopy(_parsed(str(path), stat.st_mtime_ns, stat.st_size))
        if entry.get("family"):
            out[entry["name"]] = entry
    return out


def match(device_name: str, catalog: Mapping[str, Mapping[str, Any]] | None = None) -> list[str]:
    """Names of the entries whose patterns match the whole of `device_name` (case-insensitive).

    Anchored on purpose: "NVIDIA H200 NVL", "NVIDIA GH200 480GB" or a MIG slice of an A100 contain a
    catalog name but have other peaks and prices; they stay unknown rather than borrow those figures."""
    catalog = entries() if catalog is None else catalog
    name = device_name.strip()
    return [
        entry
        for entry, e in catalog.items()
        if any(re.fullmatch(p, name, flags=re.IGNORECASE) for p in e.get("match") or [])
    ]


@dataclass(frozen=True)
class Facts:
    """What the harness knows about the hardware a run used, and how it knows it."""

    entry: str | None  # catalog entry name, or None when unknown
    how: str  # "detected", "chosen (hardware=<name>)" or "unknown"
    hardware: Mapping[str, Any]  # the catalog entry with the user's hardware.* overrides on top
    user_price: bool = False  # usd_per_hour came from the user, not the catalog
    warnings: tuple[str, ...] = ()

    def peak_flop_per_s(self, dtype: str) -> float | None:
        tflops = (self.hardware.get("peak_tflops") or {}).get(dtype)
        return tflops * FLOP_PER_S_PER_TFLOPS if tflops else None

    def price(self) -> dict[str, Any] | None:
        """Price inputs for the cost section, or None when no price is known."""
        usd = self.hardware.get("usd_per_hour")
        if usd is None:
            return None
        return {
            "usd_per_hour": float(usd),
            "unit": self.hardware.get("price_unit") or "device",
            "hardware": self.entry,
            **{k.removeprefix("price_"): self.hardware.get(k) for k in _PRICE_KEYS},
            "how": "user (hardware.usd_per_hour)"
            if self.user_price
            else (self.how if self.how.startswith("assumed") else f"catalog (hardware={self.entry})"),
            "assumed": self.how.startswith("assumed"),
        }


def _mig_warning(device_name: str) -> str:
    return (
        f"'{device_name}' is a MIG slice: the whole GPU's peaks would understate MFU by up to 7x and its "
        "price overstate the cost, so both stay null unless you set hardware.peak_tflops.<dtype>=<slice "
        "TFLOP/s> and hardware.usd_per_hour=<slice USD/h>; NVML energy and used memory are the whole "
        "board's, shared with the other slices"
    )


def resolve(hardware_cfg: Mapping[str, Any], device_type: str, device_name: str) -> Facts:
    """Facts for this run: the chosen entry, or for hardware=auto the entry the device name matches;
    hardware.* values the user set on the command line win over the catalog's."""
    hw = dict(hardware_cfg)
    catalog = entries()
    warnings: list[str] = []
    if hw.get("family"):  # the user chose an entry, e.g. hardware=h100_sxm
        name = hw["name"]
        base = catalog.get(name, {})
        how = f"chosen (hardware={name})"
        if device_type == "cuda" and hw.get("match") and not match(device_name, {name: hw}):
            warnings.append(
                f"hardware={name} was chosen but the device is '{device_name}': peaks and price are "
                f"those of {hw['family']}, not of the device measured"
            )
    else:  # hardware=auto/cpu/cuda: look the detected name up
        names = match(device_name, catalog)
        if device_type == "cuda" and is_mig(device_name):
            warnings.append(_mig_warning(device_name))
        if len(names) > 1:
            warnings.append(f"'{device_name}' matches several catalog entries ({', '.join(names)}): set hardware=<one>")
        name = names[0] if len(names) == 1 else None
        base = catalog[name] if name else {}
        how = "detected" if name else "unknown"
        user = {k: v for k, v in hw.items() if v not in (None, [], {}) and k not in ("name", "device", "price_unit")}
        if "usd_per_hour" in user:
            user["price_unit"] = hw.get("price_unit")
        hw = {**base, **user}
    user_price = hw.get("usd_per_hour") is not None and hw.get("usd_per_hour") != base.get("usd_per_hour")
    if user_price:  # the catalog's provenance does not describe the user's number
        hw.update({k: hw.get(k) if hw.get(k) != base.get(k) else None for k in _PRICE_KEYS})
    assumed = nearest_cpu_entry() if device_type == "cpu" and hw.get("usd_per_hour") is None else None
    if assumed is not None:  # priced by the nearest entry that honestly fits, said so (never silently)
        name, why = assumed
        hw = {**catalog[name], **{k: v for k, v in hw.items() if v not in (None, [], {})}, "name": name}
        how = f"assumed: nearest catalog entry {name} ({why})"
        warnings.append(
            f"price assumed: {device_name} is not in the catalog; priced as {name} ({why}). State yours with "
            f"hardware={name} or hardware.usd_per_hour=<USD per vCPU-hour> hardware.price_unit=vcpu"
        )
        return Facts(name, how, hw, False, tuple(warnings))
    if hw.get("usd_per_hour") is None:
        choices = ", ".join(n for n, e in catalog.items() if e.get("device") == device_type)
        warnings.append(
            f"unknown hardware '{device_name}': no price, so cost is null; set hardware=<one of {choices}> "
            "or hardware.usd_per_hour=<USD per device-hour>"
        )
    if device_type == "cuda" and not hw.get("peak_tflops"):
        warnings.append(
            f"unknown GPU '{device_name}': no peak FLOP/s, so MFU is null; set hardware=<entry> or "
            "hardware.peak_tflops.<dtype>=<TFLOP/s>"
        )
    return Facts(name, how, hw, user_price, tuple(warnings))


# CPU generations that have an entry, by /proc/cpuinfo's vendor, family and model numbers (why: a cloud VM's
# model name is often masked, e.g. "Intel(R) Xeon(R) Processor", but the family/model numbers are not).
_CPU_GENERATIONS = (
    ("AuthenticAMD", 25, None, "cpu_c7a", "AMD family 25 (Zen 3/4, EPYC Milan/Genoa): nearest entry AWS c7a"),
    ("GenuineIntel", 6, 143, "cpu_c7i", "Intel family 6 model 143 (Xeon Sapphire Rapids): AWS c7i"),
    (
        "GenuineIntel",
        6,
        207,
        "cpu_c7i",
        "Intel family 6 model 207 (Xeon Emerald Rapids, the Sapphire Rapids platform): nearest entry AWS c7i",
    ),
)


def cpu_signature(cpuinfo: str) -> dict[str, object]:
    """vendor, family and model numbers from the first processor of a /proc/cpuinfo text."""
    out: dict[str, object] = {}
    for line in cpuinfo.splitlines():
        key, _, value = (part.strip() for part in line.partition(":"))
        if key == "vendor_id":
            out.setdefault("vendor", value)
        elif key in ("cpu family", "model") and value.isdigit():
            out.setdefault("family" if key == "cpu family" else "model", int(value))
        elif not line.strip() and out:
            break
    return out


def nearest_cpu_entry(cpuinfo: str | None = None) -> tuple[str, str] | None:
    """(entry, why) for a CPU not in the catalog, from its vendor and generation; None when nothing fits."""
    if cpuinfo is None:
        try:
            with open("/proc/cpuinfo") as handle:
                cpuinfo = handle.read()
        except OSError:
            return None
    sig = cpu_signature(cpuinfo)
    for vendor, family, model, entry, why in _CPU_GENERATIONS:
        if sig.get("vendor") == vendor and sig.get("family") == family and model in (None, sig.get("model")):
            return entry, why
    return None
