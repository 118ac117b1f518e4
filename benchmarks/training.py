"""Training overhead and MFU, measured (run with `nox -s benchmarks`).

1. Harness vs bare loop: tokens/s of harness.scenarios.training.run against a plain PyTorch loop doing
   the same steps (same model, batch, precision, AdamW, clipping) in the same process, alternated round
   by round; median of the ratios. Target >= 0.95.
2. MFU of the default training run and of model=base, from real `python -m harness` runs.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from _output import emit  # benchmarks/_output.py (scripts run as python benchmarks/<name>.py)

from harness import data, models
from harness.backends.hf import HFEager
from harness.probes.timing import CpuTimer
from harness.scenarios import training

TINY = models.preset("tiny")  # the shipped preset, conf/model/tiny.yaml
PYDOC = {"source": "pydoc", "text_column": "text", "eval_fraction": 0.1, "split_seed": 1234}


def bare_tok_per_s(model, batches, steps: int) -> float:
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.95), weight_decay=0.1)
    tokens, start = 0, time.perf_counter()
    for _ in range(steps):
        x = batches.next()
        loss = model(input_ids=x, labels=x).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        tokens += x.numel()
    return tokens / (time.perf_counter() - start)


def harness_tok_per_s(model, batches, held_out, steps: int) -> float:
    schedule = training.Schedule(steps, 0, 1e-3, 0, 0.1, 1.0, 10**9, None, 1)
    out = training.run(HFEager.around(model), batches, held_out, schedule, None, "cpu", CpuTimer())
    m = out["metrics"]
    return m["tokens_per_step"] / m["step_time_s"]["mean"]


def ratio(rounds: int, steps: int) -> dict:
    train, held, _ = data.training_streams(PYDOC, seed=0)
    held_out = data.eval_batches(held, 1, 8, 128, "cpu")
    model = models.build(TINY, torch.float32, "cpu", seed=0)
    batches = data.TrainBatches(train, 8, 128, seed=0, device="cpu")
    bare_tok_per_s(model, batches, 3)  # warm-up
    ratios, h_all, b_all = [], [], []
    for i in range(rounds):
        got = {}
        for which in ("harness", "bare") if i % 2 == 0 else ("bare", "harness"):
            got[which] = (
                harness_tok_per_s(model, batches, held_out, steps)
                if which == "harness"
                else bare_tok_per_s(model, batches, steps)
            )
        h_all.append(got["harness"])
        b_all.append(got["bare"])
        ratios.append(got["harness"] / got["bare"])
    return {
        "rounds": rounds,
        "steps_per_side": steps,
        "harness_tok_per_s_median": statistics.median(h_all),
        "bare_tok_per_s_median": statistics.median(b_all),
        "ratio_median": statistics.median(ratios),
        "ratio_min": min(ratios),
        "ratio_max": max(ratios),
    }


def mfu(model: str, steps: int) -> dict:
    threads = [f"threads={torch.get_num_threads()}"]  # the same thread count as the rest of the benchmark
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [
                sys.executable,
                "-m",
                "harness",
                "workload=training",
                f"model={model}",
                f"results_dir={tmp}",
                "sweep=mfu",
                f"workload.max_steps={steps}",
                f"workload.eval_interval={steps}",
                *threads,
            ],
            check=True,
            capture_output=True,
        )
        (path,) = Path(tmp, "mfu").rglob("result.json")
        r = json.loads(path.read_text())
    m = r["metrics"]
    return {
        "model": model,
        "status": r["status"],
        "steps": m.get("steps"),
        "train_tok_per_s": m.get("train_tok_per_s"),
        "step_time_s_p50": (m.get("step_time_s") or {}).get("p50"),
        "mfu_train": m.get("mfu_train"),
        "peak_flop_per_s": m.get("peak_flop_per_s"),
        "peak_source": m.get("peak_source"),
        "eval_loss": [m.get("eval_loss_initial"), m.get("eval_loss")],
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=6)
    p.add_argument("--steps", type=int, default=15)
    p.add_argument("--out", type=Path)
    p.add_argument("--threads", type=int, help="torch threads (default: torch's own)")
    a = p.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    summary = {
        "threads": torch.get_num_threads(),
        "ratio": ratio(a.rounds, a.steps),
        "mfu": [mfu("tiny", 100), mfu("base", 20)],
    }
    return emit(summary, a.out)


if __name__ == "__main__":
    sys.exit(main())
