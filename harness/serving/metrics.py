"""Per-request latencies and per-run figures of a load run, as vLLM's `bench serve` defines them.

Per request (seconds, from the moment the request was sent):
  TTFT  = first output token received - sent
  E2EL  = last byte of the response received - sent
  TPOT  = (E2EL - TTFT) / (output tokens - 1): the first token excluded; only requests with >= 2 tokens
  ITL   = every gap between two successive token deliveries (a delivery may carry several tokens)
Per run, over the timed window (first send to last completion):
  request throughput = completed requests / window;  output throughput = output tokens / window
  goodput = requests that completed and met every SLO set / window (DistServe; vLLM's --goodput)
docs/serving.md names where GuideLLM and MLPerf define these differently.
"""

from __future__ import annotations

import functools
import operator
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from harness.stats import percentile, summarize

SLO_KEYS = {"ttft_ms": "ttft_s", "tpot_ms": "tpot_s", "e2el_ms": "e2el_s"}
# a request's own draft figures in its record (serving.requests), with a draft
_PER_REQUEST_DRAFT = ("acceptance_rate", "mean_accepted_tokens", "draft_tokens_proposed", "draft_tokens_accepted",
                      "verify_steps")  # fmt: skip


@dataclass
class Outcome:
    """One request as the load generator saw it; times are time.perf_counter() seconds."""

    index: int
    input_tokens: int
    scheduled_at: float | None  # when it was due (open loop); None for closed-loop users
    dispatched_at: float  # when the generator got to it
    sent_at: float  # when it went to the engine (after any max_concurrency wait)
    token_times: list[float] = field(default_factory=list)  # each delivery that carried output tokens
    output_tokens: int = 0
    done_at: float | None = None
    error: str | None = None  # None: completed; else "timeout: ..." or "error: ..." (the reason)
    conversation: str | None = None  # the request's conversation id and turn (serving.dataset=sharegpt)
    turn: int | None = None
    prefix: int | None = None  # its shared prefix (serving.dataset=shared_prefix)
    cached_tokens: int | None = None  # prompt tokens the engine served from its prefix cache, where it says
    history_turns_dropped: int = 0  # sharegpt: the oldest exchanges left out of its history to fit the context
    history_tokens_dropped: int = 0
    # with a draft (serving.engine=sequential): its counts for this request (harness.speculative.Counts)
    drafted: Any = None

    @property
    def ok(self) -> bool:
        return self.error is None and self.done_at is not None and self.output_tokens > 0


def latencies(o: Outcome) -> dict[str, Any]:
    """TTFT, TPOT, E2EL (seconds) and the ITL gaps of one completed request (see the module docstring)."""
    ttft = o.token_times[0] - o.sent_at if o.token_times else None
    e2el = o.done_at - o.sent_at if o.done_at is not None else None
    tpot = (
        (e2el - ttft) / (o.output_tokens - 1) if ttft is not None and e2el is not None and o.output_tokens > 1 else None
    )
    itl = [b - a for a, b in zip(o.token_times, o.token_times[1:], strict=False)]
    return {"ttft_s": ttft, "tpot_s": tpot, "e2el_s": e2el, "itl_s": itl}


def meets_slo(lat: Mapping[str, Any], slo: Mapping[str, float | None]) -> bool:
    """Every SLO bound that is set is met (a TPOT bound is met by a one-token request, as in vLLM)."""
    for slo_key, lat_key in SLO_KEYS.items():
        bound = slo.get(slo_key)
        if bound is None:
            continue
        value = lat[lat_key]
        if value is None:
            if lat_key == "tpot_s":
                continue
            return False
        if value * 1e3 > bound:
            return False
    return True


def distribution(samples: Sequence[float]) -> dict[str, Any]:
    """summarize() plus p95: {n, p50, p90, p95, p99, mean, stdev, min, max}."""
    out = summarize(samples)
    out["p95"] = percentile(sorted(samples), 95) if samples else None
    return {k: out[k] for k in ("n", "p50", "p90", "p95", "p99", "mean", "stdev", "min", "max")}


def _failures(outcomes: Sequence[Outcome]) -> dict[str, Any]:
    reasons = Counter(o.error for o in outcomes if not o.ok)
    timeouts = sum(n for r, n in reasons.items() if r and r.startswith("timeout"))
    return {
        "requests_failed": sum(reasons.values()) - timeouts,
        "requests_timed_out": timeouts,
        "failure_reasons": [{"reason": r or "no output tokens", "count": n} for r, n in reasons.most_common(5)],
    }


def summarize_run(
    outcomes: Sequence[Outcome], window_s: float, slo: Mapping[str, float | None], lateness_tolerance_s: float
) -> dict[str, Any]:
    """The run's serving metrics (units in the names; distributions with n)."""
    done = [o for o in outcomes if o.ok]
    lats = [latencies(o) for o in done]
    good = sum(meets_slo(lat, slo) for lat in lats)
    out_tokens = sum(o.output_tokens for o in done)
    in_tokens = sum(o.input_tokens for o in done)
    late = [o.dispatched_at - o.scheduled_at for o in outcomes if o.scheduled_at is not None]
    lateness = distribution(late)
    rate = lambda count: count / window_s if window_s > 0 else None  # noqa: E731 - per second of the window
    sends, ends = sorted(o.sent_at for o in outcomes), sorted(o.done_at for o in done)
    return {
        "ttft_s": distribution([x["ttft_s"] for x in lats if x["ttft_s"] is not None]),
        "tpot_s": distribution([x["tpot_s"] for x in lats if x["tpot_s"] is not None]),
        "itl_s": distribution([g for x in lats for g in x["itl_s"]]),
        "e2el_s": distribution([x["e2el_s"] for x in lats]),
        "queue_wait_s": distribution([o.sent_at - o.dispatched_at for o in outcomes]),
        "send_lateness_s": lateness,
        # the generator, not the engine, limited the offered load: its sends ran late beyond the tolerance
        "generator_bottleneck": bool(late) and lateness["p99"] > _late_bound(outcomes, lateness_tolerance_s),
        "requests_sent": len(outcomes),
        "requests_completed": len(done),
        **_failures(outcomes),
        "requests_good": good,
        "slo_attainment": good / len(outcomes) if outcomes else None,
        "window_s": window_s,
        "request_throughput_req_per_s": rate(len(done)),
        "output_tok_per_s": rate(out_tokens),
        "total_tok_per_s": rate(out_tokens + in_tokens),
        "goodput_req_per_s": rate(good),
        # arrivals and completions per second over their own spans: an engine that keeps up completes at
        # the rate requests arrive; a saturated one completes at its own, lower rate (its queue grows)
        "arrival_rate_req_per_s": _span_rate(sends),
        "completion_rate_req_per_s": _span_rate(ends),
        "output_tokens": out_tokens,
        "input_tokens": in_tokens,
        "ttft_s_by_turn": by_turn(done),
        **prefix_cache(done),
        **drafting(done),
    }


def drafting(done: Sequence[Outcome]) -> dict[str, Any]:
    """A draft's acceptance over the completed requests that drafted (harness.speculative.Counts.figures of
    their counts summed): {} where none did, so a run without a draft writes none of these figures."""
    told = [o.drafted for o in done if o.drafted is not None]
    return functools.reduce(operator.add, told).figures() if told else {}


def prefix_cache(done: Sequence[Outcome]) -> dict[str, Any]:
    """Prompt tokens served from the engine's prefix cache, where it reports them: their sum, the hit rate
    (cached / prompt tokens of the requests that reported), and TTFT apart for hits (> 0 cached) and misses."""
    told = [o for o in done if o.cached_tokens is not None]
    if not told:
        return {
            k: None for k in ("prompt_tokens_cached", "prefix_cache_hit_rate", "ttft_s_cache_hit", "ttft_s_cache_miss")
        }
    prompt = sum(o.input_tokens for o in told)
    cached = sum(o.cached_tokens for o in told)

    def ttft(hit: bool) -> dict[str, Any]:
        return distribution([latencies(o)["ttft_s"] for o in told if (o.cached_tokens > 0) == hit and o.token_times])

    return {
        "prompt_tokens_cached": cached,
        "prefix_cache_hit_rate": cached / prompt if prompt else None,
        "ttft_s_cache_hit": ttft(True),
        "ttft_s_cache_miss": ttft(False),
    }


def by_turn(done: Sequence[Outcome]) -> list[dict[str, Any]] | None:
    """TTFT of completed requests per conversation turn ({turn, n, p50, p90, p99, mean}); None without turns."""
    turns = sorted({o.turn for o in done if o.turn is not None})
    out = []
    for t in turns:
        d = distribution([x for o in done if o.turn == t if (x := latencies(o)["ttft_s"]) is not None])
        out.append({"turn": t, **{k: d[k] for k in ("n", "p50", "p90", "p99", "mean")}})
    return out or None


def request_records(outcomes: Sequence[Outcome]) -> list[dict[str, Any]]:
    """One record per request (result.serving.requests): its ids, lengths, and times in seconds from the first
    send (scheduled, sent, done) and its TTFT and E2EL; null where it has none."""
    if not outcomes:
        return []
    t0 = min(o.scheduled_at if o.scheduled_at is not None else o.dispatched_at for o in outcomes)
    rel = lambda t: round(t - t0, 6) if t is not None else None  # noqa: E731
    out = []
    for o in outcomes:
        lat = latencies(o) if o.ok else {"ttft_s": None, "e2el_s": None}
        out.append({
            "index": o.index, "conversation": o.conversation, "turn": o.turn, "prefix": o.prefix,
            "input_tokens": o.input_tokens, "output_tokens": o.output_tokens, "cached_tokens": o.cached_tokens,
            "scheduled_s": rel(o.scheduled_at), "sent_s": rel(o.sent_at), "done_s": rel(o.done_at),
            "send_lateness_s": o.dispatched_at - o.scheduled_at if o.scheduled_at is not None else None,
            "ttft_s": lat["ttft_s"], "e2el_s": lat["e2el_s"], "error": o.error,
            "history_turns_dropped": o.history_turns_dropped, "history_tokens_dropped": o.history_tokens_dropped,
        })  # fmt: skip
        if o.drafted is not None:  # only with a draft: a run without one keeps its records as they were
            out[-1].update({k: o.drafted.figures()[k] for k in _PER_REQUEST_DRAFT})
    return out


def _late_bound(outcomes: Sequence[Outcome], tolerance_s: float) -> float:
    """The lateness that changes the offered load: the tolerance, or a tenth of the mean gap between
    scheduled sends where that is larger (10 ms late matters at 50 req/s, not at 1 req/s)."""
    due = sorted(o.scheduled_at for o in outcomes if o.scheduled_at is not None)
    mean_gap = (due[-1] - due[0]) / (len(due) - 1) if len(due) > 1 else 0.0
    return max(tolerance_s, 0.1 * mean_gap)


def _span_rate(times: Sequence[float]) -> float | None:
    """(n - 1) events over the time from the first to the last (None for fewer than 3)."""
    return (len(times) - 1) / (times[-1] - times[0]) if len(times) >= 3 and times[-1] > times[0] else None


def percentile_meets(outcomes: Sequence[Outcome], slo: Mapping[str, float | None], q: float) -> tuple[bool, str]:
    """Whether the q-th percentile of each SLO metric, over every request sent, meets its bound (MLPerf
    Server), and why not. A failed or timed-out request counts as an infinite latency."""
    lats = [latencies(o) if o.ok else None for o in outcomes]
    if not lats:
        return False, "no request was sent"
    for slo_key, lat_key in SLO_KEYS.items():
        bound = slo.get(slo_key)
        if bound is None:
            continue
        # a one-token request has no TPOT: it is left out of that metric (as in vLLM), never counted as met
        values = [float("inf") if x is None else x[lat_key] for x in lats]
        values = sorted(v for v in values if v is not None)
        if not values:
            continue
        value = percentile(values, q) if values[-1] != float("inf") else _inf_percentile(values, q)
        if value * 1e3 > bound:
            shown = "a failed request" if value == float("inf") else f"{value * 1e3:.1f} ms"
            return False, f"{lat_key} p{q:g} {shown} > {bound:g} ms"
    return True, "met"


def _inf_percentile(values: Sequence[float], q: float) -> float:
    """percentile() where some values are infinite (interpolating towards inf gives inf)."""
    pos = (len(values) - 1) * q / 100
    lo, hi = int(pos), min(int(pos) + 1, len(values) - 1)
    if values[hi] == float("inf") and pos > lo or values[lo] == float("inf"):
        return float("inf")
    return values[lo]
