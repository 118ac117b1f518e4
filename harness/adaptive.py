"""Adaptive repeats (`repeats=auto`): keep measuring repeats until the run's main figure is pinned down.

After each repeat, the per-repeat values of the scenario's main figure (inference: decode tokens/s) get a
seeded percentile-bootstrap 95 % interval of their median — the statistic and the bootstrap the gate uses
(harness.gate.stats), so "±2 %" here means what the gate will see. Measuring stops at the first of:
`target reached` (relative half-width <= `repeats_target`, once `repeats_min` repeats are in), `max
repeats` (`repeats_max`), `time cap` (`repeats_max_s` of timed window spent, checked after each repeat).
The minimum is always measured, and it is at least MIN_REPEATS (6): below six samples no 95 % interval
of a median can be had from the samples alone. The widest one, [min, max], covers the median with
probability 1 - 2 * 0.5**n: 75 % at n = 3, 93.75 % at n = 5, 96.9 % at n = 6. The percentile bootstrap's
interval is never wider than [min, max], so at n < 6 it covers less than 95 %, and `target reached` there
can be three lucky repeats.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

AUTO = "auto"
MIN_REPEATS = 6  # the fewest samples with a 95 % interval of the median (see above)
KEYS = ("repeats_target", "repeats_min", "repeats_max", "repeats_max_s")  # the rule's config keys
TARGET, TIME_CAP, MAX_REPEATS = "target reached", "time cap", "max repeats"
CONFIDENCE = 0.95
RESAMPLES = 2000
SEED = 0  # fixed: the same samples always give the same interval, so the same stopping point


@dataclass(frozen=True)
class Rule:
    """The stopping rule of `repeats=auto` (config: repeats_target, repeats_min, repeats_max, repeats_max_s)."""

    target: float  # relative half-width of the 95 % interval of the median, e.g. 0.02 for ±2 %
    min_repeats: int
    max_repeats: int
    max_s: float  # timed-window seconds after which no further repeat is started


@dataclass(frozen=True)
class Decision:
    stop: bool
    reason: str | None  # TARGET, TIME_CAP, MAX_REPEATS; None while measuring goes on
    half_width: float | None  # relative; None below 2 usable samples


def half_width(samples: Sequence[float], resamples: int = RESAMPLES, seed: int = SEED) -> float | None:
    """Relative half-width of the seeded percentile-bootstrap 95 % interval of the median:
    (high - low) / 2 / median. None with fewer than two finite positive samples."""
    import numpy as np

    from harness.gate.stats import groups_of, resampled_quantiles

    values = [float(s) for s in samples if s is not None and math.isfinite(s) and s > 0]
    if len(values) < 2:
        return None
    medians = resampled_quantiles(groups_of(values), resamples, np.random.default_rng(seed))
    alpha = (1 - CONFIDENCE) / 2
    low, high = np.quantile(medians, [alpha, 1 - alpha])
    return float((high - low) / 2 / np.median(values))


def decide(samples: Sequence[float], elapsed_s: float, rule: Rule) -> Decision:
    """Whether to stop after these repeats' values of the main figure and `elapsed_s` of timed window."""
    n = len(samples)
    hw = half_width(samples) if n >= 2 else None
    if n < rule.min_repeats:
        return Decision(False, None, hw)
    if hw is not None and hw <= rule.target:
        return Decision(True, TARGET, hw)
    if n >= rule.max_repeats:
        return Decision(True, MAX_REPEATS, hw)
    if elapsed_s >= rule.max_s:
        return Decision(True, TIME_CAP, hw)
    return Decision(False, None, hw)


def shortfall(record: Mapping[str, Any] | None) -> str | None:
    """How a repeats=auto run fell short of its target (the result's `adaptive_repeats` section), e.g.
    "max repeats after 30 repeats: ±6.8 % (target ±2 %)"; None when it reached it or was not auto."""
    if not record or record.get("reason") in (None, TARGET):
        return None
    width = record.get("half_width")
    shown = "no interval" if width is None else f"±{100 * width:.1f} %"
    count = record.get("repeats")
    count = "?" if count is None else int(count)  # a report's frame holds it as a float
    return f"{record['reason']} after {count} repeats: {shown} (target ±{100 * record['target']:g} %)"


def rule_from(config: Mapping[str, Any]) -> Rule | None:
    """The rule of a run with repeats=auto; None for a fixed integer count."""
    if config["repeats"] != AUTO:
        return None
    return Rule(
        float(config["repeats_target"]),
        int(config["repeats_min"]),
        int(config["repeats_max"]),
        float(config["repeats_max_s"]),
    )


def run_repeats(
    one: Callable[[], dict[str, Any]],
    repeats: int | str,
    rule: Rule | None,
    figure: str,
    clock: Callable[[], float] = time.perf_counter,
) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """Call `one()` (a repeat → its figures) `repeats` times, or with repeats=auto until `rule` stops on
    `figure`. Returns the repeats and, for auto, the record of how it stopped (result.adaptive_repeats)."""
    if rule is None:
        return [one() for _ in range(int(repeats))], None
    out: list[dict[str, Any]] = []
    start, decision_s = clock(), 0.0
    while True:
        out.append(one())
        t = clock()
        decision = decide([r.get(figure) for r in out], t - start, rule)
        decision_s += clock() - t
        if decision.stop:
            break
    return out, {
        "metric": figure,
        "repeats": len(out),
        "half_width": decision.half_width,
        "reason": decision.reason,
        **asdict(rule),
        "confidence": CONFIDENCE,
        "resamples": RESAMPLES,
        "seed": SEED,
        "elapsed_s": clock() - start,
        "decision_s": decision_s,
    }
