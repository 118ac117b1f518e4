"""Arrival processes for open-loop load: when each request is sent, relative to the start (seconds).

Seeded: the same seed gives the same schedule. Gamma inter-arrival times follow vLLM's `bench serve`
(shape = burstiness, scale = 1 / (rate x burstiness)): the mean rate stays `rate`, and the coefficient of
variation of the gaps is 1 / sqrt(burstiness) — 1 is Poisson (exponential gaps), < 1 burstier, > 1 smoother.
`closed` has no schedule: its users send when their previous request ends (harness.serving.loadgen).
"""

from __future__ import annotations

import numpy as np

OPEN_LOOP = ("poisson", "gamma", "constant")


def gaps_s(kind: str, rate: float, n: int, burstiness: float = 1.0, seed: int = 0) -> np.ndarray:
    """`n` inter-arrival times in seconds for a mean of `rate` requests per second."""
    if rate <= 0:
        raise ValueError(f"rate={rate} must be > 0")
    rng = np.random.default_rng(seed)
    if kind == "constant":
        return np.full(n, 1.0 / rate)
    if kind == "poisson":
        return rng.exponential(1.0 / rate, n)
    if kind == "gamma":
        if burstiness <= 0:
            raise ValueError(f"burstiness={burstiness} must be > 0")
        return rng.gamma(shape=burstiness, scale=1.0 / (rate * burstiness), size=n)
    raise ValueError(f"arrival={kind!r} is not one of {OPEN_LOOP}")


def schedule_s(
    kind: str, rate: float, n: int, burstiness: float = 1.0, seed: int = 0, duration_s: float | None = None
) -> list[float]:
    """Send times (seconds from the start) of at most `n` requests; the first goes at 0. With
    `duration_s`, only the arrivals before it (still at most `n`)."""
    gaps = gaps_s(kind, rate, n, burstiness, seed)
    times = np.concatenate([[0.0], np.cumsum(gaps[: n - 1])]) if n else np.zeros(0)
    if duration_s is not None:
        times = times[times < duration_s]
    return [float(t) for t in times]
