"""The memory model (harness/memory_model.py) against measured peaks on this machine's CPU, on held-out runs.

    python benchmarks/memory_model.py [--out results/memory-model] [--sets fit,heldout] [--no-125m]

Runs the real CLI (random weights, quality and energy off: only the timed window's peak matters) over the presets,
inference and training, at several precisions and batch sizes, in two sets:
- `fit`: the configurations the model's terms were set from (docs/results.md, "Memory model": inference at
  seq_len 128 and batch 1 / 8 (base also 32), training at batch 8 (base 4)): in-sample, shown apart;
- `heldout`: configurations no term was set from: seq_len 64, batch 2 and 16 for inference, 2 and 16 for
  training (base 2), and the 125m preset (inference, batch 1; --no-125m leaves it out).
The process baseline (interpreter, torch, transformers, the harness's modules: what a run holds before its model
exists) is measured, not fitted: memory_model.measure_baseline (a fresh process, what `feasibility` uses), and
for comparison the peak of a degenerate model (hidden size 8, one layer) run through the CLI three times.
Two errors per run, predicted / measured − 1:
- `error_total`: the whole peak, `memory_model.predict(config, baseline=measure_baseline())` against the
  timed window's `peak_rss_bytes` (what memory_limit_bytes judges, hence what `feasibility` must predict);
- `error_model`: the part above the baseline (predicted parts against peak − the degenerate run's peak + its
  own predicted parts): the model's terms alone; a few MiB for tiny, where the baseline's spread swamps it.
Per preset: the largest |error| of each kind over the held-out runs. Goal: within 15 %. Prints one JSON document.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from _output import emit  # noqa: E402

from harness import memory_model, results  # noqa: E402

THREADS = 2
COMMON = ["model.weights=random", "quality.enabled=false", "energy.enabled=false", "repeats=1", f"threads={THREADS}"]
FAST_INFERENCE = ["workload.warmup_iters=1", "workload.min_iters=1", "workload.min_time_s=0"]
TRAIN = ["workload=training", "workload.max_steps=4", "workload.eval_interval=4", "precision=fp32,bf16"]
INF = "precision=fp32,bf16,int8"
SETS: dict[str, list[tuple[str, list[str]]]] = {
    "fit": [
        *((f"inf-{m}", [*FAST_INFERENCE, f"model={m}", INF, f"batch_size={b}"]) for m, b in
          (("tiny", "1,8"), ("small", "1,8"), ("base", "1,8,32"))),
        *((f"train-{m}", [f"model={m}", *TRAIN, f"batch_size={b}"]) for m, b in
          (("tiny", "8"), ("small", "8"), ("base", "4"))),
    ],
    "heldout": [
        *((f"inf-{m}", [*FAST_INFERENCE, f"model={m}", INF, "seq_len=64", "batch_size=2,16"]) for m in
          ("tiny", "small", "base")),
        *((f"train-{m}", [f"model={m}", *TRAIN, "seq_len=64", f"batch_size={b}"]) for m, b in
          (("tiny", "2,16"), ("small", "2,16"), ("base", "2"))),
        ("inf-125m", [*FAST_INFERENCE, "model=125m", "precision=fp32,bf16", "seq_len=64", "batch_size=1",
                      "workload.decode_tokens=8"]),
    ],
}  # fmt: skip
BASELINE = ["model=tiny", "model.hidden_size=8", "model.intermediate_size=8", "model.num_hidden_layers=1",
            "model.num_attention_heads=1", "model.num_key_value_heads=1"]  # fmt: skip
MIB = 2**20


def sweep(out: Path, name: str, args: list[str]) -> None:
    cmd = [sys.executable, "-m", "harness", "-m", f"results_dir={out}", f"sweep={name}", *COMMON, *args]
    subprocess.run(cmd, cwd=REPO, check=True, stdout=subprocess.DEVNULL)


def row(r: dict[str, Any], baseline: int, degenerate: int) -> dict[str, Any]:
    f = r["key_fields"]
    name = f"{f['workload']} {f['model']} {f['precision']} bs={f['batch_size']} seq={f['seq_len']}"
    if r["status"] != "ok":
        return {"run": name, "status": r["status"]}
    pred = memory_model.predict(r["config"], "cpu", baseline)
    peak = r["metrics"]["peak_rss_bytes"]
    above = peak - degenerate
    return {
        "run": name,
        "model": f["model"],
        "predicted_mib": round(pred.total_bytes / MIB, 1),
        "measured_mib": round(peak / MIB, 1),
        "error_total": round(pred.total_bytes / peak - 1, 3),
        "predicted_model_mib": round(pred.model_bytes / MIB, 1),
        "measured_model_mib": round(above / MIB, 1),
        "error_model": round(pred.model_bytes / above - 1, 3) if above > 0 else None,
    }


def worst(rows: list[dict[str, Any]], key: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for r in rows:
        if r.get(key) is not None:
            out[r["model"]] = max(out.get(r["model"], 0.0), abs(r[key]))
    return {m: round(v, 3) for m, v in sorted(out.items())}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=REPO / "results" / "memory-model")
    p.add_argument("--sets", default="fit,heldout")
    p.add_argument("--no-125m", action="store_true")
    p.add_argument("--json", type=Path, help="also write the JSON document here")
    p.add_argument("--no-run", action="store_true", help="report the runs already in --out, launch none")
    p.add_argument("--also", type=Path, nargs="*", default=[], help="result folders run elsewhere, scored too")
    args = p.parse_args()
    baseline = memory_model.measure_baseline(THREADS)
    if not args.no_run:
        sweep(args.out, "baseline", [*BASELINE, *FAST_INFERENCE, "precision=fp32", "batch_size=1", "seed=0,1,2"])
    base_runs = [r for _, r in results.iter_results(args.out / "baseline")]
    degenerate_peaks = [r["metrics"]["peak_rss_bytes"] for r in base_runs]
    # the degenerate run's peak, less what the model predicts for its own (tiny) parts
    degenerate = min(degenerate_peaks) - memory_model.predict(base_runs[0]["config"]).model_bytes
    doc: dict[str, Any] = {
        "threads": THREADS,
        "baseline_measured_mib": round(baseline / MIB, 1),
        "degenerate_run_baseline_mib": round(degenerate / MIB, 1),
        "degenerate_run_spread_mib": round((max(degenerate_peaks) - min(degenerate_peaks)) / MIB, 1),
    }
    for name in args.sets.split(","):
        rows = []
        for folder, sweep_args in SETS[name]:
            if folder == "inf-125m" and args.no_125m:
                continue
            if not args.no_run:
                sweep(args.out / name, folder, sweep_args)
            rows += [row(r, baseline, degenerate) for _, r in results.iter_results(args.out / name / folder)]
        doc[name] = {
            "rows": rows,
            "worst_error_total": worst(rows, "error_total"),
            "worst_error_model": worst(rows, "error_model"),
        }
    for folder in args.also:  # e.g. the search benchmark's grid: trained weights, quality and energy on
        rows = [row(r, baseline, degenerate) for _, r in results.iter_results(folder)]
        doc[str(folder)] = {"rows": rows, "worst_error_total": worst(rows, "error_total")}
    return emit(doc, args.json)


if __name__ == "__main__":
    sys.exit(main())
