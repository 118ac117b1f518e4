"""Run one measured configuration in a fresh process, with a timeout and a memory limit.

The worker writes its own result; this module covers what the worker cannot report itself (it was
killed, timed out, or crashed before writing), so every run ends with a result file.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil

from harness import distributed, environment, results
from harness.errors import UnsupportedError
from harness.probes import nvml

POLL_S = 0.05
GRACE_S = 3.0
LOG_FILE = "worker.log"
SPEC_FILE = "run_spec.json"
LOG_TAIL_LINES = 15


def _tree_rss_bytes(proc: psutil.Process) -> int:
    """Resident memory of the worker and any processes it started."""
    total = 0
    for p in [proc, *proc.children(recursive=True)]:
        try:
            total += p.memory_info().rss
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    return total


def _kill_group(popen: subprocess.Popen) -> None:
    try:
        os.killpg(popen.pid, signal.SIGTERM)
        popen.wait(GRACE_S)
    except subprocess.TimeoutExpired:
        os.killpg(popen.pid, signal.SIGKILL)
        popen.wait()
    except ProcessLookupError:
        popen.wait()


def _log_tail(path: Path) -> list[str]:
    try:
        return path.read_text(errors="replace").strip().splitlines()[-LOG_TAIL_LINES:]
    except OSError:
        return []


def _failure(returncode: int, killed: str | None, peak_rss: int, config: dict[str, Any]) -> tuple[str, str]:
    """Status and reason for a worker that ended without writing its result."""
    if killed == "timeout":
        return "timeout", f"no result within timeout_s={config['timeout_s']:g} s; the run was stopped"
    if killed == "memory":
        return "oom", (
            f"resident memory reached {peak_rss} bytes, above memory_limit_bytes={config['memory_limit_bytes']}; "
            "the run was stopped"
        )
    if returncode == -signal.SIGKILL:
        return "oom", "the worker was killed by SIGKILL (most likely the kernel's out-of-memory killer)"
    if returncode < 0:
        return "error", f"the worker died from signal {signal.Signals(-returncode).name}"
    return "error", f"the worker exited with code {returncode} without writing a result"


def _unplaceable(config: dict[str, Any]) -> str | None:
    """Why `gpus` ranks cannot be placed on this machine, checked before torchrun starts them."""
    if config["gpus"] == 1:
        return None
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    requested = config["hardware"]["device"]
    gpus = nvml.device_count() if requested != "cpu" else 0
    device = "cuda" if requested == "cuda" or (requested == "auto" and gpus) else "cpu"
    try:
        distributed.check_fits(config["gpus"], device, gpus, cores)
    except UnsupportedError as exc:
        return str(exc)
    return None


def worker_command(config: dict[str, Any], spec_path: Path) -> list[str]:
    """`python -m harness.worker spec`, or through torchrun with one rank per device when gpus > 1."""
    worker = ["-m", "harness.worker", str(spec_path)]
    if config["gpus"] == 1 and config["dist"]["nnodes"] == 1:
        return [sys.executable, *worker]
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        *distributed.torchrun_args(config["gpus"], config["dist"]),
        *worker,
    ]


def run_isolated(config: dict[str, Any], run_dir: Path, overrides: list[str] | None = None) -> dict[str, Any]:
    """Measure `config` in a child process; return its result (also written to run_dir/result.json).
    `overrides`: the run's own Hydra overrides, stored in the result (harness.reproduce uses them)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    result_path = run_dir / results.RESULT_FILE
    if result_path.exists():  # an earlier, incomplete attempt: keep it beside, do not lose it
        os.replace(result_path, run_dir / "result.previous.json")
    unplaceable = _unplaceable(config)
    if unplaceable:  # never start more ranks than the machine can hold
        result = results.make_result(config, "unsupported", unplaceable, environment.capture())
        result["launcher"] = {"returncode": None, "wall_s": 0.0, "log": None}
        result["overrides"] = overrides
        results.write_atomic(result_path, result)
        return result
    spawned_at = time.time()
    spec = {"config": config, "result_path": str(result_path), "spawned_at": spawned_at}
    results.write_atomic(run_dir / SPEC_FILE, spec)
    env = dict(os.environ, PYTHONUNBUFFERED="1", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", HF_DATASETS_OFFLINE="1")
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    limit = config.get("memory_limit_bytes")
    killed, peak_rss = None, 0
    with open(run_dir / LOG_FILE, "w") as log:
        popen = subprocess.Popen(
            worker_command(config, run_dir / SPEC_FILE),
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,  # its own process group: a timeout kills everything it started
        )
        proc = psutil.Process(popen.pid)
        while popen.poll() is None:
            if time.time() - spawned_at > config["timeout_s"]:
                killed = "timeout"
            elif limit:
                peak_rss = max(peak_rss, _tree_rss_bytes(proc))
                if peak_rss > limit:
                    killed = "memory"
            if killed:
                _kill_group(popen)
                break
            time.sleep(POLL_S)
    wall_s = time.time() - spawned_at
    result = results.load(result_path) if killed is None else None
    launcher = {"returncode": popen.returncode, "wall_s": wall_s, "log": str(run_dir / LOG_FILE)}
    if result is None:
        status, reason = _failure(popen.returncode, killed, peak_rss, config)
        result = results.make_result(
            config, status, reason, environment.capture(), log_tail=_log_tail(run_dir / LOG_FILE)
        )
    result["launcher"] = launcher
    result["overrides"] = overrides
    results.write_atomic(result_path, result)
    return result
