"""Override sets whose key, key fields, config hash and run slug must not change (tests/test_seams.py).

Each workload's default config, and the variants that take every workload branch of the key and slug
(trained weights, lora, init=checkpoint, closed-loop / max-rate serving, a memory limit, repeats=auto).
`python tests/seams_golden.py > tests/data/seams_golden.json` wrote the expected values at 5e07a75,
before the workload branches moved from harness/results.py into the scenarios."""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

CASES: dict[str, tuple[str, ...]] = {
    "inference": ("workload=inference",),
    "inference-trained": ("workload=inference", "model.weights=trained", "model.train_steps=50"),
    "inference-int8-limit": ("workload=inference", "precision=int8", "memory_limit_bytes=1000000000"),
    "inference-auto": ("workload=inference", "repeats=auto"),
    "training": ("workload=training",),
    "training-target": ("workload=training", "workload.target_eval_loss=5.0", "gpus=2"),
    "serving": ("workload=serving",),
    "serving-closed": ("workload=serving", "serving.arrival=closed", "serving.concurrency=4"),
    "serving-search": ("workload=serving", "serving.search=max_rate"),
    "classification": ("workload=classification",),
    "classification-lora": ("workload=classification", "finetune=lora", "workload.target_accuracy=0.5"),
    "classification-ckpt": ("workload=classification", "workload.init=checkpoint"),
    "distill": ("workload=distill",),
    "distill-lora": ("workload=distill", "finetune=lora", "distill.alpha=0.7"),
}


def compute() -> dict[str, dict]:
    """key, key_fields, config_hash and run_slug of every case, from the shipped config."""
    from composed import resolved

    from harness import results

    out = {}
    for name, overrides in CASES.items():
        cfg = resolved(*overrides)
        out[name] = {
            "key": results.canonical_key(cfg),
            "key_fields": results.key_fields(cfg),
            "config_hash": results.config_hash(cfg),
            "run_slug": results.run_slug(cfg),
        }
    return out


if __name__ == "__main__":
    print(json.dumps(compute(), indent=1, sort_keys=True))
