"""Runs forked from a preloading server: each run still gets a fresh process of its own, without paying
for the imports (~2-3 s of torch, transformers and torchao, and ~2 s of transformers' lazy modules at the
first model build) every time.

This is Python's own `multiprocessing` fork server (`get_context("forkserver")` with
`set_forkserver_preload`): a server process, started once per launcher process at its first run, imports
harness.preload and forks one child per run; it reports the child's pid and its exit code (minus the signal
number for a signal, as a spawned worker's return code). What the stdlib does not do, this module adds:

- the child starts its own session (a timeout kills its whole process group, as start_new_session does);
- the child dies with the server (PR_SET_PDEATHSIG) and the server with the launcher (harness.preload), so a
  kill -9 of the launcher still ends the run; the child closes its copy of the server's "alive" pipe, which
  would otherwise keep a server whose launcher died waiting for it;
- stdout and stderr go to run_dir/worker.log, after what the server's imports printed;
- the environment is the one a spawned worker gets, set afresh in each child; a server started under another
  environment is replaced (its modules read some variables at import);
- the server's resident library pages are mapped into the child (a fork leaves file mappings to be faulted in
  later), so its resident set, and peak_rss_bytes, start where a spawned worker's do;
- torch's and numpy's global random states are drawn afresh (a fork copies the server's);
- atexit handlers run at the end, as at a spawned interpreter's exit.

The launcher (harness.launch) supervises the child like a spawned worker: timeout, memory limit, return code.
"""

from __future__ import annotations

import atexit
import io
import multiprocessing
import multiprocessing.forkserver as mp_forkserver
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psutil

from harness import guard

PRELOAD = "harness.preload"
LAUNCHER_PID_ENV = "HARNESS_LAUNCHER_PID"  # tells the server whose death it must not outlive
READY_ENV = "HARNESS_PRELOAD_READY"  # a file the server creates once its imports are done
CUDA_LINE = "cuda: "  # in the ready file: why the server must not fork runs (harness.cuda_guard.touched)
POLL_S = 0.05
_server_env: dict[str, str] | None = None  # the environment the running server was started with
_ready_files: dict[int, Path] = {}  # server pid -> the file it creates when ready (gone once seen)
_refused: str | None = None  # why this launcher forks no more runs (a server touched CUDA), once known


class CudaTouched(RuntimeError):
    """The fork server touched CUDA during its imports: a run forked from it could not use CUDA."""


class ForkedRun:
    """A forked run, with the part of subprocess.Popen's interface the launcher uses."""

    def __init__(self, process: Any, server_pid: int) -> None:
        self._process = process
        self.pid: int = process.pid
        self.server_pid = server_pid

    @property
    def returncode(self) -> int | None:
        return self._process.exitcode

    def poll(self) -> int | None:
        return self._process.exitcode

    def wait(self, timeout: float | None = None) -> int:
        self._process.join(timeout)
        if self._process.exitcode is None:
            raise subprocess.TimeoutExpired(f"forked run {self.pid}", timeout)
        return self._process.exitcode


@contextmanager
def _environ(env: Mapping[str, str]) -> Iterator[None]:
    """os.environ is `env` inside (the server process inherits it), as it was after."""
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def server_pid(env: Mapping[str, str]) -> int:
    """The running fork server's pid, started (or restarted under `env`) first where needed."""
    global _server_env
    server = mp_forkserver._forkserver
    if _server_env is not None and _server_env != dict(env):
        try:
            server._stop()  # its modules were imported under another environment
        except ChildProcessError:  # it had died and was reaped already
            server._forkserver_pid = None
    ready = Path(tempfile.gettempdir()) / f"harness-preload-{os.getpid()}-{uuid.uuid4().hex[:8]}.ready"
    before = server._forkserver_pid
    with _environ({**env, LAUNCHER_PID_ENV: str(os.getpid()), READY_ENV: str(ready)}):
        mp_forkserver.set_forkserver_preload([PRELOAD])
        server.ensure_running()  # a no-op while it runs; starts it again if it died
    if server._forkserver_pid != before:
        _ready_files[server._forkserver_pid] = ready
    _server_env = dict(env)
    return server._forkserver_pid


def _wait_ready(pid: int, deadline: float) -> bool:
    """Wait until server `pid` has done its imports (True), or until `deadline` (Unix time; False)."""
    ready = _ready_files.get(pid)
    while ready is not None and not ready.exists():
        if time.time() > deadline:
            return False
        try:
            dead = psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            dead = True
        if dead:
            raise EOFError("the fork server exited during its imports")
        time.sleep(POLL_S)
    if ready is not None:
        text = ready.read_text()
        ready.unlink(missing_ok=True)
        del _ready_files[pid]
        cuda = [line[len(CUDA_LINE) :] for line in text.splitlines() if line.startswith(CUDA_LINE)]
        if cuda:
            _refuse(cuda[0])
    return True


def _refuse(reason: str) -> None:
    """Stop the server that touched CUDA; this launcher's later runs are spawned (start raises CudaTouched)."""
    global _refused
    _refused = reason
    try:
        mp_forkserver._forkserver._stop()
    except ChildProcessError:  # it had died and was reaped already
        mp_forkserver._forkserver._forkserver_pid = None
    raise CudaTouched(reason)


def start(spec_path: str, log_path: str, env: Mapping[str, str], deadline: float) -> ForkedRun | None:
    """Fork one run (`python -m harness.worker spec_path`, in effect) from the server, with its pid; None when
    `deadline` (Unix time: the run's timeout) passed while a new server was still importing. Raises CudaTouched
    when a server of this launcher touched CUDA (then and for every later run: spawn them)."""
    if _refused is not None:
        raise CudaTouched(_refused)
    pid = server_pid(env)
    if not _wait_ready(pid, deadline):
        return None
    process = multiprocessing.get_context("forkserver").Process(
        target=_child, args=(spec_path, log_path, dict(env), pid), name="harness.worker", daemon=False
    )
    process.start()
    return ForkedRun(process, pid)


def _close_alive_pipe() -> None:
    """Drop the child's copy of the server's "alive" pipe: only the launcher should keep the server up."""
    fd = mp_forkserver._forkserver._forkserver_alive_fd
    mp_forkserver._forkserver._forkserver_alive_fd = None
    if fd is not None:
        try:
            os.close(fd)
        except OSError:
            pass


def _redirect_output(log_path: str) -> None:
    """stdout and stderr (descriptors 1 and 2, and sys.*) to the run's log, unbuffered (PYTHONUNBUFFERED)."""
    fd = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    for name, number in (("stdout", 1), ("stderr", 2)):
        stream = io.TextIOWrapper(io.FileIO(number, "w", closefd=False), line_buffering=True, write_through=True)
        setattr(sys, name, stream)


def resident_file_pages() -> list[tuple[int, int]]:
    """(address, pages) runs of this process's file-backed pages that are in its page tables (readable mappings:
    shared libraries, mapped files), from /proc/self/maps and /proc/self/pagemap (bit 63: present).

    A fork copies the page tables of anonymous memory but not of file mappings, which the child would fault in
    only as it touches them: without this, a forked run's resident set would lack the ~100 MB of library pages a
    spawned worker's imports leave resident (seen: RssFile 29 MB forked vs 142 MB spawned after a model build),
    and its peak_rss_bytes would not compare with a spawned run's. The child touches these pages
    (_touch) so that its resident set starts where a spawned worker's does."""
    page = os.sysconf("SC_PAGE_SIZE")
    runs: list[tuple[int, int]] = []
    with open("/proc/self/maps") as maps, open("/proc/self/pagemap", "rb", buffering=0) as pagemap:
        for line in maps:
            parts = line.split()
            if len(parts) < 6 or not parts[1].startswith("r") or not parts[5].startswith("/") or parts[4] == "0":
                continue  # anonymous, special ([vdso], [stack]) or unreadable: nothing to touch
            start, end = (int(x, 16) for x in parts[0].split("-"))
            first = None
            for i, present in enumerate(_present(pagemap, start // page, (end - start) // page)):
                if present and first is None:
                    first = i
                elif not present and first is not None:
                    runs.append((start + first * page, i - first))
                    first = None
            if first is not None:
                runs.append((start + first * page, (end - start) // page - first))
    return runs


# The pagemap is read 64 KiB at a time. Read in one piece per mapping (MBs for libtorch's), forked runs' peak_rss_bytes
# was 0.6-1.6 % above spawned runs'; both with the threshold fixed (MALLOC_MMAP_THRESHOLD_=131072) and with these
# small reads the gap was gone (<= 0.1 %). The likely mechanism, inferred, not observed directly: freeing a block
# that large raises glibc's dynamic mmap threshold (to the largest mmapped block freed, up to 32 MiB), which every
# child inherits, so more of its buffers come from the heap and stay resident.
_PAGEMAP_CHUNK = 8192  # entries of 8 bytes


def _present(pagemap, first_page: int, pages: int):
    """Whether each of `pages` pages from `first_page` is present (pagemap bit 63), read in small pieces."""
    pagemap.seek(first_page * 8)
    while pages > 0:
        entries = pagemap.read(min(pages, _PAGEMAP_CHUNK) * 8)
        if not entries:
            return
        for i in range(7, len(entries), 8):
            yield bool(entries[i] & 0x80)
        pages -= len(entries) // 8


def _touch(runs: list[tuple[int, int]]) -> None:
    """Read one byte of each page in `runs` ((address, pages)): the kernel maps them into this process's page
    tables from the page cache (minor faults), as they were in the server's (resident_file_pages)."""
    import ctypes

    import numpy

    page = os.sysconf("SC_PAGE_SIZE")
    for address, pages in runs:
        numpy.frombuffer((ctypes.c_char * (pages * page)).from_address(address), dtype=numpy.uint8)[::page].max()


def _child(spec_path: str, log_path: str, env: dict[str, str], parent_pid: int) -> None:
    """The forked run: own session, dies with the server, own environment and log; then the worker's main."""
    os.setsid()  # its own process group, as start_new_session=True gives a spawned worker
    guard.die_with_parent(parent_pid)
    _close_alive_pipe()
    os.environ.clear()
    os.environ.update(env)
    _redirect_output(log_path)
    preload = sys.modules.get(PRELOAD)
    sys.stdout.write(getattr(preload, "IMPORT_OUTPUT", ""))
    _touch(getattr(preload, "RESIDENT_FILE_PAGES", []))  # the resident set a spawned worker starts with
    import torch

    # harness.preload checked this before the first fork (harness.cuda_guard); checked again, as torch sees it here:
    # in a child forked after the poison, is_initialized() is False (it is `_initialized and not _is_in_bad_fork()`)
    if torch.cuda._is_in_bad_fork() or torch.cuda.is_initialized():
        raise RuntimeError("the fork server touched CUDA before forking this run; run with launcher.preload=false")
    # a fresh process's random states, as a spawned worker starts with: a fork copies the server's (Python's
    # `random` reseeds itself at fork); the run seeds torch itself (model build, data) either way
    torch.seed()
    import numpy

    numpy.random.seed()
    from harness import worker

    sys.argv = [worker.__file__, spec_path]
    try:
        code = worker.main([spec_path])
    finally:
        atexit._run_exitfuncs()  # a spawned worker's interpreter runs these at exit; a forked child exits by _exit
    sys.exit(code)
