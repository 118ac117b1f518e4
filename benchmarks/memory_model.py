"""The memory model (harness/memory_model.py) against measured peaks on this machine's CPU.

    python benchmarks/memory_model.py [--out results/memory-model] [--quick]

Runs the real CLI (random weights, quality and energy off: only the timed window's peak matters) over the presets
at a few batch sizes, inference and training, and a degenerate model (hidden 8, one layer) whose peak is the
process baseline (interpreter, torch, libraries: what the model does not predict). Measured = `peak_rss_bytes`
(the timed window's RSS high-water mark) − that baseline; error = predicted / measured − 1. Goal: within 15 %.
Prints one JSON document. On CPU the baseline's own spread (a few MiB between processes) swamps tiny's few MiB:
its error is shown but says little.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from harness import memory_model, results  # noqa: E402

COMMON = ["model.weights=random", "quality.enabled=false", "energy.enabled=false", "repeats=1", "threads=2"]
FAST_INFERENCE = ["workload.warmup_iters=1", "workload.min_iters=1", "workload.min_time_s=0"]
INFERENCE = [("tiny", "1,8"), ("small", "1,8"), ("base", "1,8,32")]
TRAINING = [("tiny", "8"), ("small", "8"), ("base", "4")]
BASELINE = ["model=tiny", "model.hidden_size=8", "model.intermediate_size=8", "model.num_hidden_layers=1",
            "model.num_attention_heads=1", "model.num_key_value_heads=1"]  # fmt: skip


def sweep(out: Path, name: str, args: list[str]) -> None:
    cmd = [sys.executable, "-m", "harness", "-m", f"results_dir={out}", f"sweep={name}", *COMMON, *args]
    subprocess.run(cmd, cwd=REPO, check=True, stdout=subprocess.DEVNULL)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=REPO / "results" / "memory-model")
    p.add_argument("--quick", action="store_true", help="inference only, no base")
    p.add_argument("--training-only", action="store_true", help="the baseline and the training runs only")
    args = p.parse_args()
    sweep(args.out, "baseline", [*BASELINE, *FAST_INFERENCE, "precision=fp32", "batch_size=1", "seed=0,1,2"])
    inference = [] if args.training_only else INFERENCE[:2] if args.quick else INFERENCE
    for model, batches in inference:
        sweep(
            args.out,
            f"inf-{model}",
            [*FAST_INFERENCE, f"model={model}", "precision=fp32,bf16,int8", f"batch_size={batches}"],
        )
    if not args.quick:
        for model, batches in TRAINING:
            train = ["workload=training", "workload.max_steps=4", "workload.eval_interval=4", "precision=fp32,bf16"]
            sweep(args.out, f"train-{model}", [f"model={model}", *train, f"batch_size={batches}"])
    base_peaks = [r["metrics"]["peak_rss_bytes"] for _, r in results.iter_results(args.out / "baseline")]
    base_cfg = next(r["config"] for _, r in results.iter_results(args.out / "baseline"))
    baseline = min(base_peaks) - memory_model.predict(base_cfg).total_bytes
    rows = []
    for folder in sorted(args.out.iterdir()):
        if folder.name == "baseline" or not folder.is_dir():
            continue
        for _, r in results.iter_results(folder):
            if r["status"] != "ok":
                rows.append({"run": r["key"], "status": r["status"]})
                continue
            pred = memory_model.predict(r["config"]).total_bytes
            measured = r["metrics"]["peak_rss_bytes"] - baseline
            f = r["key_fields"]
            rows.append({
                "run": f"{f['workload']} {f['model']} {f['precision']} bs={f['batch_size']}",
                "predicted_mib": round(pred / 2**20, 1),
                "measured_mib": round(measured / 2**20, 1),
                "error": round(pred / measured - 1, 3) if measured > 0 else None,
            })  # fmt: skip
    spread = (max(base_peaks) - min(base_peaks)) / 2**20
    doc = {"baseline_mib": round(baseline / 2**20, 1), "baseline_spread_mib": round(spread, 1), "rows": rows}
    print(json.dumps(doc, indent=1))


if __name__ == "__main__":
    main()
