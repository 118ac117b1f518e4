"""The load generator: sends requests on an arrival schedule (open loop) or from N users (closed loop),
and records for each one when it was due, when the generator got to it, when it went to the engine, and
every token delivery. It owns the timing; an engine only answers requests (MLPerf LoadGen's split).

Open loop: a request is sent at its scheduled time whether or not earlier ones finished (arrivals do not
wait for the system, as users do not). `max_concurrency` caps requests in flight: later ones wait for a
slot (vLLM's semaphore), and that wait is recorded apart (queue_wait_s) from the generator's own lateness.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from harness.serving import arrivals
from harness.serving.metrics import Outcome
from harness.serving.prompts import Request

SPIN_S = 0.002  # the last ~2 ms before a send are waited in short yields, not one timer: sleep overshoots


class Engine(Protocol):
    """What the load generator needs of an engine: stream one request, calling `deliver(t, n_tokens)` on
    each delivery of output tokens (t: perf_counter seconds), returning when it is complete (optionally the
    engine's own count of output tokens), raising on error."""

    async def stream(self, request: Request, deliver: Any) -> int | None: ...


class Watch(Protocol):
    """Called every CHECK_S with the outcomes so far and the time: (reason, cancel the unanswered) stops the
    sends; None goes on (harness.serving.steady.Watch)."""

    def __call__(self, outcomes: Sequence[Outcome], now: float) -> tuple[str, bool] | None: ...


@dataclass(frozen=True)
class Plan:
    arrival: str  # poisson | gamma | constant | closed
    rate: float
    burstiness: float
    concurrency: int  # closed-loop users
    max_concurrency: int | None
    num_requests: int
    duration_s: float | None
    timeout_s: float
    seed: int
    times_s: tuple[float, ...] | None = None  # a trace's own send times (s from the start): replaces `arrival`
    think_time_s: float = 0.0  # conversations: from an answer to the next turn's send


@dataclass
class LoadRun:
    outcomes: list[Outcome]
    started_at: float
    ended_at: float
    stopped: str | None = None  # why a watched run stopped sending early (harness.serving.steady)

    @property
    def window_s(self) -> float:
        return self.ended_at - self.started_at


async def _sleep_until(target: float) -> None:
    remaining = target - time.perf_counter()
    if remaining > SPIN_S:
        await asyncio.sleep(remaining - SPIN_S)
    while time.perf_counter() < target:
        await asyncio.sleep(0)


class _Deliveries:
    """The `deliver` an engine calls per delivery; `deliver.cached(n)` reports prompt tokens served from the
    engine's prefix cache, where the engine says (OpenAI usage.prompt_tokens_details.cached_tokens);
    `deliver.drafted(counts)` the request's draft counts (serving.engine=sequential with a draft)."""

    def __init__(self, outcome: Outcome):
        self.outcome = outcome

    def __call__(self, t: float, n_tokens: int) -> None:
        self.outcome.token_times.append(t)
        self.outcome.output_tokens += n_tokens

    def cached(self, n_tokens: int) -> None:
        self.outcome.cached_tokens = n_tokens

    def drafted(self, counts: Any) -> None:
        self.outcome.drafted = counts


async def _one(engine: Engine, request: Request, outcome: Outcome, slots: asyncio.Semaphore | None, timeout_s: float):
    deliver = _Deliveries(outcome)

    if slots is not None:
        await slots.acquire()
    try:
        outcome.sent_at = time.perf_counter()
        counted = await asyncio.wait_for(engine.stream(request, deliver), timeout_s)
        outcome.done_at = time.perf_counter()
        if counted is not None:  # the engine's own count (usage.completion_tokens) over the deliveries
            outcome.output_tokens = counted
        if outcome.output_tokens == 0:
            outcome.error = "error: the engine returned no output tokens"
    except (asyncio.TimeoutError, TimeoutError):
        outcome.error = f"timeout: no complete answer within {timeout_s:g} s"
    except asyncio.CancelledError:  # the load generator's own: a probe past capacity stops at once
        outcome.error = "cancelled: the probe stopped (over-saturated)"
    except Exception as exc:  # noqa: BLE001 - a failed request is data: its reason is counted
        outcome.error = f"error: {type(exc).__name__}: {exc}"[:300]
    finally:
        if slots is not None:
            slots.release()


def _new_outcome(request: Request, scheduled: float | None, now: float) -> Outcome:
    o = Outcome(request.index, len(request.prompt_ids), scheduled, now, now)
    o.conversation, o.turn, o.prefix = request.conversation, request.turn, request.prefix
    o.history_turns_dropped, o.history_tokens_dropped = request.history_turns_dropped, request.history_tokens_dropped
    return o


def _schedule(plan: Plan, n: int) -> list[float]:
    """Send times (s from the start): the trace's own, or the arrival process's; before duration_s."""
    if plan.times_s is None:
        return arrivals.schedule_s(plan.arrival, plan.rate, n, plan.burstiness, plan.seed, plan.duration_s)
    return [t for t in plan.times_s[:n] if plan.duration_s is None or t < plan.duration_s]


async def _watching(watch: Watch, outcomes: list[Outcome], stop: list) -> None:
    """Ask `watch` every CHECK_S; its first verdict stops the sends (stop = [reason, cancel the unanswered])."""
    from harness.serving.steady import CHECK_S

    while True:
        await asyncio.sleep(CHECK_S)
        verdict = watch(outcomes, time.perf_counter())
        if verdict:
            stop.extend(verdict)
            return


async def _open_loop(engine: Engine, requests: Sequence[Request], plan: Plan, watch: Watch | None = None) -> LoadRun:
    times = _schedule(plan, plan.num_requests)
    slots = asyncio.Semaphore(plan.max_concurrency) if plan.max_concurrency else None
    outcomes, tasks, stop = [], [], []
    start = time.perf_counter()
    watcher = asyncio.ensure_future(_watching(watch, outcomes, stop)) if watch is not None else None
    for i, offset in enumerate(times):
        due = start + offset
        await _sleep_until(due)
        if stop:
            break
        outcome = _new_outcome(requests[i % len(requests)], due, time.perf_counter())
        outcomes.append(outcome)
        tasks.append(asyncio.ensure_future(_one(engine, requests[i % len(requests)], outcome, slots, plan.timeout_s)))
    if watcher is not None:
        watcher.cancel()
        if stop and stop[1]:  # past capacity: the unanswered requests are cancelled (and count as failed)
            for task in tasks:
                task.cancel()
    await asyncio.gather(*tasks)
    return LoadRun(outcomes, start, _end(outcomes, start), stop[0] if stop else None)


async def _closed_loop(engine: Engine, requests: Sequence[Request], plan: Plan) -> LoadRun:
    counter = itertools.count()
    outcomes: list[Outcome] = []
    start = time.perf_counter()
    stop_at = start + plan.duration_s if plan.duration_s is not None else None

    async def user() -> None:
        while (i := next(counter)) < plan.num_requests:
            if stop_at is not None and time.perf_counter() >= stop_at:
                return
            outcome = _new_outcome(requests[i % len(requests)], None, time.perf_counter())
            outcomes.append(outcome)
            await _one(engine, requests[i % len(requests)], outcome, None, plan.timeout_s)

    await asyncio.gather(*(user() for _ in range(plan.concurrency)))
    return LoadRun(outcomes, start, _end(outcomes, start))


async def _conversations(engine: Engine, conversations: Sequence[Sequence[Request]], plan: Plan) -> LoadRun:
    """Each conversation's turns in order: its first turn on the arrival schedule (or when a closed-loop user
    takes it), each later turn `think_time_s` after the previous answer ended (its due time, from which its
    send lateness counts). A failed turn does not end its conversation: the next turn's history is the file's."""
    slots = asyncio.Semaphore(plan.max_concurrency) if plan.max_concurrency else None
    outcomes: list[Outcome] = []
    start = time.perf_counter()
    stop_at = start + plan.duration_s if plan.duration_s is not None else None

    async def talk(turns: Sequence[Request], due: float | None) -> None:
        for request in turns:
            if due is not None:
                if stop_at is not None and due >= stop_at:
                    return
                await _sleep_until(due)
            outcome = _new_outcome(request, due, time.perf_counter())
            outcomes.append(outcome)
            await _one(engine, request, outcome, slots, plan.timeout_s)
            due = (outcome.done_at or time.perf_counter()) + plan.think_time_s

    if plan.arrival == "closed":
        queue = iter(conversations)

        async def user() -> None:
            for turns in queue:  # one iterator shared by every user: each conversation is taken once
                if stop_at is not None and time.perf_counter() >= stop_at:
                    return
                await talk(turns, None)

        await asyncio.gather(*(user() for _ in range(plan.concurrency)))
    else:
        starts = _schedule(plan, len(conversations))
        await asyncio.gather(*(talk(turns, start + t) for turns, t in zip(conversations, starts, strict=False)))
    return LoadRun(outcomes, start, _end(outcomes, start))


def _end(outcomes: Sequence[Outcome], start: float) -> float:
    ends = [o.done_at for o in outcomes if o.done_at is not None]
    return max(ends) if ends else time.perf_counter()


async def run(
    engine: Engine,
    requests: Sequence[Request],
    plan: Plan,
    conversations: Sequence[Sequence[Request]] | None = None,
    watch: Watch | None = None,
) -> LoadRun:
    """One load run: every request ends (answered, failed or timed out) before it returns. With
    `conversations`, their turns are sent in order (each after the previous answer), not `requests`; with
    `watch` (open loop), sending stops at its first verdict."""
    if conversations:
        return await _conversations(engine, conversations, plan)
    if plan.arrival == "closed":
        return await _closed_loop(engine, requests, plan)
    return await _open_loop(engine, requests, plan, watch)


async def warmup(engine: Engine, requests: Sequence[Request], timeout_s: float) -> list[Outcome]:
    """Requests one at a time before the timed window; excluded from every figure."""
    outcomes = []
    for request in requests:
        outcome = _new_outcome(request, None, time.perf_counter())
        await _one(engine, request, outcome, None, timeout_s)
        outcomes.append(outcome)
    return outcomes
