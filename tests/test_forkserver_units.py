"""The launch mode a config gets, and the group signal a forked worker gets before it has a session."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

from synthetic import config as synthetic_config

from harness import launch


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


def test_the_server_imports_start_no_torch_thread_and_no_cuda_and_a_child_gets_its_resident_pages():
    # numpy (OpenBLAS) and pyarrow (jemalloc) start a thread each at import; torch's first parallel op would
    # start its OpenMP pool on top (seen: one more thread on 2 cores). After the server's imports: none more.
    # A forked child then maps the library pages resident in the server (a fork leaves them unmapped).
    script = (
        "import os, numpy, pyarrow\n"
        "before = len(os.listdir('/proc/self/task'))\n"
        "import harness.preload as p, torch\n"
        "from harness import forkserver\n"
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
    threads, pages = out.stdout.splitlines()
    before, after, cuda = threads.split()
    assert after == before and cuda == "False", out.stdout
    server, untouched, touched = (int(x) for x in pages.split())  # RssFile, kB
    assert untouched < server / 2 and touched >= server * 0.95, (server, untouched, touched)
