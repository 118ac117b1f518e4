"""Steady state and over-saturation of a capacity probe (serving.search=max_rate), judged while it runs.

A probe offers Poisson arrivals at its rate for up to serving.search_probe_s. Every CHECK_S the watcher
samples the queue (requests sent and not yet answered) and applies two rules to what it has seen. The queue
is judged over the latest half of the probe, and only after one median request latency from the first send:
before that even a healthy engine's queue fills (Little's law: queue = rate x latency), which is no trend.
- over-saturated: the queue grows without bound — its least-squares slope over that window is significant
  (t > T_CRIT) and faster than keep_up_tolerance x rate (completions fall short of arrivals by more than
  the tolerance) by at least MIN_GROWTH requests — or TTFT climbs with send time (significant slope, and the
  latest quarter's median at least twice the first quarter's). The probe stops at once (its unanswered
  requests are cancelled and count as failed): a probe past capacity ends in seconds, not at its timeout.
- settled: at least min_completed answers, and over the latest half of the probe the completions kept up with
  the arrivals (within keep_up_tolerance) and the queue shows no significant growth. The probe stops sending
  and is judged on what it sent.
The trend test is ordinary least squares with the slope's t statistic; samples taken every CHECK_S are
autocorrelated, so the t statistic is optimistic: the magnitude conditions are what keep noise from firing.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

CHECK_S = 0.1  # the watcher's sampling interval
T_CRIT = 3.0  # one-sided t statistic for a trend
MIN_POINTS = 10  # queue samples (1 s) before any verdict
MIN_GROWTH = 5.0  # requests the queue must have grown by (fitted) to call it unbounded


def trend(xs: Sequence[float], ys: Sequence[float]) -> tuple[float, float]:
    """Least-squares slope of ys on xs and its t statistic (inf for an exact fit with a slope; 0 for < 3 points)."""
    n = len(xs)
    if n < 3:
        return 0.0, 0.0
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    if sxx == 0:
        return 0.0, 0.0
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx
    resid = sum((y - my - slope * (x - mx)) ** 2 for x, y in zip(xs, ys, strict=True))
    se = math.sqrt(resid / (n - 2) / sxx)
    if se == 0:
        return slope, math.inf if slope else 0.0
    return slope, slope / se


def _median(v: Sequence[float]) -> float:
    s = sorted(v)
    return (s[(len(s) - 1) // 2] + s[len(s) // 2]) / 2


@dataclass(frozen=True)
class Rules:
    rate: float  # the offered rate, requests per second
    keep_up_tolerance: float  # completions may fall short of arrivals by this fraction
    min_completed: int  # answers before a probe can settle


def window(queue: Sequence[tuple[float, int]], since: float) -> list[tuple[float, int]]:
    """The queue samples a verdict looks at: the latest half of the probe, none before `since`."""
    if not queue:
        return []
    start = max(since, (queue[0][0] + queue[-1][0]) / 2)
    return [(t, q) for t, q in queue if t >= start]


def over_saturated(
    queue: Sequence[tuple[float, int]], ttft: Sequence[tuple[float, float]], r: Rules, since: float = -math.inf
) -> str | None:
    """Why the probe is past capacity (queue or TTFT growing without bound), or None. queue: (t, requests in
    flight) samples; ttft: (send time, TTFT) of answered requests; since: the queue's window starts no
    earlier (the first send + a median latency); times in seconds."""
    late = window(queue, since)
    if len(late) >= MIN_POINTS:
        ts, qs = [t for t, _ in late], [q for _, q in late]
        slope, t = trend(ts, qs)
        if t > T_CRIT and slope > r.keep_up_tolerance * r.rate and slope * (ts[-1] - ts[0]) >= MIN_GROWTH:
            return f"over-saturated: the queue grew at {slope:.3g} req/s (to {qs[-1]} in flight)"
    if len(ttft) >= 16:
        ordered = sorted(ttft)
        slope, t = trend([x for x, _ in ordered], [y for _, y in ordered])
        k = len(ordered) // 4
        first, last = _median([y for _, y in ordered[:k]]), _median([y for _, y in ordered[-k:]])
        if t > T_CRIT and slope > 0 and last >= 2 * first:
            return f"over-saturated: TTFT grew from {first * 1e3:.3g} to {last * 1e3:.3g} ms over the probe"
    return None


def settled(
    queue: Sequence[tuple[float, int]],
    sends: Sequence[float],
    dones: Sequence[float],
    r: Rules,
    since: float = -math.inf,
) -> str | None:
    """Why the probe has reached a steady state, or None: enough answers, and over the window (see `window`)
    completions kept up with arrivals and the queue did not grow."""
    late = window(queue, since)
    if len(dones) < r.min_completed or len(late) < MIN_POINTS:
        return None
    half, t1 = late[0][0], late[-1][0]
    arrived, answered = sum(half <= t <= t1 for t in sends), sum(half <= t <= t1 for t in dones)
    if arrived == 0 or answered < (1 - r.keep_up_tolerance) * arrived:
        return None
    slope, t = trend([x for x, _ in late], [q for _, q in late])
    if t > T_CRIT and slope > r.keep_up_tolerance * r.rate:
        return None
    return f"settled: {answered} answers for {arrived} arrivals over the last {t1 - half:.2g} s, the queue flat"


@dataclass
class Watch:
    """The load generator's probe watcher: called every CHECK_S with the outcomes so far; returns
    (reason, cancel the unanswered) to stop the probe, or None to go on."""

    rules: Rules
    queue: list[tuple[float, int]] = field(default_factory=list)

    def __call__(self, outcomes: Sequence[Any], now: float) -> tuple[str, bool] | None:
        sends = [o.sent_at for o in outcomes]
        dones = [o.done_at for o in outcomes if o.done_at is not None]
        self.queue.append((now, len(sends) - len(dones)))
        ttft = [(o.sent_at, o.token_times[0] - o.sent_at) for o in outcomes if o.token_times]
        e2el = [o.done_at - o.sent_at for o in outcomes if o.done_at is not None]
        since = min(sends) + _median(e2el) if e2el else math.inf  # no answer yet: no verdict on the queue
        why = over_saturated(self.queue, ttft, self.rules, since)
        if why:
            return why, True
        why = settled(self.queue, sends, dones, self.rules, since)
        return (why, False) if why else None
