"""The serving load: warm up, then open-loop load (or a capacity search) inside the timed window, with
the probes around it. harness.scenarios.serving calls `run`; everything returned is plain data."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Callable, Sequence
from typing import Any

from harness.errors import HarnessError
from harness.serving import cache_reset, capacity, datasets, loadgen, metrics, prompts, server_metrics, steady
from harness.serving.engines import open_engine


class ServingFailed(HarnessError):
    """The run measured something, but not what was asked (too many failed requests, no probe met the SLO):
    recorded as status `error` with this reason, its metrics kept."""


def _plan(s: dict[str, Any], rate: float, arrival: str, seed: int, work: datasets.Workload) -> loadgen.Plan:
    return loadgen.Plan(
        arrival=arrival,
        rate=rate,
        burstiness=s["burstiness"],
        concurrency=s["concurrency"],
        max_concurrency=s["max_concurrency"],
        num_requests=len(work.requests),
        duration_s=s["duration_s"],
        timeout_s=s["request_timeout_s"],
        seed=seed,
        times_s=tuple(work.times_s) if work.times_s is not None else None,
        think_time_s=s["think_time_s"],
    )


def _slo(s: dict[str, Any]) -> dict[str, float | None]:
    return {k: s["slo"][k] for k in metrics.SLO_KEYS}


class _Loads:
    """Runs load windows against one engine; each window's summary carries its own energy where readable."""

    def __init__(self, engine: Any, work: datasets.Workload, s: dict, seed: int, energy_now: Callable):
        self.engine, self.work, self.s, self.seed, self.energy_now = engine, work, s, seed, energy_now
        self.requests: Sequence[prompts.Request] = work.requests
        self.outcomes: list[metrics.Outcome] = []
        self.window_s = 0.0
        self.scraper: server_metrics.Scraper | None = None  # serving.metrics_url: the engine's own gauges

    async def load(self, rate: float, arrival: str, probe: bool = False) -> tuple[dict[str, Any], loadgen.LoadRun]:
        joules_before = self.energy_now() if self.energy_now else None
        plan, watch = _plan(self.s, rate, arrival, self.seed, self.work), None
        if probe:  # Poisson arrivals for up to search_probe_s, watched for a steady state or over-saturation
            long = int(rate * self.s["search_probe_s"] * 1.5) + 16
            plan = dataclasses.replace(plan, num_requests=long, duration_s=self.s["search_probe_s"])
            rules = steady.Rules(rate, self.s["search_keep_up_tolerance"], self.s["num_requests"])
            watch = steady.Watch(rules)
        run = await loadgen.run(self.engine, self.requests, plan, self.work.conversations, watch)
        joules_after = self.energy_now() if self.energy_now else None
        self.outcomes.extend(run.outcomes)
        self.window_s += run.window_s
        summary = metrics.summarize_run(run.outcomes, run.window_s, _slo(self.s), self.s["lateness_tolerance_s"])
        energy_j = joules_after - joules_before if joules_before is not None and joules_after is not None else None
        out_tokens = summary["output_tokens"]
        summary.update(
            offered_rate_req_per_s=_offered(self.work, rate, arrival),
            energy_j=energy_j,
            j_per_1m_output_tokens=energy_j / out_tokens * 1e6 if energy_j is not None and out_tokens else None,
        )
        if self.scraper is not None:  # the engine's queue over this window, beside the client's figures
            summary.update(server_metrics.summarize(self.scraper.samples, run.started_at, run.ended_at))
        return summary, run

    async def probe(self, rate: float) -> capacity.Probe:
        summary, run = await self.load(rate, "poisson", probe=True)
        summary["probe_stopped"] = run.stopped or f"ran its {self.s['search_probe_s']:g} s"
        passed, reason = metrics.percentile_meets(run.outcomes, _slo(self.s), self.s["search_percentile"])
        if run.stopped and run.stopped.startswith("over-saturated"):
            passed, reason = False, run.stopped
        if passed and summary["generator_bottleneck"]:
            passed, reason = False, "the load generator ran late: the offered load was not reached"
        arrivals, completions = summary["arrival_rate_req_per_s"], summary["completion_rate_req_per_s"]
        keep_up = 1 - self.s["search_keep_up_tolerance"]  # completions must keep up with arrivals (not saturated)
        if passed and arrivals and completions and completions < keep_up * arrivals:
            passed = False
            reason = f"the engine fell behind: completions {completions:.3g} req/s < arrivals {arrivals:.3g} req/s"
        return capacity.Probe(rate, passed, reason, summary, run.outcomes)


def _offered(work: datasets.Workload, rate: float, arrival: str) -> float | None:
    """The offered rate: the arrival process's (conversation starts, for conversations), a trace's own mean
    ((rows - 1) / its span), or None for closed-loop users."""
    if work.times_s is not None:
        span = work.times_s[-1] - work.times_s[0] if work.times_s else 0.0
        return (len(work.times_s) - 1) / span if span > 0 else None
    return rate if arrival != "closed" else None


def _repeat_figures(summary: dict[str, Any]) -> dict[str, Any]:
    """A load window's figures, flat (the gate's per-repeat samples): p50s and p99s, throughputs, energy."""
    skip = ("ttft_s_by_turn", "ttft_s_cache_hit", "ttft_s_cache_miss")  # distributions or lists, when null
    flat = {k: v for k, v in summary.items() if not isinstance(v, (dict, list)) and k not in skip}
    for name in ("ttft_s", "tpot_s", "itl_s", "e2el_s", "send_lateness_s"):
        for q in ("p50", "p99"):
            flat[f"{name}_{q}"] = summary[name][q]
        flat[f"{name}_n"] = summary[name]["n"]
    flat["wall_s"] = summary["window_s"]  # the name cost.per_repeat and the gate read
    flat["failure_reasons"] = summary["failure_reasons"]
    return flat


async def _measure(config: dict, model: Any, tokenizer: Any, probes: Any, energy_now, run_dir, max_len) -> dict:
    s, seed = config["serving"], config["seed"]
    work = datasets.build(s, seed, tokenizer, max_len)
    warm = datasets.warmup_requests(s, seed, tokenizer)
    out: dict[str, Any] = {"dataset": work.info}
    longest = max(len(r.prompt_ids) + r.max_tokens for r in [*work.requests, *warm])
    engine = open_engine(s, model, run_dir, config["model"].get("path"), (len(work.requests), longest))
    async with engine:
        t0 = time.perf_counter()
        warm_outcomes = await loadgen.warmup(engine, warm, s["request_timeout_s"])
        out["warmup_s"] = time.perf_counter() - t0
        failed = [o.error for o in warm_outcomes if not o.ok]
        if failed:
            raise ServingFailed(f"{len(failed)} of {len(warm)} warm-up requests failed: {failed[0]}")
        if s["reset_cache"]:  # after the warm-up (which fills the cache), before the window
            out["cache_reset"] = await cache_reset.reset(engine)
        loads = _Loads(engine, work, s, seed, energy_now)
        if s["metrics_url"]:
            loads.scraper = server_metrics.Scraper(s["metrics_url"], s["metrics_interval_s"])
            await loads.scraper.scrape("before")
            loads.scraper.start()
        probes.begin()
        window_start = time.perf_counter()
        try:
            if s["search"] == "max_rate":
                found = await capacity.search(
                    loads.probe, s["search_start_rate"], s["search_max_probes"], s["search_tolerance"]
                )
                out["capacity"] = found
                repeats = []  # probes run at different rates: not samples of one figure (serving.capacity.probes)
            else:
                repeats = [
                    _repeat_figures((await loads.load(s["rate"], s["arrival"]))[0]) for _ in range(config["repeats"])
                ]
            out["timed_window_s"] = time.perf_counter() - window_start
            probes.end()  # its readings stay in probes.readings
            if loads.scraper is not None:
                await loads.scraper.stop()
                await loads.scraper.scrape("after")
                out["server_metrics"] = loads.scraper.section(window_start)
                out["server_window"] = (window_start, window_start + out["timed_window_s"])
        finally:  # a failed run still stops every probe (threads included)
            probes.close()
            if loads.scraper is not None:
                await loads.scraper.close()
    out["engine"] = engine.info()  # after the exit: a started server's exit code is part of it
    out["repeats"] = repeats
    out["loads"] = loads
    return out


def _pooled(loads: _Loads, s: dict[str, Any]) -> dict[str, Any]:
    """Every measured request of every load window together; throughputs over the windows' summed time."""
    out = metrics.summarize_run(loads.outcomes, loads.window_s, _slo(s), s["lateness_tolerance_s"])
    out["offered_rate_req_per_s"] = _offered(loads.work, s["rate"], s["arrival"])
    return out


def _capacity_section(found: capacity.Capacity, s: dict[str, Any]) -> dict[str, Any]:
    return {
        "capacity_req_per_s": found.capacity_req_per_s,
        "lowest_failing_req_per_s": found.lowest_failing_req_per_s,
        "converged": found.converged,
        "reason": found.reason,
        "percentile": s["search_percentile"],
        "tolerance": s["search_tolerance"],
        "keep_up_tolerance": s["search_keep_up_tolerance"],
        "probe_s": s["search_probe_s"],
        "max_probes": s["search_max_probes"],
        "probes": [
            {
                "rate_req_per_s": p.rate_req_per_s,
                "passed": p.passed,
                "reason": p.reason,
                **{k: v for k, v in _repeat_figures(p.summary).items() if k != "failure_reasons"},
            }
            for p in found.probes
        ],
    }


def run(config: dict, model: Any, tokenizer: Any, probes: Any, energy_now, run_dir: str | None,
        max_len: int | None = None) -> dict:  # fmt: skip
    """The serving run (`probes`: a harness.probes.ProbeSet, begun and ended around the timed window;
    `max_len`: the served model's context in tokens, None if unknown): metrics, repeats (one per load window,
    or one per probe), timings, units (output tokens, completed requests) and the `serving` section (engine,
    load, capacity, probes)."""
    if max_len is None:  # in-process: the model's own
        max_len = getattr(getattr(model, "config", None), "max_position_embeddings", None)
    measured = asyncio.run(_measure(config, model, tokenizer, probes, energy_now, run_dir, max_len))
    s, loads = config["serving"], measured["loads"]
    found: capacity.Capacity | None = measured.get("capacity")
    best = found.best() if found is not None else None
    # with a search, the run's figures are those at capacity: the highest passing probe's
    m = dict(best.summary) if best is not None else _pooled(loads, s)
    if loads.scraper is not None and best is None:  # the engine's queue over the whole timed window
        m.update(server_metrics.summarize(loads.scraper.samples, *measured["server_window"]))
    m["capacity_req_per_s"] = found.capacity_req_per_s if found is not None else None
    kept = best.outcomes if best is not None else loads.outcomes  # the requests behind the run's figures
    arrival = "trace" if loads.work.times_s is not None else s["arrival"]
    section = {
        "engine": measured["engine"],
        "arrival": "poisson" if found is not None else arrival,
        "dataset": measured["dataset"],
        "search": s["search"],
        "slo": _slo(s),
        "lengths": {"input_len": s["input_len"], "output_len": s["output_len"], "len_range": s["len_range"]},
        "capacity": _capacity_section(found, s) if found is not None else None,
        "requests": metrics.request_records(kept),
        "server_metrics": measured.get("server_metrics"),
        "cache_reset": measured.get("cache_reset"),  # serving.reset_cache=true: {endpoint, status, answer}
    }
    return {
        "metrics": m,
        "repeats": measured["repeats"],
        "warmup_s": measured["warmup_s"],
        "timed_window_s": measured["timed_window_s"],
        "units": {
            "token": sum(o.output_tokens for o in loads.outcomes if o.ok),
            "request": sum(o.ok for o in loads.outcomes),
        },
        "serving": section,
        "first_prompt_ids": loads.requests[0].prompt_ids if loads.requests else None,
        "first_max_tokens": loads.requests[0].max_tokens if loads.requests else 0,
    }


def check(m: dict[str, Any], section: dict[str, Any], s: dict[str, Any]) -> None:
    """Raise ServingFailed when the run did not measure what was asked; called once its figures are stored."""
    cap = section.get("capacity")
    if cap is not None and cap["capacity_req_per_s"] is None:
        raise ServingFailed(cap["reason"])
    sent = m["requests_sent"]
    failed = m["requests_failed"] + m["requests_timed_out"]
    if sent and failed / sent > s["max_failed_fraction"]:
        top = m["failure_reasons"][0]["reason"] if m["failure_reasons"] else "?"
        raise ServingFailed(
            f"{failed} of {sent} requests failed or timed out (> serving.max_failed_fraction="
            f"{s['max_failed_fraction']:g}); most common: {top}"
        )
    if not m["requests_completed"]:
        raise ServingFailed("no request completed")
