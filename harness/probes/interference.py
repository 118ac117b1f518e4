"""The interference probe: what else ran beside the timed window — CPU time of other processes and steal
time on the run's cores (/proc/stat), load average, CPU frequency, and other processes on its GPU (NVML).

Snapshots are taken in begin() and end() only (outside the timed span of every scenario); the arithmetic
and the verdict live in harness.interference. Where /proc is missing (not Linux), the CPU part is None
with a note, never 0. Protocol: harness.probes.base.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from harness import interference
from harness.probes.base import Reading
from harness.probes.clocks import ClockWatch

PROC = Path("/proc")
SYS_CPU = Path("/sys/devices/system/cpu")


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except (OSError, UnicodeDecodeError):
        return None


def process_stats(proc: Path = PROC) -> dict[int, tuple[int, int]]:
    """{pid: (ppid, CPU ticks with reaped children)} of every process visible in /proc."""
    out = {}
    for entry in proc.iterdir() if proc.is_dir() else ():
        if entry.name.isdigit():
            text = _read(entry / "stat")
            if text:  # a process that ended between listing and reading is simply absent
                try:
                    out[int(entry.name)] = interference.parse_pid_stat(text)
                except (ValueError, IndexError):
                    pass
    return out


def siblings(stats: dict[int, tuple[int, int]], pid: int, proc: Path = PROC) -> list[int]:
    """The other ranks of a torchrun node: children of this process's parent with this process's command line."""
    mine = _read(proc / str(pid) / "cmdline")
    parent = stats.get(pid, (None, 0))[0]
    return [
        p for p, (ppid, _) in stats.items() if ppid == parent and p != pid and _read(proc / str(p) / "cmdline") == mine
    ]


def cpu_freq_mhz(cores: list[int], proc: Path = PROC, sys_cpu: Path = SYS_CPU) -> tuple[dict[int, float], str | None]:
    """Current MHz per core from cpufreq (kHz), else /proc/cpuinfo's `cpu MHz` (in a VM often the nominal
    figure, not the real clock); ({}, None) when neither is readable."""
    freq = {}
    for c in cores:
        text = _read(sys_cpu / f"cpu{c}" / "cpufreq" / "scaling_cur_freq")
        if text and text.strip().isdigit():
            freq[c] = int(text) / 1000
    if freq:
        return freq, "cpufreq scaling_cur_freq"
    current = None
    for line in (_read(proc / "cpuinfo") or "").splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        try:
            if key == "processor":
                current = int(value)
            elif key == "cpu MHz" and current in cores:
                freq[current] = float(value)
        except ValueError:
            continue
    return (freq, "/proc/cpuinfo cpu MHz") if freq else ({}, None)


def _loadavg() -> tuple[float, float, float] | None:
    try:
        return os.getloadavg()
    except OSError:
        return None


class Interference:
    """One rank's interference reading. `measure_cpu`: this rank reads its node's CPU counters (local rank 0);
    `ranks_on_node` > 1: the sibling ranks are the run's own processes; `gpu`: an open NvmlGpu or None."""

    name = "interference"
    measures_energy = False
    reads_mid_window = False

    def __init__(
        self,
        measure_cpu: bool,
        ranks_on_node: int = 1,
        gpu: Any = None,
        gpu_label: str | None = None,
        node: int = 0,
        rank: int = 0,
        proc: Path = PROC,
        sys_cpu: Path = SYS_CPU,
    ):
        self.measure_cpu, self.ranks_on_node, self._gpu, self._gpu_label = measure_cpu, ranks_on_node, gpu, gpu_label
        self.node, self.rank, self._proc, self._sys_cpu = node, rank, proc, sys_cpu
        self._clocks = ClockWatch(gpu) if gpu is not None and gpu.available else None
        self._begin: interference.CpuSnapshot | None = None
        self._gpu_begin: list | None = None
        self._t0 = 0.0
        try:
            self.cores = sorted(os.sched_getaffinity(0))
        except (AttributeError, OSError):
            self.cores = list(range(os.cpu_count() or 1))

    def _own(self) -> tuple[set[int], int]:
        """The run's processes (this one, its sibling ranks, their descendants) and their CPU ticks."""
        stats = process_stats(self._proc)
        roots = [os.getpid()]
        if self.ranks_on_node > 1:
            roots += siblings(stats, os.getpid(), self._proc)
        pids = interference.family(stats, roots)
        return pids, sum(stats[p][1] for p in pids)

    def _snapshot(self) -> tuple[interference.CpuSnapshot | None, set[int]]:
        pids, ticks = self._own()
        if not self.measure_cpu:
            return None, pids
        text = _read(self._proc / "stat")
        if text is None:
            return None, pids
        freq, source = cpu_freq_mhz(self.cores, self._proc, self._sys_cpu)
        per_cpu = interference.parse_proc_stat(text)
        return interference.CpuSnapshot(per_cpu, ticks, len(pids), _loadavg(), freq, source), pids

    def _gpu_processes(self) -> list | None:
        return self._gpu.running_processes() if self._gpu is not None and self._gpu.available else None

    def settled(self) -> bool:
        """During the warm-up: whether the GPU's SM clock is steady (or cannot be waited for); True without a GPU."""
        return self._clocks.settled() if self._clocks is not None else True

    def begin(self) -> None:
        self._begin, _ = self._snapshot()
        self._gpu_begin = self._gpu_processes()
        if self._clocks is not None:
            self._clocks.begin()
        self._t0 = time.perf_counter()

    def read(self) -> Reading | None:
        return None

    def end(self) -> Reading:
        window_s = time.perf_counter() - self._t0
        end, pids = self._snapshot()
        part: dict[str, Any] = {"node": self.node, "rank": self.rank}
        if self.measure_cpu:
            if self._begin is None or end is None:
                part["cpu"] = {"window_s": window_s, "note": "/proc/stat not readable: others' CPU not measured"}
            else:
                hz = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
                part["cpu"] = interference.cpu_section(self._begin, end, self.cores, hz, window_s)
        if self._gpu is not None:
            part["gpu"] = {
                "device": self._gpu_label,
                **interference.gpu_others([self._gpu_begin, self._gpu_processes()], pids),
            }
            if self._clocks is not None:
                part["gpu"]["clocks"] = self._clocks.end()
        return Reading(self.name, sections={"interference": part})

    def close(self) -> None:
        if self._clocks is not None:
            self._clocks.close()
