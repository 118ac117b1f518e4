"""The environment a run measured in: enough to tell whether two results are comparable."""

from __future__ import annotations

import os
import platform
import socket
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

from harness import __version__
from harness.hardware import cpu_name

_PACKAGES = ("torch", "transformers", "torchao", "hydra-core", "nvidia-ml-py", "psutil", "codecarbon")
_REPO = Path(__file__).resolve().parent.parent


def package_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {}
    for name in _PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    versions["harness"] = __version__
    return versions


def git_commit() -> dict[str, Any]:
    """The harness checkout's commit, and whether it had uncommitted changes."""

    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(["git", *args], cwd=_REPO, capture_output=True, text=True, timeout=5)
        except (OSError, subprocess.SubprocessError):
            return None
        return out.stdout.strip() if out.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no") if commit else None
    return {"commit": commit, "dirty": bool(status) if status is not None else None}


def _memory_total_bytes() -> int | None:
    try:
        import psutil

        return int(psutil.virtual_memory().total)
    except Exception:
        return None


def capture() -> dict[str, Any]:
    """Host facts that need no torch import (the launcher uses this for runs that never started)."""
    try:
        affinity = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        affinity = None
    try:
        import psutil

        physical = psutil.cpu_count(logical=False)
    except Exception:
        physical = None
    return {
        "hostname": socket.gethostname(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "cpu_model": cpu_name(),
        "cpu_logical_cores": os.cpu_count(),
        "cpu_physical_cores": physical,
        "cpu_affinity_cores": affinity,
        "memory_total_bytes": _memory_total_bytes(),
        "omp_num_threads_env": os.environ.get("OMP_NUM_THREADS"),
        "packages": package_versions(),
        "git": git_commit(),
    }
