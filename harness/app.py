"""The Hydra task: one configuration of a sweep → one isolated, measured run → one result file."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from harness import checkpoints, launch, results, summary
from harness import config as config_mod

SWEEP_TOTAL_ENV = "HARNESS_SWEEP_TOTAL"


def _slug_resolver(*, _root_: DictConfig) -> str:
    """${harness_run_slug:} — the run's folder name, from the job's config (Hydra's own node left out)."""
    cfg = {}
    for k in _root_.keys():
        if k in results.VOLATILE or k == "hydra":
            continue
        v = _root_[k]
        cfg[k] = OmegaConf.to_container(v, resolve=True) if OmegaConf.is_config(v) else v
    return results.run_slug(cfg)


def register() -> None:
    config_mod.register()
    if not OmegaConf.has_resolver("harness_run_slug"):
        OmegaConf.register_new_resolver("harness_run_slug", _slug_resolver)


def run(cfg: DictConfig) -> dict[str, Any]:
    """Validate, resume or launch, report progress; returns the run's result."""
    config_mod.validate(OmegaConf.to_object(cfg))
    config = OmegaConf.to_container(cfg, resolve=True)
    hc = HydraConfig.get()
    run_dir = Path(hc.runtime.output_dir)
    multirun = hc.mode == RunMode.MULTIRUN
    position = f"[{hc.job.num + 1}/{os.environ.get(SWEEP_TOTAL_ENV, '?')}]" if multirun else "[1/1]"
    name = summary.label(results.key_fields(config))

    previous = results.load(run_dir / results.RESULT_FILE)
    if config["resume"] and results.is_complete(previous, config):
        print(f"{position} {name}: {previous['status']} (already complete, skipped) {run_dir}", flush=True)
        return previous
    print(f"{position} {name}: running ...", flush=True)
    t0 = time.time()
    # model.weights=trained: its checkpoint is trained first (once, cached) as a measured run of its own
    result = checkpoints.prepare(config, run_dir) or launch.run_isolated(config, run_dir, list(hc.overrides.task))
    extra = ""
    if result["status"] == "ok":
        extra = ", " + summary.headline(result)
    elif result.get("reason"):
        extra = f": {result['reason'].splitlines()[0][:160]}"
    print(f"{position} {name}: {result['status']} in {time.time() - t0:.1f} s{extra}", flush=True)
    if not multirun:
        print("\n" + summary.table([result]))
        print(f"\nresult: {run_dir / results.RESULT_FILE}", flush=True)
    return result


@hydra.main(version_base="1.3", config_path=str(config_mod.CONF_DIR), config_name="config")
def hydra_main(cfg: DictConfig) -> None:
    run(cfg)
