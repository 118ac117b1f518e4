"""The Hydra task: one configuration of a sweep → one isolated, measured run → one result file."""

from __future__ import annotations

import errno
import os
import signal
import time
from pathlib import Path
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from harness import (
    callbacks,
    environment,
    guard,
    launch,
    memory_model,
    multinode,
    pretrain,
    results,
    summary,
    validation,
)
from harness import config as config_mod
from harness.errors import Interrupted, SweepStopped
from harness.search import settings as search_settings

SWEEP_TOTAL_ENV = "HARNESS_SWEEP_TOTAL"
DISK_FULL = (errno.ENOSPC, errno.EDQUOT)


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
    from harness import scenarios

    config_mod.register()
    scenarios.store_schemas()  # each workload's own schema (conf/workload/<name>.yaml composes it)
    search_settings.register()  # hydra/sweeper=pareto (its plugin, hydra_plugins/harness_search, registers it too)
    if not OmegaConf.has_resolver("harness_run_slug"):
        OmegaConf.register_new_resolver("harness_run_slug", _slug_resolver)


def run(cfg: DictConfig) -> dict[str, Any]:
    """Validate, resume or launch, report progress; returns the run's result."""
    validation.validate(OmegaConf.to_object(cfg))
    config = OmegaConf.to_container(cfg, resolve=True)
    hc = HydraConfig.get()
    run_dir = Path(hc.runtime.output_dir)
    multirun = hc.mode == RunMode.MULTIRUN
    position = f"[{hc.job.num + 1}/{os.environ.get(SWEEP_TOTAL_ENV, '?')}]" if multirun else "[1/1]"
    name = summary.label(results.key_fields(config))

    def waiting(pid: str) -> None:
        print(f"{position} {name}: {run_dir} is in use by pid {pid} (another sweep); waiting for it", flush=True)

    try:
        with guard.run_lock(run_dir, on_wait=waiting):
            return _resume_or_launch(config, run_dir, position, name, multirun, list(hc.overrides.task))
    except (Interrupted, KeyboardInterrupt) as exc:
        signum = exc.signum if isinstance(exc, Interrupted) else signal.SIGINT
        raise SweepStopped(
            f"harness: interrupted by {signal.Signals(signum).name} at {position} {name} ({run_dir}); "
            f"complete runs are kept; run the same command again to resume",
            128 + signum,
        ) from None
    except OSError as exc:
        if exc.errno not in DISK_FULL:
            raise
        raise SweepStopped(disk_full_message(exc, f"{position} {name}"), 1) from None


def disk_full_message(exc: OSError, where: str = "") -> str:
    """The one line for a sweep stopped because its results could not be written."""
    at = f" at {where}" if where else ""
    return (
        f"harness: error: could not write {exc.filename or 'the results'} ({exc.strerror or exc}){at}; "
        "the sweep stopped, complete runs are kept; free space and run the same command again to resume"
    )


def _resume_or_launch(
    config: dict[str, Any], run_dir: Path, position: str, name: str, multirun: bool, overrides: list[str]
) -> dict:
    # across nodes, the run's result is node 0's: a peer node skips what node 0 completed (and would skip now),
    # read from node 0's run folder beside its own (a shared file system; elsewhere the peer finds none: it runs)
    where = multinode.result_dir(config, run_dir)
    previous, damaged = results.read(where / results.RESULT_FILE)
    if damaged:
        results.warn_damaged(where / results.RESULT_FILE, damaged, "measuring the run again")
    if config["resume"] and results.is_complete(previous, multinode.result_config(config)):
        print(f"{position} {name}: {previous['status']} (already complete, skipped) {where}", flush=True)
        return previous
    t0 = time.time()
    result = _predicted_oom(config, run_dir)
    if result is None:
        print(f"{position} {name}: running ...", flush=True)
        # model.weights=trained: its checkpoint is trained first (once, cached) as a measured run of its own
        result = pretrain.prepare(config, run_dir) or launch.run_isolated(config, run_dir, overrides)
    if multinode.is_peer(config):  # its node.json: no result of its own to summarise or report
        print(f"{position} {name}: {multinode.headline(result)} ({time.time() - t0:.1f} s)", flush=True)
        return result
    extra = ""
    if result["status"] == "ok":
        extra = ", " + summary.headline_line(result)
    elif result.get("reason"):
        extra = f": {result['reason'].splitlines()[0][:160]}"
    print(f"{position} {name}: {result['status']} in {time.time() - t0:.1f} s{extra}", flush=True)
    if _worker_disk_full(result):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(run_dir))
    if not multirun:
        print("\n" + summary.table([result]))
        print(f"\nresult: {run_dir / results.RESULT_FILE}", flush=True)
        # the embedded default ends like a sweep: with the report of its sweep folder (results/<sweep>)
        callbacks.write_report(run_dir.parent, (config.get("quality") or {}).get("floor"))
    return result


def _predicted_oom(config: dict[str, Any], run_dir: Path) -> dict[str, Any] | None:
    """The `predicted-oom` result of a run the memory model says will not fit (written, not launched), or None."""
    feas = config.get("feasibility") or {}
    if not feas.get("enabled", True) or feas.get("force"):
        return None
    section = memory_model.feasibility(config)
    if section["fits"] is not False:
        return None
    predicted, base = section["predicted"]["total_bytes"], section["predicted"]["baseline_bytes"]
    reason = (
        f"predicted peak {predicted / 2**20:,.0f} MiB per rank (the process's measured {base / 2**20:,.0f} MiB "
        f"included) is above {section['limit_bytes'] / 2**20:,.0f} MiB "
        f"({section['limit_source']}); not launched (feasibility.force=true runs it)"
    )
    result = results.make_result(config, "predicted-oom", reason, environment.capture(), feasibility=section)
    return multinode.record(config, run_dir, result)


def _worker_disk_full(result: dict[str, Any]) -> bool:
    """The worker could not write for lack of space: its traceback (in its log) ends on ENOSPC."""
    marks = tuple(f"[Errno {e}]" for e in DISK_FULL)
    return result["status"] == "error" and any(m in line for line in result.get("log_tail") or [] for m in marks)


@hydra.main(version_base="1.3", config_path=str(config_mod.CONF_DIR), config_name="config")
def hydra_main(cfg: DictConfig) -> dict[str, Any]:
    return run(cfg)  # the run's result: what a sweeper (hydra/sweeper=pareto) reads
