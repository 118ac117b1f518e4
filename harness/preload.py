"""The fork server's (harness.forkserver) start: what every run's process holds before it measures
(harness.prepare: the modules imported, the tables a run builds on first use), done once, before it forks any run.

Imported only inside the server process (it is named in multiprocessing's forkserver preload list). Beside
harness.prepare (run inside harness.cuda_guard.fork_safe, then checked: CUDA_TOUCHED, told to the launcher in
the ready file) it does nothing but note what a child needs: what the imports printed (IMPORT_OUTPUT, which each
child writes at the top of its own worker.log, where a spawned worker would have printed it) and which file
pages are resident (RESIDENT_FILE_PAGES).
"""

from __future__ import annotations

import os
import tempfile

from harness import cuda_guard, forkserver, guard, prepare

# the server dies with the launcher that started it (kill -9 included); its children die with it (harness.forkserver)
_launcher = os.environ.get(forkserver.LAUNCHER_PID_ENV)
guard.die_with_parent(int(_launcher) if _launcher else None)


def _captured(fn) -> str:
    """Run fn with this process's stdout and stderr (the file descriptors) going to a temporary file; its text."""
    import sys

    with tempfile.TemporaryFile() as out:
        sys.stdout.flush()
        sys.stderr.flush()
        saved = os.dup(1), os.dup(2)
        os.dup2(out.fileno(), 1)
        os.dup2(out.fileno(), 2)
        try:
            fn()
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])
        out.seek(0)
        return out.read().decode(errors="replace")


# torch.cuda answers the imports' availability and capability checks through NVML (harness.cuda_guard): a CUDA call
# here would break every forked run. Whether one happened anyway is checked after, and told to the launcher, which
# then spawns its runs instead.
with cuda_guard.fork_safe() as _cuda_calls:
    IMPORT_OUTPUT = _captured(prepare.ready)
CUDA_TOUCHED = cuda_guard.touched(_cuda_calls)
RESIDENT_FILE_PAGES = forkserver.resident_file_pages()
# the launcher waits for this file (within the run's timeout) before it asks for a fork
if os.environ.get(forkserver.READY_ENV):
    _ready = os.environ[forkserver.READY_ENV]
    with open(_ready + ".tmp", "w") as ready:  # whole when it appears: the launcher reads it at once
        ready.write(f"{os.getpid()}\n" + (f"{forkserver.CUDA_LINE}{CUDA_TOUCHED}\n" if CUDA_TOUCHED else ""))
    os.replace(_ready + ".tmp", _ready)
