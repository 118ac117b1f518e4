"""serving.engine=sequential: one request at a time, in the order they arrive (a FIFO queue), in the worker's
process — a batch-1 server. The load generator keeps sending while a request is served, so a request's wait in
the queue is part of its TTFT, as on a real batch-1 server.

Each request is generated step by step (harness.serving.stepwise: greedy through the backend's forward, or
speculative with workload.draft_model) on one thread of the engine's own, so the model's work never blocks the
event loop that sends and times requests. Each step's tokens are delivered to the load generator's loop as soon
as they are known, stamped with time.perf_counter() then: a speculative verify step delivers its accepted tokens
and the target's own in one delivery (one ITL gap, not one per token). A request the load generator gives up on
(its timeout) is dropped from the queue, or stopped at its next step.
"""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from harness.serving.prompts import Request


class _Job:
    def __init__(self, request: Request, deliver: Any, loop: asyncio.AbstractEventLoop):
        self.request, self.deliver, self.loop = request, deliver, loop
        self.cancelled = False

    def send(self, t: float, n_tokens: int) -> None:  # runs on the event loop
        if not self.cancelled:
            self.deliver(t, n_tokens)

    def counted(self, counts: Any) -> None:  # runs on the event loop
        drafted = getattr(self.deliver, "drafted", None)
        if drafted is not None and not self.cancelled:
            drafted(counts)


class SequentialEngine:
    name = "harness-sequential"

    def __init__(self, generation: Any):
        """`generation`: a harness.serving.stepwise generation (`steps(prompt_ids, max_tokens)`, `describe()`)."""
        self.generation = generation
        self._pool: ThreadPoolExecutor | None = None
        self.served = 0  # requests generated to the end (warm-up included)

    def info(self) -> dict[str, Any]:
        import harness

        config = {"batch_size": 1, "order": "fifo", **self.generation.describe()}
        return {"name": self.name, "version": harness.__version__, "in_process": True, "config": config}

    async def __aenter__(self) -> SequentialEngine:
        # one thread: requests are served one at a time, in the order they were submitted
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="harness-sequential")
        return self

    async def __aexit__(self, *exc: Any) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)

    async def stream(self, request: Request, deliver: Any) -> None:
        loop = asyncio.get_running_loop()
        job = _Job(request, deliver, loop)
        try:
            await loop.run_in_executor(self._pool, self._serve, job)
        except asyncio.CancelledError:  # the load generator's timeout: not started, or stopped at its next step
            job.cancelled = True
            raise

    def _serve(self, job: _Job) -> None:
        """On the engine's thread: generate, delivering each step's tokens to the event loop as they come."""
        if job.cancelled:
            return
        steps = self.generation.steps(job.request.prompt_ids, job.request.max_tokens)
        try:
            while True:
                tokens = next(steps)
                if job.cancelled:
                    return
                if tokens:
                    job.loop.call_soon_threadsafe(job.send, time.perf_counter(), len(tokens))
        except StopIteration as done:
            self.served += 1
            if done.value is not None:
                job.loop.call_soon_threadsafe(job.counted, done.value)
        finally:
            steps.close()
