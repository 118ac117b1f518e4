"""A launcher defined by the test suite, registered through HARNESS_PLUGINS (harness/plugins.py) and chosen
with launcher.name=niced: the worker spawned at a lower CPU priority (`nice`), as a shared machine asks."""

from __future__ import annotations

import subprocess
from typing import Any

from harness import launchers

NICENESS = 5


@launchers.register("niced")
def niced(command: list[str], env: dict[str, str], log: Any) -> subprocess.Popen:
    """`nice -n 5 <command>` in its own session (the launcher kills its group on a limit)."""
    return subprocess.Popen(
        ["nice", "-n", str(NICENESS), *command], stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
    )
