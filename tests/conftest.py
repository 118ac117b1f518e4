"""Shared helpers: run the real CLI in a subprocess, shrunk so that each run takes seconds."""

from __future__ import annotations

import contextlib
import fcntl
import gc
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import psutil
import pytest

REPO = Path(__file__).resolve().parent.parent
# Small enough for 2 CPU cores, large enough that every figure has several samples.
FAST = [
    "seq_len=16",
    "workload.decode_tokens=4",
    "workload.warmup_iters=1",
    "workload.min_iters=2",
    "workload.min_time_s=0.05",
    "repeats=2",
    "quality.eval_tokens=1024",
]


# `nox -s mutation`: mutmut's fork server forks one pytest run per mutant from a process that has imported
# torch, transformers and every test module. Two things it leaves undone cost more than most tests do.
def _under_mutmut() -> bool:
    """True inside one mutant's test run (mutmut sets the mutant's name; its own runs are "stats" / "fail")."""
    name = os.environ.get("MUTANT_UNDER_TEST", "")
    return "__mutmut_" in name


def pytest_configure(config):
    _pin_worker()
    if _under_mutmut():
        # The inherited heap (torch et al.) is garbage-free; without this every collection, and pytest's two
        # gc.collect() calls at exit, walk all of it again: ~0.5 s per mutant, more than the tests it runs.
        gc.freeze()


def pytest_collection_modifyitems(config, items):
    """Under mutmut, fastest test first (mutmut's fork runner sorts so, its fork server does not): with -x a
    killed mutant then stops at its cheapest failing test instead of after a Hydra composition or two."""
    stats = Path("mutmut-stats.json")  # mutmut runs the tests from mutants/, where it keeps its stats
    if not _under_mutmut() or not stats.exists():
        return
    duration_s = json.loads(stats.read_text())["duration_by_test"]
    items.sort(key=lambda item: duration_s.get(item.nodeid, float("inf")))


def _shared_root(tmp_path_factory) -> Path:
    """A folder every test process of this session sees: pytest-xdist's workers each have their own basetemp,
    under one shared parent (a plain run has no workers: its own basetemp)."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


@pytest.fixture(scope="session", autouse=True)
def checkpoint_cache(tmp_path_factory):
    """One checkpoint cache for the whole session, shared by the xdist workers (never ~/.cache):
    model.weights=trained trains each preset once per session (checkpoints.py locks a preset while one process
    trains it), and every later run, in-process or through the CLI, in any worker, reuses it."""
    root = _shared_root(tmp_path_factory) / "harness-cache"
    root.mkdir(exist_ok=True)
    old = os.environ.get("HARNESS_CACHE")
    os.environ["HARNESS_CACHE"] = str(root)
    yield root
    if old is None:
        os.environ.pop("HARNESS_CACHE", None)
    else:
        os.environ["HARNESS_CACHE"] = old


# The suite runs in parallel (pytest-xdist, `-n` in pyproject.toml), each worker on its own share of the cores:
# its tests' runs inherit that affinity and size their thread pools to it, so two workers' torch thread pools
# never fight over one core (spinning OpenMP threads made a shared-core training run ~5x slower), and a run's
# interference probe, which watches only the run's own cores, sees no other worker. A test marked `alone` judges
# the machine's quiet or a speed against the clock, or needs more than one core (CPU ranks): it waits until the
# other workers' tests end and gets every core to itself. A readers-writer lock across processes: every test holds
# machine.lock shared, an `alone` test holds it exclusively; the turnstile keeps later tests from overtaking an
# `alone` test that waits (flock alone would let the shared holders starve it).
_ALL_CORES: set[int] = set()


def _worker_share(cores: list[int]) -> set[int]:
    """This xdist worker's slice of the cores (all of them when there are fewer cores than workers). A worker that
    replaces a crashed one gets the next id (gw2 of 2 workers): it takes the slice of the id it replaces."""
    workers = int(os.environ["PYTEST_XDIST_WORKER_COUNT"])
    index = int(os.environ["PYTEST_XDIST_WORKER"][2:]) % workers
    per = len(cores) // workers
    return set(cores[index * per : (index + 1) * per]) if per else set(cores)


def _pin_worker() -> None:
    """Before anything imports torch (its intra-op pool takes the affinity it finds)."""
    if os.environ.get("PYTEST_XDIST_WORKER") and hasattr(os, "sched_setaffinity"):
        _ALL_CORES.update(os.sched_getaffinity(0))
        os.sched_setaffinity(0, _worker_share(sorted(_ALL_CORES)))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        yield
        return
    # one folder per parallel session (xdist gives every worker the same testrun uid)
    root = Path(tempfile.gettempdir()) / f"harness-tests-{os.environ['PYTEST_XDIST_TESTRUNUID']}"
    root.mkdir(exist_ok=True)
    alone = item.get_closest_marker("alone") is not None
    with contextlib.ExitStack() as stack:
        turnstile = stack.enter_context(open(root / "turnstile.lock", "a"))
        machine = stack.enter_context(open(root / "machine.lock", "a"))
        fcntl.flock(turnstile, fcntl.LOCK_EX)
        fcntl.flock(machine, fcntl.LOCK_EX if alone else fcntl.LOCK_SH)  # closing the file releases it
        fcntl.flock(turnstile, fcntl.LOCK_UN)
        share = os.sched_getaffinity(0) if _ALL_CORES else None
        if alone and share is not None:
            os.sched_setaffinity(0, _ALL_CORES)
        try:
            yield
        finally:
            if alone and share is not None:
                os.sched_setaffinity(0, share)


# Every test runs with its own token in the environment; every process it starts (the CLI, its fork server and
# workers, torchrun's ranks, a `transformers serve`) inherits it, even once reparented. After the test none may be
# left: a server or rank that outlives its test holds a port, a core or a file lock that a later test trips on.
TEST_TOKEN_ENV = "HARNESS_TEST_TOKEN"
LEFT_BEHIND_GRACE_S = 10.0  # what a test started may still be exiting (a server's own shutdown) for this long


def _own_helper(proc: psutil.Process, me: psutil.Process) -> bool:
    """multiprocessing's fork server and resource tracker of the test process itself (started by an in-process
    launch): one per process, reused by every later test of that process, gone with it."""
    try:
        return proc.ppid() == me.pid and "from multiprocessing." in " ".join(proc.cmdline())
    except psutil.Error:
        return False


def _left_behind(token: str) -> list[psutil.Process]:
    me = psutil.Process()
    found = {p.pid: p for p in me.children(recursive=True)}  # forked children carry no exec-time environment
    found = {pid: p for pid, p in found.items() if not _own_helper(p, me)}
    own = {p.pid for p in me.children() if _own_helper(p, me)}
    for proc in psutil.process_iter():
        if proc.pid == me.pid or proc.pid in found or proc.pid in own:
            continue
        try:
            if proc.environ().get(TEST_TOKEN_ENV) == token:
                found[proc.pid] = proc
        except (psutil.Error, OSError):
            continue
    return [p for p in found.values() if _alive(p)]


def _alive(proc: psutil.Process) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


@pytest.fixture(autouse=True)
def _leaves_no_process_behind(request):
    token = f"{os.getpid()}-{uuid.uuid4().hex[:12]}"
    os.environ[TEST_TOKEN_ENV] = token
    try:
        yield
    finally:
        os.environ.pop(TEST_TOKEN_ENV, None)
    deadline = time.monotonic() + LEFT_BEHIND_GRACE_S
    left = _left_behind(token)
    while left and time.monotonic() < deadline:
        time.sleep(0.2)
        left = _left_behind(token)
    if left:
        names = []
        for proc in left:
            with contextlib.suppress(psutil.Error):
                names.append(f"pid {proc.pid}: {' '.join(proc.cmdline())[:160]}")
                proc.kill()
        pytest.fail(f"{request.node.nodeid} left {len(left)} process(es) running: " + "; ".join(names))


def run_cli(*args: str, cwd: Path, timeout: float = 240) -> subprocess.CompletedProcess:
    """`python -m harness <args>` as a user types it, from `cwd`."""
    return subprocess.run(
        [sys.executable, "-m", "harness", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def load_results(root: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(root.rglob("result.json"))]


@pytest.fixture
def harness(tmp_path):
    """Run the CLI with results under tmp_path/results; returns (completed process, results root)."""

    def _run(*args: str, fast: bool = True, timeout: float = 240):
        # argparse wants Hydra's flags (-m) before the overrides; ours come before the test's own,
        # so that a test's value (e.g. a seq_len sweep) wins over the fast default
        flags = [a for a in args if a.startswith("-")]
        overrides = [a for a in args if not a.startswith("-")]
        extra = [*FAST] if fast else []
        proc = run_cli(*flags, *extra, *overrides, f"results_dir={tmp_path / 'results'}", cwd=tmp_path, timeout=timeout)
        return proc, tmp_path / "results"

    return _run
