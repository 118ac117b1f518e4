"""Summary statistics for timing samples: percentiles, mean, stdev, always with the sample count."""

from __future__ import annotations

import math
from collections.abc import Sequence
from statistics import fmean, stdev


def percentile(sorted_samples: Sequence[float], q: float) -> float:
    """q-th percentile (0..100) by linear interpolation between order statistics (numpy's default)."""
    if not sorted_samples:
        raise ValueError("percentile of no samples")
    if not 0 <= q <= 100:
        raise ValueError(f"q={q} is not within 0..100")
    pos = (len(sorted_samples) - 1) * q / 100
    lo = math.floor(pos)
    hi = min(lo + 1, len(sorted_samples) - 1)
    return sorted_samples[lo] + (sorted_samples[hi] - sorted_samples[lo]) * (pos - lo)


def summarize(samples: Sequence[float]) -> dict[str, float | int | None]:
    """{n, p50, p90, p99, mean, stdev, min, max}; figures are None when there are no samples.

    n is kept beside the percentiles so that a p99 of 12 samples is visibly weak.
    """
    if not samples:
        return {"n": 0, "p50": None, "p90": None, "p99": None, "mean": None, "stdev": None, "min": None, "max": None}
    s = sorted(samples)
    return {
        "n": len(s),
        "p50": percentile(s, 50),
        "p90": percentile(s, 90),
        "p99": percentile(s, 99),
        "mean": fmean(s),
        "stdev": stdev(s) if len(s) > 1 else 0.0,
        "min": s[0],
        "max": s[-1],
    }
