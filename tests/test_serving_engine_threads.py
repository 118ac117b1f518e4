"""transformers' continuous batching owns its static tensors across two threads: the caller's (init, warmup, which
creates the batch processor and its tensors) and the engine's generation thread (which resets them in place before
each session: `ContinuousBatchingIOs._reset_static_tensors`). Inference mode is thread-local. transformers 5.17 starts
that thread under `torch.no_grad()` alone (`threading.Thread(target=self._run_generation_loop)`); 5.25 runs it in the
caller's inference mode (`start()`: `use_inference_mode = torch.is_inference_mode_enabled()`). Tensors made under
inference mode on the caller's thread and reset in place in a thread outside it: "Inplace update to inference tensor
outside InferenceMode is not allowed" (seen on an H200 with 5.17, every request). The harness's engine must work
with both."""

from __future__ import annotations

import asyncio
import inspect
import threading

import pytest
import torch
from test_serving_units import _plan
from transformers.generation.continuous_batching.continuous_api import ContinuousBatchingManager

from harness import models
from harness.serving import loadgen
from harness.serving.engines.transformers_cb import TransformersEngine
from harness.serving.prompts import Request


def _start_as_in_transformers_5_17(self) -> None:
    """ContinuousBatchingManager.start of transformers 5.17.0 (continuous_api.py): the generation thread is started
    without the caller's inference mode, so it runs outside it (5.17's loop is decorated with no_grad only)."""
    if self.is_running():
        return None
    self.background_thread_status.clear()
    self._generation_thread = threading.Thread(target=self._run_generation_loop, kwargs={"use_inference_mode": False})
    self._generation_thread.start()


@pytest.mark.parametrize("start", ["5.17", "installed"])
def test_in_process_serving_works_whichever_thread_mode_the_engine_runs_in(monkeypatch, start):
    if start == "5.17":
        if "use_inference_mode" not in inspect.signature(ContinuousBatchingManager._run_generation_loop).parameters:
            pytest.skip("the installed transformers starts its thread as 5.17 does: the 'installed' case is that case")
        monkeypatch.setattr(ContinuousBatchingManager, "start", _start_as_in_transformers_5_17)
    model = models.build(models.preset("tiny", num_hidden_layers=1), torch.float32, "cpu", 0)
    cfg = {"output_len": 4, "input_len": 8, "len_range": 0.0, "arrival": "constant", "num_requests": 3}
    cfg.update(concurrency=1, max_concurrency=None, num_blocks=None, max_batch_tokens=None)
    reqs = [Request(i, list(range(10 + i, 18 + i)), "", 4) for i in range(3)]
    owned = {}

    async def go():
        async with TransformersEngine(model, cfg) as engine:
            processor = engine.manager.batch_processor  # made by warmup() on this thread
            tensors = [t for t in vars(processor.inputs_and_outputs).values() if torch.is_tensor(t)]
            owned["inference"] = [t.is_inference() for t in tensors]
            return await loadgen.run(engine, reqs, _plan(rate=20.0, num_requests=3, timeout_s=30.0))

    run = asyncio.run(go())
    assert [o.error for o in run.outcomes if not o.ok] == []
    assert owned["inference"] and not any(owned["inference"])  # the thread that resets them may be outside it
    assert len(run.outcomes) == 3
