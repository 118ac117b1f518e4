"""Run one measured configuration in a fresh process, with a timeout and a memory limit.

The worker writes its own result, which this launcher promotes to result.json; this module covers what
the worker cannot report itself (it was killed, timed out, or crashed before writing), so every run ends
with a result file.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import psutil

from harness import distributed, environment, forkserver, guard, launchers, multinode, results
from harness.errors import Interrupted, UnsupportedError
from harness.probes import nvml

POLL_S = 0.05
GRACE_S = 3.0
LOG_FILE = "worker.log"
SPEC_FILE = "run_spec.json"
LOG_TAIL_LINES = 15
# A worker that died from one of these was stopped from outside (a user, a scheduler, the OOM killer):
# `killed`, retried on resume, unless the kernel's OOM counters moved (then `oom`).
KILL_SIGNALS = (signal.SIGKILL, signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT)


def _tree_rss_bytes(proc: psutil.Process | None) -> int:
    """Resident memory of the worker and any processes it started (0 once it is gone)."""
    try:
        tree = [proc, *proc.children(recursive=True)] if proc is not None else []
    except psutil.NoSuchProcess:  # a forked worker is reaped by the fork server, not by us: it can vanish any time
        return 0
    total = 0
    for p in tree:
        try:
            total += p.memory_info().rss
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    return total


def _signal_group(pid: int, signum: int) -> None:
    """Signal the worker's process group; a forked worker not yet in its own session (the first
    milliseconds after the fork) has started nothing yet: the process alone."""
    try:
        os.killpg(pid, signum)
    except ProcessLookupError:
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass


def _kill_group(popen: Any) -> None:
    """Stop the worker and everything it started: SIGTERM, then SIGKILL after GRACE_S."""
    _signal_group(popen.pid, signal.SIGTERM)
    try:
        popen.wait(GRACE_S)
    except subprocess.TimeoutExpired:
        _signal_group(popen.pid, signal.SIGKILL)
        popen.wait()


def _log_tail(path: Path) -> list[str]:
    try:
        return path.read_text(errors="replace").strip().splitlines()[-LOG_TAIL_LINES:]
    except OSError:
        return []


def oom_counters(proc: Path = Path("/proc"), cgroup_fs: Path = Path("/sys/fs/cgroup")) -> dict[str, int]:
    """The kernel's OOM-kill counters this process can see: its cgroup's memory.events (cgroup v2; the worker
    inherits the launcher's cgroup) and the machine's /proc/vmstat."""
    counters: dict[str, int] = {}
    try:
        lines = (proc / "self" / "cgroup").read_text().splitlines()
    except OSError:
        lines = []
    for line in lines:
        _, controllers, rel = (line.split(":", 2) + ["", ""])[:3]
        rel = rel.lstrip("/")
        if controllers == "memory":  # cgroup v1: the memory controller's own hierarchy
            counters.update(_read_counter(cgroup_fs / "memory" / rel / "memory.oom_control", "cgroup"))
        elif controllers == "" and line.startswith("0::"):  # cgroup v2
            counters.update(_read_counter(cgroup_fs / rel / "memory.events", "cgroup"))
    counters.update(_read_counter(proc / "vmstat", "vmstat"))
    return counters


def _read_counter(path: Path, source: str) -> dict[str, int]:
    try:
        for line in path.read_text().splitlines():
            name, _, value = line.partition(" ")
            if name == "oom_kill":
                return {f"{source} oom_kill ({path})": int(value)}
    except (OSError, ValueError):
        pass
    return {}


def oom_evidence(before: dict[str, int], after: dict[str, int]) -> str | None:
    """Which kernel counter moved while the worker ran, or None when none did."""
    moved = [f"{name} {before[name]}->{after[name]}" for name in before if after.get(name, 0) > before[name]]
    return "; ".join(moved) or None


def _failure(
    returncode: int | None, stopped: str | None, peak_rss: int, config: dict[str, Any], evidence: str | None
) -> tuple[str, str]:
    """Status and reason for a worker that ended without writing its result."""
    if stopped == "timeout":
        return "timeout", f"no result within timeout_s={config['timeout_s']:g} s; the run was stopped"
    if stopped == "memory":
        return "oom", (
            f"resident memory reached {peak_rss} bytes, above memory_limit_bytes={config['memory_limit_bytes']}; "
            "the run was stopped"
        )
    if stopped is not None:  # the sweep itself was interrupted
        return "killed", f"the sweep was interrupted by {stopped}; the worker was stopped (resume retries it)"
    if returncode == -signal.SIGKILL and evidence:
        return "oom", f"the kernel's out-of-memory killer stopped the worker (SIGKILL; {evidence})"
    if returncode is not None and returncode < 0:
        name = signal.Signals(-returncode).name
        if -returncode in KILL_SIGNALS:
            return "killed", (
                f"the worker was killed by {name}, with no out-of-memory evidence from the kernel "
                "(cgroup memory.events and /proc/vmstat oom_kill unchanged); resume retries it"
            )
        return "error", f"the worker died from signal {name}"
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
        *distributed.torchrun_args(config["gpus"], config["dist"], _rendezvous_timeout_s(config)),
        *worker,
    ]


def _rendezvous_timeout_s(config: dict[str, Any]) -> int:
    """How long a node waits for the others at the rendezvous: as long as a rank waits at a collective."""
    return max(1, int(distributed.collective_timeout_s(config["dist"], config["timeout_s"])))


def _worker_env() -> dict[str, str]:
    """The environment of every worker, spawned or forked."""
    env = dict(os.environ, PYTHONUNBUFFERED="1", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", HF_DATASETS_OFFLINE="1")
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    return env


def launch_mode(config: dict[str, Any]) -> str:
    """How the run's process starts: `torchrun` (gpus > 1 or several nodes), `preload` (forked from the
    preloading server, harness.forkserver) or `spawn` (a fresh interpreter; launcher.preload=false)."""
    if config["gpus"] != 1 or config["dist"]["nnodes"] != 1:
        return "torchrun"
    if config.get("launcher", {}).get("name"):  # a plugin's launcher (harness.launchers)
        return config["launcher"]["name"]
    return "preload" if config.get("launcher", {}).get("preload", True) else "spawn"


def _start(
    config: dict[str, Any], spec_path: Path, log: Any, warnings: list[str], deadline: float
) -> tuple[Any | None, str]:
    """The worker's process (None: the run's timeout passed while the fork server was still importing) and
    its launch mode; a fork server that cannot start falls back to a spawn."""
    mode = launch_mode(config)
    if mode == "preload":
        try:
            return forkserver.start(str(spec_path), log.name, _worker_env(), deadline), mode
        except forkserver.CudaTouched as exc:  # the server's imports touched CUDA: its forks could not use it
            _announce(f"launcher: {exc}; every run is spawned instead (as with launcher.preload=false)")
            warnings.append(f"launcher: {exc}; the worker was spawned")
            mode = "spawn"
        except (OSError, EOFError) as exc:  # the server died before forking (a broken install, no /dev/shm ...)
            warnings.append(f"launcher: the fork server failed ({type(exc).__name__}: {exc}); the worker was spawned")
            mode = "spawn"
    start = launchers.get(mode)
    if start is not None:
        return start(worker_command(config, spec_path), _worker_env(), log), mode
    return _spawn(config, spec_path, log), mode


_announced: set[str] = set()


def _announce(line: str) -> None:
    """Say it once per launcher process (a sweep), on stderr."""
    if line not in _announced:
        _announced.add(line)
        print(line, file=sys.stderr, flush=True)


def _spawn(config: dict[str, Any], spec_path: Path, log: Any) -> subprocess.Popen:
    launcher_pid = os.getpid()
    return subprocess.Popen(
        worker_command(config, spec_path),
        stdout=log,
        stderr=subprocess.STDOUT,
        env=_worker_env(),
        start_new_session=True,  # its own process group: a timeout kills everything it started
        # and it dies with this launcher, however the launcher dies (kill -9 included)
        preexec_fn=lambda: guard.die_with_parent(launcher_pid),
    )


def _supervise(popen: Any, config: dict[str, Any], spawned_at: float) -> tuple[str | None, int]:
    """Wait for the worker; (why it was stopped or None, peak resident bytes). Stops it on a limit."""
    limit = config.get("memory_limit_bytes")
    peak_rss = 0
    try:
        proc = psutil.Process(popen.pid)
    except psutil.NoSuchProcess:  # a forked worker that already ended (and was reaped by the server)
        proc = None
    while popen.poll() is None:
        if time.time() - spawned_at > config["timeout_s"]:
            _kill_group(popen)
            return "timeout", peak_rss
        if limit:
            peak_rss = max(peak_rss, _tree_rss_bytes(proc))
            if peak_rss > limit:
                _kill_group(popen)
                return "memory", peak_rss
        time.sleep(POLL_S)
    return None, peak_rss


def run_isolated(config: dict[str, Any], run_dir: Path, overrides: list[str] | None = None) -> dict[str, Any]:
    """Measure `config` in a child process; return its result (also written to run_dir/result.json).
    `overrides`: the run's own Hydra overrides, stored in the result (harness.reproduce uses them).

    The worker writes to a file named after this launch's token; only this launcher, once the worker has
    ended under its watch, promotes it to result.json. A worker that outlived its launcher therefore can
    never leave a result that resume takes as complete.
    """
    run_dir.mkdir(parents=True, exist_ok=True)
    result_path = run_dir / results.RESULT_FILE
    if result_path.exists():  # an earlier, incomplete attempt: keep it beside, do not lose it
        os.replace(result_path, run_dir / "result.previous.json")
    unplaceable = _unplaceable(config)
    if unplaceable:  # never start more ranks than the machine can hold
        result = results.make_result(config, "unsupported", unplaceable, environment.capture())
        result["launcher"] = {"mode": launch_mode(config), "returncode": None, "wall_s": 0.0, "log": None}
        result["overrides"] = overrides
        return multinode.record(config, run_dir, result)
    launch_id = uuid.uuid4().hex[:12]
    staged = run_dir / f"result.{launch_id}.json"
    spawned_at = time.time()
    spec = {"config": config, "result_path": str(staged), "spawned_at": spawned_at, "launch_id": launch_id}
    results.write_atomic(run_dir / SPEC_FILE, spec)
    counters = oom_counters()
    popen, mode, warnings = None, launch_mode(config), []
    with open(run_dir / LOG_FILE, "w") as log:
        try:
            popen, mode = _start(config, run_dir / SPEC_FILE, log, warnings, spawned_at + config["timeout_s"])
            stopped, peak_rss = _supervise(popen, config, spawned_at) if popen is not None else ("timeout", 0)
        except (Interrupted, KeyboardInterrupt) as exc:  # wherever it lands, the worker goes and it is recorded
            if popen is not None:
                _kill_group(popen)
            signum = exc.signum if isinstance(exc, Interrupted) else signal.SIGINT
            returncode = popen.returncode if popen is not None else None
            name = signal.Signals(signum).name
            _record_failure(config, run_dir, returncode, name, 0, spawned_at, launch_id, None, overrides, mode)
            staged.unlink(missing_ok=True)
            raise
    returncode = popen.returncode if popen is not None else None
    evidence = oom_evidence(counters, oom_counters()) if returncode == -signal.SIGKILL else None
    result = results.load(staged) if stopped is None else None
    staged.unlink(missing_ok=True)
    if result is None and multinode.is_peer(config) and stopped is None and returncode == 0:
        # a peer node's ranks report through global rank 0, on node 0: its part ended well
        part = {"status": "ok", "launcher": _launcher_section(returncode, run_dir, spawned_at, launch_id, mode)}
        return multinode.record(config, run_dir, {**part, "warnings": warnings})
    if result is None:
        return _record_failure(
            config, run_dir, returncode, stopped, peak_rss, spawned_at, launch_id, evidence, overrides, mode
        )
    result["launcher"] = _launcher_section(returncode, run_dir, spawned_at, launch_id, mode)
    if mode == "preload":  # the same server for every run of one launcher process
        result["launcher"]["server_pid"] = popen.server_pid
    if returncode:  # the figures were written, then something failed (a rank's teardown, its watchdog): say so
        warnings.append(f"the worker exited with code {returncode} after writing its result (its log: {LOG_FILE})")
    result["warnings"] = [*result.get("warnings", []), *warnings]
    result["overrides"] = overrides
    return multinode.record(config, run_dir, result)


def _launcher_section(
    returncode: int | None, run_dir: Path, spawned_at: float, launch_id: str, mode: str
) -> dict[str, Any]:
    return {
        "mode": mode,  # preload | spawn | torchrun (launch_mode)
        "returncode": returncode,
        "wall_s": time.time() - spawned_at,
        "log": str(run_dir / LOG_FILE),
        "launch_id": launch_id,
    }


def _record_failure(
    config: dict[str, Any],
    run_dir: Path,
    returncode: int | None,
    stopped: str | None,
    peak_rss: int,
    spawned_at: float,
    launch_id: str,
    evidence: str | None,
    overrides: list[str] | None,
    mode: str,
) -> dict[str, Any]:
    """The result of a worker that ended without a usable result of its own, written by the launcher (on a
    peer node of a run across nodes: its node.json, harness.multinode)."""
    status, reason = _failure(returncode, stopped, peak_rss, config, evidence)
    log_tail = _log_tail(run_dir / LOG_FILE)
    if multinode.is_peer(config) and status == "error" and returncode is not None and returncode > 0:
        reason = multinode.peer_reason(returncode, log_tail)
    result = results.make_result(config, status, reason, environment.capture(), log_tail=log_tail)
    result["launcher"] = _launcher_section(returncode, run_dir, spawned_at, launch_id, mode)
    result["overrides"] = overrides
    return multinode.record(config, run_dir, result)
