"""Capacity search (serving.search=max_rate): the highest Poisson rate whose chosen latency percentile meets
every SLO bound — MLPerf Inference's Server metric, found with a bounded number of load probes.

Doubling from the start rate until a probe fails (or halving until one passes), then bisection between
the highest passing and the lowest failing rate until (fail - pass) / pass <= tolerance. Every probe is
kept. A probe whose generator ran late (its offered load was not the one asked for) does not count as a pass.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Probe:
    rate_req_per_s: float
    passed: bool
    reason: str
    summary: dict[str, Any]  # the probe's serving metrics (harness.serving.metrics.summarize_run)
    outcomes: list[Any] = field(default_factory=list)  # its requests (harness.serving.metrics.Outcome)


@dataclass
class Capacity:
    capacity_req_per_s: float | None  # the highest passing rate; None when no probe passed
    lowest_failing_req_per_s: float | None
    converged: bool  # both bounds found and within the tolerance
    reason: str
    probes: list[Probe] = field(default_factory=list)

    def best(self) -> Probe | None:
        passing = [p for p in self.probes if p.passed]
        return max(passing, key=lambda p: p.rate_req_per_s) if passing else None


def _next_rate(lo: float | None, hi: float | None) -> float:
    if lo is None:
        return hi / 2
    if hi is None:
        return lo * 2
    return (lo + hi) / 2


async def search(
    probe: Callable[[float], Awaitable[Probe]], start_rate: float, max_probes: int, tolerance: float
) -> Capacity:
    """Run probes (at most max_probes) and return the capacity with every probe."""
    probes: list[Probe] = []
    lo: float | None = None  # highest passing rate
    hi: float | None = None  # lowest failing rate
    rate = start_rate
    while len(probes) < max_probes:
        p = await probe(rate)
        probes.append(p)
        if p.passed:
            lo = rate if lo is None else max(lo, rate)
        else:
            hi = rate if hi is None else min(hi, rate)
        if lo is not None and hi is not None and (hi - lo) / lo <= tolerance:
            break
        rate = _next_rate(lo, hi)
    converged = lo is not None and hi is not None and (hi - lo) / lo <= tolerance
    if lo is None:
        lowest = min(probes, key=lambda p: p.rate_req_per_s)
        reason = f"no probe met the SLO: the lowest, {lowest.rate_req_per_s:g} req/s, failed: {lowest.reason}"
    elif hi is None:
        reason = f"every probe met the SLO: capacity is at least {lo:g} req/s (raise serving.search_max_probes)"
    elif converged:
        reason = f"between {lo:g} (met) and {hi:g} req/s (not met), within tolerance {tolerance:g}"
    else:
        reason = f"between {lo:g} and {hi:g} req/s after {len(probes)} probes: not within tolerance {tolerance:g}"
    return Capacity(lo, hi, converged, reason, probes)
