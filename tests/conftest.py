"""Shared helpers: run the real CLI in a subprocess, shrunk so that each run takes seconds."""

from __future__ import annotations

import json
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


@pytest.fixture(scope="session", autouse=True)
def checkpoint_cache(tmp_path_factory):
    """One checkpoint cache for the whole session (never ~/.cache): model.weights=trained trains each preset
    once per session, and every later run, in-process or through the CLI, reuses it."""
    import os

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
