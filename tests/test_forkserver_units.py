"""The launch mode a config gets, the group signal a forked worker gets before it has a session, and what the
server and its children hold: threads, resident pages, the pagemap read that leaves malloc's threshold alone."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys

from synthetic import config as synthetic_config

from harness import forkserver, launch


def test_launch_mode_preload_by_default_spawn_on_request_torchrun_for_ranks():
    assert launch.launch_mode(synthetic_config()) == "preload"
    assert launch.launch_mode(synthetic_config(launcher={"preload": False})) == "spawn"
    assert launch.launch_mode(synthetic_config(gpus=2)) == "torchrun"  # preload or not: ranks need torchrun
    nodes = synthetic_config(launcher={"preload": True})
    nodes["dist"] = {**nodes["dist"], "nnodes": 2}
    assert launch.launch_mode(nodes) == "torchrun"
    assert launch.launch_mode({k: v for k, v in synthetic_config().items() if k != "launcher"}) == "preload"


def test_a_worker_not_yet_in_a_session_of_its_own_is_signalled_alone():
    # a child still in this process's group (a fork before its setsid): killpg(pid) finds no such group,
    # so the signal goes to the process, never to a group it shares with the launcher
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    assert os.getpgid(child.pid) != child.pid
    launch._signal_group(child.pid, signal.SIGTERM)
    assert child.wait(30) == -signal.SIGTERM
    launch._signal_group(child.pid, signal.SIGTERM)  # already gone: nothing raised


def test_the_server_prepares_a_run_starts_no_torch_thread_and_no_cuda_and_a_child_gets_its_resident_pages():
    # numpy (OpenBLAS) and pyarrow (jemalloc) start a thread each at import; torch's first parallel op would
    # start its OpenMP pool on top (seen: one more thread on 2 cores). After the server's imports: none more.
    # A forked child then maps the library pages resident in the server (a fork leaves them unmapped).
    script = (
        "import os, numpy, pyarrow\n"
        "before = len(os.listdir('/proc/self/task'))\n"
        "import harness.preload as p, torch\n"
        "import sys\n"
        "from harness import forkserver, prepare\n"
        "from transformers import conversion_mapping\n"
        "from codecarbon import input as cc_input\n"
        "from codecarbon.core import hardware_cache\n"
        "tables = conversion_mapping._checkpoint_conversion_mapping_cache, hardware_cache._tdp\n"
        "warm = None not in tables and cc_input._STATIC_DATA_LOADED\n"
        "print(all(m in sys.modules for m in prepare.MODULES), warm, flush=True)\n"
        "print(before, len(os.listdir('/proc/self/task')), torch.cuda.is_initialized(), flush=True)\n"
        "def rss_file():\n"
        "    return next(x for x in open('/proc/self/status') if x.startswith('RssFile:')).split()[1]\n"
        "server = rss_file()\n"
        "if os.fork() == 0:\n"
        "    untouched = rss_file()\n"
        "    forkserver._touch(p.RESIDENT_FILE_PAGES)\n"
        "    print(server, untouched, rss_file(), flush=True)\n"
        "    os._exit(0)\n"
        "os.wait()\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, check=True)
    prepared, threads, pages = out.stdout.splitlines()
    assert prepared == "True True", out.stdout  # every module a run imports, its tables built
    before, after, cuda = threads.split()
    assert after == before and cuda == "False", out.stdout
    server, untouched, touched = (int(x) for x in pages.split())  # RssFile, kB
    assert untouched < server / 2 and touched >= server * 0.95, (server, untouched, touched)


class _Pagemap(io.BytesIO):
    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.reads: list[int] = []

    def read(self, size: int = -1) -> bytes:
        self.reads.append(size)
        return super().read(size)


def test_the_pagemap_is_read_in_pieces_below_mallocs_mmap_threshold():
    # Read in one piece per mapping (MBs for libtorch's), forked runs' peak RSS was 0.6-1.6 % above spawned runs'
    # (likely through glibc's mmap threshold, which a large free raises: harness.forkserver); small reads: no gap.
    offset, pages = 7, 3 * forkserver._PAGEMAP_CHUNK + 5
    present = [i % 3 == 0 or 100 <= i < 9000 for i in range(offset + pages)]
    flags = [(1 << 63) | 0x1234 if p else 0x1234 for p in present]  # bit 63: present; the rest: a frame number
    pagemap = _Pagemap(b"".join(f.to_bytes(8, "little") for f in flags))
    assert list(forkserver._present(pagemap, offset, pages)) == present[offset:]
    assert max(pagemap.reads) <= 64 * 1024 < 128 * 1024  # glibc's default threshold: 128 KiB
    assert sum(pagemap.reads) == pages * 8
    short = _Pagemap(b"".join(f.to_bytes(8, "little") for f in flags[:10]))  # a mapping the file ends within
    assert list(forkserver._present(short, 4, 100)) == present[4:10]
