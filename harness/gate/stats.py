"""The gate's statistics: ratio of medians with a seeded bootstrap interval, and the decision rules.

A timed metric is judged on its repeats (one figure per repeat of the timed window): the ratio
candidate/baseline of the medians, with a percentile-bootstrap confidence interval (Efron & Tibshirani,
*An Introduction to the Bootstrap*, 1993, ch. 13), each side resampled on its own. The decision is
"beyond the threshold with confidence", not "different from 1": a 1 % slowdown measured very precisely
is still a pass at a 5 % threshold. A counted metric (parameters, FLOPs, peak memory) is nearly
deterministic and is compared with a tolerance instead.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

LOWER, HIGHER = "lower", "higher"  # which direction is better for a metric
PROCESSES, REPEATS = "processes", "repeats"  # what the bootstrap resamples (see resampled_quantiles)
RESAMPLING = (PROCESSES, REPEATS)
MAX_HINT_REPEATS = 1000  # beyond this, say "more repeats will not decide" rather than a number


@dataclass(frozen=True)
class RatioEstimate:
    """stat(candidate) / stat(baseline), with a two-sided bootstrap interval [low, high]; stat is the median
    unless another quantile was asked for."""

    ratio: float
    low: float
    high: float
    confidence: float
    n_baseline: int
    n_candidate: int
    baseline_value: float
    candidate_value: float


def seed_for(seed: int, *labels: str) -> np.random.Generator:
    """A generator seeded from the gate's seed and the run/metric it serves: reproducible, order-free."""
    return np.random.default_rng([seed, zlib.crc32("\x1f".join(labels).encode())])


Samples = Sequence[float] | Sequence[Sequence[float]]


def groups_of(samples: Samples) -> list[np.ndarray]:
    """Samples as a list of groups (one per process/run); a flat sequence is one group."""
    if len(samples) and isinstance(samples[0], (Sequence, np.ndarray)):
        groups = [np.asarray(g, dtype=float) for g in samples if len(g)]
    else:
        groups = [np.asarray(samples, dtype=float)] if len(samples) else []
    if not groups:
        raise ValueError("bootstrap_ratio needs at least one sample on each side")
    flat = np.concatenate(groups)
    if not np.all(np.isfinite(flat)) or flat.min() <= 0:
        raise ValueError("bootstrap_ratio needs finite, positive samples")
    return groups


def resampled_quantiles(
    groups: list[np.ndarray], resamples: int, rng: np.random.Generator, q: float = 0.5, resample: str = PROCESSES
) -> np.ndarray:
    """Bootstrap distribution of the pooled q-quantile (median: 0.5).

    resample="processes": groups are resampled, then samples within each. Repeats of one process share that
    process's luck (memory layout, the machine's load at the time): the two-stage bootstrap for clustered
    data (Davison & Hinkley, *Bootstrap Methods and their Application*, 1997, sec. 3.8).
    resample="repeats": every group is kept and only its samples are resampled (a stratified bootstrap): the
    interval is conditional on the processes that were measured, and says how firmly their repeats fix the
    statistic. With one group both are the ordinary bootstrap.
    """
    sizes = np.array([g.size for g in groups])
    width = int(sizes.max())
    padded = np.full((len(groups), width), np.nan)
    for i, g in enumerate(groups):
        padded[i, : g.size] = g
    if resample == PROCESSES:
        chosen = rng.integers(0, len(groups), size=(resamples, len(groups)))  # which groups, with replacement
    else:  # each group keeps its place
        chosen = np.broadcast_to(np.arange(len(groups)), (resamples, len(groups)))
    n = sizes[chosen][..., None]  # size of each chosen group
    within = np.floor(rng.random((resamples, len(groups), width)) * n).astype(int)
    values = padded[chosen[..., None], within].reshape(resamples, -1)
    if np.all(sizes == width):  # the usual case, equal repeats per run: nothing to mask
        return np.quantile(values, q, axis=1)
    values[(np.arange(width) >= n).reshape(resamples, -1)] = np.nan  # each chosen group gives its own count
    return _row_quantiles(values, q)


def _row_quantiles(values: np.ndarray, q: float) -> np.ndarray:
    """np.nanquantile(values, q, axis=1) (its default, linear interpolation) without its per-row loop: sort
    once (NaN last), then interpolate at each row's own position (benchmarks/test_gate_bootstrap.py)."""
    ordered = np.sort(values, axis=1)
    count = np.sum(~np.isnan(values), axis=1)
    pos = q * (count - 1)
    lo = np.floor(pos).astype(int)
    hi = np.minimum(lo + 1, count - 1)
    rows = np.arange(values.shape[0])
    low, high = ordered[rows, lo], ordered[rows, hi]
    return low + (pos - lo) * (high - low)


def bootstrap_ratio(
    baseline: Samples,
    candidate: Samples,
    *,
    confidence: float = 0.95,
    resamples: int = 2000,
    rng: np.random.Generator | None = None,
    quantile: float = 0.5,
    resample: str = PROCESSES,
) -> RatioEstimate:
    """Ratio of medians candidate/baseline with a percentile-bootstrap interval, each side resampled on its own.

    Each side is a flat list of samples or a list of groups of samples (one group per process). `quantile`
    replaces the median by another quantile of the pooled samples (0.5 is the median, 0 the minimum, 1 the
    maximum). `resample` picks what the bootstrap resamples: whole processes, then their repeats, or only the
    repeats within each process (see resampled_quantiles).
    """
    if not 0 < confidence < 1:
        raise ValueError(f"confidence={confidence} is not within (0, 1)")
    base, cand = groups_of(baseline), groups_of(candidate)
    rng = rng if rng is not None else np.random.default_rng(0)
    if not 0 <= quantile <= 1:
        raise ValueError(f"quantile={quantile} is not within [0, 1]")
    if resample not in RESAMPLING:
        raise ValueError(f"resample={resample!r} is not one of {', '.join(RESAMPLING)}")
    ratios = resampled_quantiles(cand, resamples, rng, quantile, resample) / resampled_quantiles(
        base, resamples, rng, quantile, resample
    )
    alpha = (1 - confidence) / 2
    low, high = np.quantile(ratios, [alpha, 1 - alpha])
    b_med, c_med = (float(np.quantile(np.concatenate(g), quantile)) for g in (base, cand))
    n_b, n_c = sum(g.size for g in base), sum(g.size for g in cand)
    return RatioEstimate(c_med / b_med, float(low), float(high), confidence, n_b, n_c, b_med, c_med)


def _limits(threshold: float, better: str) -> tuple[float, float]:
    """(worse, better) ratio limits: for lower-is-better at 5 %, worse beyond 1.05 and better below 0.95."""
    if better == LOWER:
        return 1 + threshold, 1 - threshold
    return 1 - threshold, 1 + threshold


def decide_timed(est: RatioEstimate, threshold: float, better: str) -> str:
    """regression: the whole interval is beyond the threshold on the worse side; improvement: on the better
    side; pass: the interval's worse bound is within the threshold; inconclusive: it straddles it."""
    worse_limit, better_limit = _limits(threshold, better)
    # orient so that "greater is worse": for a higher-is-better metric, compare the inverted ratios
    sign = 1 if better == LOWER else -1
    low, high = sorted((sign * math.log(est.low), sign * math.log(est.high)))
    worse, good = sign * math.log(worse_limit), sign * math.log(better_limit)
    if low > worse:
        return "regression"
    if high < good:
        return "improvement"
    return "pass" if high <= worse else "inconclusive"


def repeats_to_decide(est: RatioEstimate, threshold: float, better: str) -> int | None:
    """Repeats per side that would likely decide an inconclusive verdict, or None if it is too close to call.

    The interval's half-width shrinks about as 1/sqrt(n) (log scale); it decides once the half-width is
    smaller than the distance from the estimate to the threshold.
    """
    worse_limit, _ = _limits(threshold, better)
    half = (math.log(est.high) - math.log(est.low)) / 2
    distance = abs(math.log(est.ratio) - math.log(worse_limit))
    n = max(est.n_baseline, est.n_candidate)
    if half <= 0:
        return n
    if distance <= 0:
        return None
    needed = math.ceil(n * (half / distance) ** 2)
    return needed if needed <= MAX_HINT_REPEATS else None


def decide_counted(baseline: float, candidate: float, threshold: float, floor: float, better: str) -> str:
    """A nearly deterministic figure: beyond max(threshold × |baseline|, floor) is a change (units of the metric)."""
    allowed = max(threshold * abs(baseline), floor)
    delta = candidate - baseline if better == LOWER else baseline - candidate  # > 0: worse
    if delta > allowed:
        return "regression"
    if delta < -allowed:
        return "improvement"
    return "pass"
