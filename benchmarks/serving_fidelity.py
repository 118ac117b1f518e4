"""The serving load generator's fidelity (not a test: `python benchmarks/serving_fidelity.py`).

At 50 requests/s (Poisson, and constant) against an engine that answers at once, how late does the
generator send each request after its scheduled time? Target: send lateness p99 <= 2 ms. The engine
here delivers its tokens immediately in the same event loop, so what is measured is the generator and
the event loop only (the cost of a real engine's answers is in each real run's own send_lateness_s).
Also the transformers continuous-batching engine's lateness at the same rate, with the tiny preset
(there the engine's thread competes with the generator for the interpreter).

Prints a JSON summary; `--out FILE` also writes it. Figures taken on a loaded machine say so themselves:
the summary records the load average at the start and the end.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from pathlib import Path

from _output import emit  # benchmarks/_output.py (scripts run as python benchmarks/<name>.py)

from harness.serving import loadgen, metrics, prompts

TARGET_P99_S = 0.002


class Instant:
    """Answers every request at once: all its tokens in one delivery."""

    async def stream(self, request: prompts.Request, deliver) -> None:
        deliver(time.perf_counter(), request.max_tokens)


def _lateness(engine, arrival: str, rate: float, n: int, reqs, times: tuple[float, ...] | None = None) -> dict:
    plan = loadgen.Plan(arrival, rate, 1.0, 1, None, n, None, 30.0, 0, times)
    run = asyncio.run(_with(engine, loadgen.run, reqs, plan))
    summary = metrics.summarize_run(run.outcomes, run.window_s, {}, TARGET_P99_S)
    late = summary["send_lateness_s"]
    return {
        "arrival": arrival,
        "rate_req_per_s": rate,
        "n": late["n"],
        "send_lateness_p50_s": late["p50"],
        "send_lateness_p99_s": late["p99"],
        "send_lateness_max_s": late["max"],
        "meets_target": late["p99"] <= TARGET_P99_S,
        "request_throughput_req_per_s": summary["request_throughput_req_per_s"],
    }


async def _with(engine, fn, *args):
    if hasattr(engine, "__aenter__"):
        async with engine:
            return await fn(engine, *args)
    return await fn(engine, *args)


def _cb_engine(n: int):
    import torch

    from harness import models
    from harness.serving.engines.transformers_cb import TransformersEngine

    model = models.build(models.preset("tiny"), torch.float32, "cpu", 0)
    cfg = {"output_len": 8, "input_len": 16, "len_range": 0.0, "arrival": "poisson", "num_requests": n}
    return TransformersEngine(
        model, {**cfg, "concurrency": 1, "max_concurrency": None, "num_blocks": None, "max_batch_tokens": None}
    )


def _trace(rate: float, n: int) -> dict:
    """A Mooncake-style trace file (Poisson arrivals at `rate`, ms timestamps) replayed through serving.dataset."""
    import tempfile

    from harness.serving import arrivals, datasets, samples

    offsets = tuple(arrivals.schedule_s("poisson", rate, n, seed=5))
    with tempfile.TemporaryDirectory() as tmp:
        path = samples.write_mooncake(Path(tmp) / "trace.jsonl", offsets)
        s = {"dataset": "trace", "dataset_path": str(path), "num_requests": n, "trace_speed": 1.0}
        work = datasets.build({**s, "output_len": 8, "warmup_requests": 0}, 0)
    return _lateness(Instant(), "trace", rate, len(work.requests), work.requests, tuple(work.times_s))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rate", type=float, default=50.0)
    ap.add_argument("--requests", type=int, default=500)
    ap.add_argument("--no-engine", action="store_true", help="skip the transformers engine run")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    load_before = os.getloadavg()
    reqs = prompts.build(64, 16, 8, 0.0, 0)
    runs = [_lateness(Instant(), kind, args.rate, args.requests, reqs) for kind in ("poisson", "constant")]
    runs.append({"replay": "mooncake-style trace (ms timestamps)", **_trace(args.rate, args.requests)})
    if not args.no_engine:
        n = min(args.requests, 200)
        runs.append(
            {
                "engine": "transformers-continuous-batching (tiny)",
                **_lateness(_cb_engine(n), "poisson", args.rate, n, reqs),
            }
        )
    return emit(
        {
            "target_send_lateness_p99_s": TARGET_P99_S,
            "runs": runs,
            "cpu_count": os.cpu_count(),
            "loadavg_1m_start_end": [load_before[0], os.getloadavg()[0]],
        },
        args.out,
    )


if __name__ == "__main__":
    raise SystemExit(main())
