"""Shared helpers: run the real CLI in a subprocess, shrunk so that each run takes seconds."""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
from pathlib import Path

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


@pytest.fixture(scope="session", autouse=True)
def checkpoint_cache(tmp_path_factory):
    """One checkpoint cache for the whole session (never ~/.cache): model.weights=trained trains each preset
    once per session, and every later run, in-process or through the CLI, reuses it."""
    root = tmp_path_factory.mktemp("harness-cache")
    old = os.environ.get("HARNESS_CACHE")
    os.environ["HARNESS_CACHE"] = str(root)
    yield root
    if old is None:
        os.environ.pop("HARNESS_CACHE", None)
    else:
        os.environ["HARNESS_CACHE"] = old


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
