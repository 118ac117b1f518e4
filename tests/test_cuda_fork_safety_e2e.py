"""A real sweep through the CLI, its fork server's torch made a CUDA build (tests/fake_cuda_build.py, activated in
the server alone by tests/cuda_build_site/sitecustomize.py): the server makes no call that poisons a fork or
initialises CUDA, and its runs are forked; where something does touch CUDA, the sweep says so in one line and
spawns every run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import FAST, load_results

pytestmark = pytest.mark.e2e
SITE = Path(__file__).resolve().parent / "cuda_build_site"


def _sweep(tmp_path: Path, **env: str) -> tuple[subprocess.CompletedProcess, list[dict], list[dict]]:
    log = tmp_path / "cuda_calls.jsonl"
    environ = dict(os.environ, PYTHONPATH=os.pathsep.join([str(SITE), os.environ.get("PYTHONPATH", "")]))
    environ.update(HARNESS_TEST_CUDA_BUILD=str(log), **env)
    args = ["-m", *FAST, "model.weights=random", "batch_size=1,2", f"results_dir={tmp_path / 'results'}"]
    proc = subprocess.run(
        [sys.executable, "-m", "harness", *args], cwd=tmp_path, env=environ, capture_output=True, text=True, timeout=400
    )
    calls = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    return proc, load_results(tmp_path / "results"), calls


def test_a_sweep_forks_its_runs_from_a_server_that_never_touched_cuda(tmp_path):
    proc, results, calls = _sweep(tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert len(results) == 2
    for r in results:
        assert r["status"] == "ok", r["reason"]
        assert r["launcher"]["mode"] == "preload"
    installed = [c for c in calls if c["call"] == "installed"]
    assert [c["pid"] for c in installed] == [results[0]["launcher"]["server_pid"]]  # the fake was in the server
    assert [c for c in calls if c["call"] != "installed"] == []  # no cudaGetDeviceCount, no CUDA initialisation


def test_a_server_that_touched_cuda_is_told_in_one_line_and_every_run_is_spawned(tmp_path):
    proc, results, calls = _sweep(tmp_path, HARNESS_TEST_CUDA_POISON="init")
    assert proc.returncode == 0, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if "fork server" in line]
    assert lines == [
        "launcher: the fork server initialised CUDA during its imports; every run is spawned instead "
        "(as with launcher.preload=false)"
    ], proc.stderr
    assert len(results) == 2
    for r in results:
        assert r["status"] == "ok", r["reason"]
        assert r["launcher"]["mode"] == "spawn"
        assert any("fork server initialised CUDA" in w for w in r["warnings"])
    assert [c["call"] for c in calls][:2] == ["installed", "cuda_init"]
    assert {c["pid"] for c in calls} == {calls[0]["pid"]}  # in the server alone: the spawned runs were CPU builds
