"""Interference over a run's timed window: what else used the CPUs and the GPU, and whether that makes the
run `disturbed`. Pure functions of snapshots (harness/probes/interference.py takes them) and of results.

Others' CPU = busy time of the run's cores (/proc/stat, the cores of its CPU affinity) over the window minus
the CPU time of the run's own processes (the worker with its threads and children, and on a torchrun node
its sibling ranks), as a share of those cores' time: the same threshold means the same on 2 and 64 cores.
Steal = time the hypervisor gave those cores' slots to someone else, as a share of their time.
Docs: docs/results.md (`interference`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

# /proc/stat cpuN fields, in the kernel's order (proc(5)); guest and guest_nice are already inside user/nice
USER, NICE, SYSTEM, IDLE, IOWAIT, IRQ, SOFTIRQ, STEAL = range(8)
BUSY_FIELDS = (USER, NICE, SYSTEM, IRQ, SOFTIRQ)
TOTAL_FIELDS = (USER, NICE, SYSTEM, IDLE, IOWAIT, IRQ, SOFTIRQ, STEAL)
NOT_READABLE = "not readable"
PID_NAMESPACE_NOTE = "own processes not among NVML's (pid namespace): one listed process is taken to be this run"


@dataclass(frozen=True)
class Thresholds:
    """Above any of these the run is disturbed (config `interference.*`, harness/config.py)."""

    max_other_cpu_share: float = 0.10
    max_steal_share: float = 0.05
    max_other_gpu_processes: int = 0
    min_sm_clock_fraction: float = 0.90


@dataclass(frozen=True)
class CpuSnapshot:
    """The counters at one instant: per-core /proc/stat ticks and the run's own CPU ticks (USER_HZ)."""

    per_cpu: Mapping[int, Sequence[int]]
    own_ticks: int
    own_pids: int
    loadavg: tuple[float, float, float] | None = None
    freq_mhz: Mapping[int, float] | None = None
    freq_source: str | None = None


def parse_proc_stat(text: str) -> dict[int, tuple[int, ...]]:
    """The `cpuN` lines of /proc/stat → {N: ticks per field}; the aggregate `cpu` line is left out."""
    out: dict[int, tuple[int, ...]] = {}
    for line in text.splitlines():
        name, _, rest = line.partition(" ")
        if name.startswith("cpu") and name[3:].isdigit():
            values = [int(v) for v in rest.split()]
            out[int(name[3:])] = tuple(values + [0] * (len(TOTAL_FIELDS) - len(values)))  # old kernels: no steal
    return out


def parse_pid_stat(text: str) -> tuple[int, int]:
    """/proc/<pid>/stat → (ppid, utime + stime + cutime + cstime in ticks). The name (field 2) may hold spaces
    and parentheses, so fields are counted from its last ')'. cutime/cstime hold reaped children, so the sum
    stays continuous when a child of the run exits inside the window."""
    rest = text[text.rindex(")") + 2 :].split()
    # rest[0] is field 3 (state): ppid is field 4, utime..cstime fields 14..17
    return int(rest[1]), sum(int(v) for v in rest[11:15])


def family(stats: Mapping[int, tuple[int, int]], roots: Iterable[int]) -> set[int]:
    """`roots` and every descendant of them, from {pid: (ppid, ticks)}."""
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in stats.items():
        children.setdefault(ppid, []).append(pid)
    found, todo = set(), [p for p in roots if p in stats]
    while todo:
        pid = todo.pop()
        if pid not in found:
            found.add(pid)
            todo.extend(children.get(pid, ()))
    return found


def _sum(per_cpu: Mapping[int, Sequence[int]], cores: Sequence[int], which: Sequence[int]) -> int:
    return sum(per_cpu[c][i] for c in cores if c in per_cpu for i in which)


def cpu_window(begin: CpuSnapshot, end: CpuSnapshot, cores: Sequence[int], hz: float) -> dict[str, Any]:
    """Others' CPU and steal over the window on `cores` (the run's affinity), in seconds and as shares of
    those cores' time. Others' time cannot be below 0: when the own count runs ahead of the per-core
    counters by a tick or so (they are sampled differently), it is clamped."""
    cores = sorted(c for c in cores if c in begin.per_cpu and c in end.per_cpu)
    if not cores:
        return {"cores": [], "n_cores": 0, "note": "none of the run's cores is in /proc/stat"}
    total = _sum(end.per_cpu, cores, TOTAL_FIELDS) - _sum(begin.per_cpu, cores, TOTAL_FIELDS)
    busy = _sum(end.per_cpu, cores, BUSY_FIELDS) - _sum(begin.per_cpu, cores, BUSY_FIELDS)
    steal = _sum(end.per_cpu, cores, (STEAL,)) - _sum(begin.per_cpu, cores, (STEAL,))
    own = end.own_ticks - begin.own_ticks
    other = max(0, busy - own)
    return {
        "cores": cores,
        "n_cores": len(cores),
        "cores_s": total / hz,
        "busy_s": busy / hz,
        "own_s": own / hz,
        "own_processes": end.own_pids,
        "other_s": other / hz,
        "steal_s": steal / hz,
        "other_cpu_share": other / total if total > 0 else None,
        "steal_share": steal / total if total > 0 else None,
    }


def freq_summary(freq_mhz: Mapping[int, float] | None, cores: Sequence[int]) -> dict[str, float] | None:
    """Mean, min and max MHz over the run's cores, or None when unreadable."""
    values = [freq_mhz[c] for c in cores if freq_mhz and c in freq_mhz]
    if not values:
        return None
    return {"mean": sum(values) / len(values), "min": min(values), "max": max(values)}


def cpu_section(begin: CpuSnapshot, end: CpuSnapshot, cores: Sequence[int], hz: float, window_s: float) -> dict:
    """The CPU part of the `interference` section (docs/results.md)."""
    out = {"window_s": window_s, **cpu_window(begin, end, cores, hz)}
    out["loadavg_start"] = list(begin.loadavg) if begin.loadavg else None
    out["loadavg_end"] = list(end.loadavg) if end.loadavg else None
    start, stop = freq_summary(begin.freq_mhz, cores), freq_summary(end.freq_mhz, cores)
    out["cpu_freq_mhz_start"], out["cpu_freq_mhz_end"] = start, stop
    out["cpu_freq_source"] = (end.freq_source or begin.freq_source) if (start or stop) else NOT_READABLE
    return out


def gpu_others(snapshots: Sequence[Sequence[Mapping[str, Any]] | None], own_pids: set[int]) -> dict[str, Any]:
    """Other processes on the run's GPU from NVML's process lists taken at the window's start and end
    (`pid`, `used_gpu_memory_bytes`, `kind`): every pid seen that is not one of the run's. NVML lists host
    pids: where none of them is the run's (a container's pid namespace) one is taken to be the run's."""
    read = [s for s in snapshots if s is not None]
    if not read:
        return {"other_processes": None, "note": "NVML process lists not readable"}
    seen: dict[int, dict[str, Any]] = {}
    for snap in read:
        for p in snap:
            seen.setdefault(int(p["pid"]), dict(p))
    others = [p for pid, p in sorted(seen.items()) if pid not in own_pids]
    note = None
    if seen and len(others) == len(seen):
        note = PID_NAMESPACE_NOTE
        return {"other_processes": max(0, len(seen) - 1), "processes": others, "note": note}
    return {"other_processes": len(others), "processes": others, "note": note}


def judge(section: Mapping[str, Any], t: Thresholds) -> tuple[bool | None, list[str]]:
    """(disturbed, reasons): True when a figure is above its threshold; None when nothing could be measured."""
    reasons, measured = [], False
    for cpu in section.get("nodes") or []:
        n = cpu.get("n_cores")
        where = f" on node {cpu['node']}" if len(section["nodes"]) > 1 else ""
        other, steal = cpu.get("other_cpu_share"), cpu.get("steal_share")
        if other is not None:
            measured = True
            if other > t.max_other_cpu_share:
                reasons.append(
                    f"other processes used {other:.0%} of the {n} available cores' time{where} "
                    f"(threshold interference.max_other_cpu_share={t.max_other_cpu_share:g})"
                )
        if steal is not None and steal > t.max_steal_share:
            reasons.append(
                f"steal time was {steal:.0%} of the cores' time{where} "
                f"(threshold interference.max_steal_share={t.max_steal_share:g})"
            )
    for gpu in section.get("gpus") or []:
        reasons += _clock_reasons(gpu, t)
        measured = measured or bool(gpu.get("clocks"))
        count = gpu.get("other_processes")
        if count is None:
            continue
        measured = True
        if count > t.max_other_gpu_processes:
            pids = ", ".join(str(p["pid"]) for p in gpu.get("processes") or [])
            reasons.append(
                f"{count} other process(es) on GPU {gpu.get('device')} (pids {pids}; "
                f"threshold interference.max_other_gpu_processes={t.max_other_gpu_processes})"
            )
    return (bool(reasons) if measured else None), reasons


def _clock_reasons(gpu: Mapping[str, Any], t: Thresholds) -> list[str]:
    """Why the GPU's clocks make the window disturbed: its SM clock below min_sm_clock_fraction of its maximum at
    some reading, or clocks held back for power or heat (harness.probes.clocks.POWER_OR_HEAT)."""
    from harness.probes.clocks import POWER_OR_HEAT, reason_names

    clocks = gpu.get("clocks") or {}
    out = []
    low, peak = (clocks.get("sm_mhz") or {}).get("min"), clocks.get("sm_max_mhz")
    if low is not None and peak and low < t.min_sm_clock_fraction * peak:
        out.append(
            f"GPU {gpu.get('device')} SM clock fell to {low} MHz in the window, below {t.min_sm_clock_fraction:g} of "
            f"its maximum {peak} MHz (threshold interference.min_sm_clock_fraction={t.min_sm_clock_fraction:g})"
        )
    held = (clocks.get("event_reasons_mask") or 0) & POWER_OR_HEAT
    if held:
        out.append(
            f"GPU {gpu.get('device')} clocks were held back for power or heat in the window "
            f"(NVML clock-event reasons: {', '.join(reason_names(held))})"
        )
    return out


def section(parts: Sequence[Mapping[str, Any] | None], t: Thresholds) -> dict[str, Any] | None:
    """Every rank's reading (`cpu` from each node's local rank 0, `gpu` from each GPU rank) → the result's
    `interference` section with its verdict; None when no rank took a reading."""
    parts = [p for p in parts if p]
    if not parts:
        return None
    nodes = [{"node": p.get("node", 0), **p["cpu"]} for p in parts if p.get("cpu")]
    gpus = [{"rank": p.get("rank", 0), **p["gpu"]} for p in parts if p.get("gpu")]
    out: dict[str, Any] = {"nodes": nodes, "gpus": gpus}
    out["thresholds"] = {
        "max_other_cpu_share": t.max_other_cpu_share,
        "max_steal_share": t.max_steal_share,
        "max_other_gpu_processes": t.max_other_gpu_processes,
        "min_sm_clock_fraction": t.min_sm_clock_fraction,
    }
    disturbed, reasons = judge(out, t)
    out["disturbed"], out["reasons"] = disturbed, reasons
    out["reason"] = "; ".join(reasons) or None
    return out


def warning(sec: Mapping[str, Any] | None) -> str | None:
    """The result's warning for a disturbed run, naming what to do about it."""
    if not sec or not sec.get("disturbed"):
        return None
    return (
        f"disturbed: {sec['reason']}; its timings are not comparable with an undisturbed run's: "
        "measure it again on a quiet machine (or raise the interference.* thresholds if this load is expected)"
    )


def disturbed(result: Mapping[str, Any]) -> str | None:
    """The reason a stored result is disturbed, or None (undisturbed, not measured, or an older file)."""
    sec = result.get("interference")
    if isinstance(sec, Mapping) and sec.get("disturbed"):
        return str(sec.get("reason") or "disturbed")
    return None


def columns(result: Mapping[str, Any]) -> dict[str, Any]:
    """The report's flat columns (docs/results.md, report columns): the flag, its reason, and the worst
    figure over nodes and GPUs; None where the run has no interference section (older files)."""
    sec = result.get("interference")
    if not isinstance(sec, Mapping):
        return {"disturbed": None, "disturbed_reason": None}
    nodes, gpus = sec.get("nodes") or [], sec.get("gpus") or []

    def worst(items: Sequence[Mapping[str, Any]], name: str) -> Any:
        values = [i[name] for i in items if i.get(name) is not None]
        return max(values) if values else None

    return {
        "disturbed": sec.get("disturbed"),
        "disturbed_reason": sec.get("reason"),
        "interference_other_cpu_share": worst(nodes, "other_cpu_share"),
        "interference_steal_share": worst(nodes, "steal_share"),
        "interference_gpu_other_processes": worst(gpus, "other_processes"),
    }
