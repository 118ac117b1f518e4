"""What the fork server (harness.forkserver) imports once, before it forks any run: torch, transformers and the
modeling modules the presets build, torchao, and the worker's own modules.

Imported only inside the server process (it is named in multiprocessing's forkserver preload list). It imports,
and does nothing else: no torch op (an op would start OpenMP / intra-op threads, which a fork cannot carry into
the child) and no `torch.cuda` call that initialises the driver (a CUDA context cannot survive a fork). What the
imports print goes to IMPORT_OUTPUT, which each child writes at the top of its own worker.log, where a spawned
worker would have printed it.
"""

from __future__ import annotations

import importlib
import os
import tempfile

from harness import guard
from harness.forkserver import LAUNCHER_PID_ENV, READY_ENV

# the server dies with the launcher that started it (kill -9 included); its children die with it (harness.forkserver)
guard.die_with_parent(int(os.environ[LAUNCHER_PID_ENV]) if os.environ.get(LAUNCHER_PID_ENV) else None)


# torch, transformers, torchao; then transformers' lazy modules: `import transformers` alone leaves AutoConfig,
# AutoModelForCausalLM and the model classes to the first model build, in the child, at ~2 s (every preset is
# llama); then what every run imports later on (held-out text through datasets, codecarbon's CPU/RAM estimate)
# and the worker's own modules. Only what a spawned run imports too: a forked child's resident memory includes
# the server's pages, so an extra module here would show in its peak_rss_bytes.
MODULES = (
    "torch",
    "transformers",
    "torchao",
    "transformers.models.auto.configuration_auto",
    "transformers.models.auto.modeling_auto",
    "transformers.models.llama.configuration_llama",
    "transformers.models.llama.modeling_llama",
    "datasets",
    "codecarbon.emissions_tracker",
    "pydoc_data.topics",
    "harness.worker",
    "harness.config",
    "harness.backends.hf",
    "harness.scenarios.inference",
    "harness.scenarios.training",
    *(f"harness.{m}" for m in ("accounting", "calibrate", "catalog", "checkpoints", "cost", "data", "distributed")),
    *(f"harness.{m}" for m in ("hardware", "interference", "models", "precision", "quality", "quality_eval")),
    "harness.transforms",
    *(f"harness.probes.{m}" for m in ("energy", "interference", "memory", "nvml", "timing")),
)


def _import_all() -> None:
    for name in MODULES:
        importlib.import_module(name)


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


def resident_file_pages() -> list[tuple[int, int]]:
    """(address, pages) runs of this process's file-backed pages that are in its page tables (readable mappings:
    shared libraries, mapped files), from /proc/self/maps and /proc/self/pagemap (bit 63: present).

    A fork copies the page tables of anonymous memory but not of file mappings, which the child would fault in
    only as it touches them: without this, a forked run's resident set would lack the ~100 MB of library pages a
    spawned worker's imports leave resident (seen: RssFile 29 MB forked vs 142 MB spawned after a model build),
    and its peak_rss_bytes would not compare with a spawned run's. The child touches these pages
    (harness.forkserver) so that its resident set starts where a spawned worker's does."""
    page = os.sysconf("SC_PAGE_SIZE")
    runs: list[tuple[int, int]] = []
    with open("/proc/self/maps") as maps, open("/proc/self/pagemap", "rb") as pagemap:
        for line in maps:
            parts = line.split()
            if len(parts) < 6 or not parts[1].startswith("r") or not parts[5].startswith("/") or parts[4] == "0":
                continue  # anonymous, special ([vdso], [stack]) or unreadable: nothing to touch
            start, end = (int(x, 16) for x in parts[0].split("-"))
            pagemap.seek(start // page * 8)
            entries = pagemap.read((end - start) // page * 8)
            first = None
            for i in range(len(entries) // 8 + 1):
                present = i < len(entries) // 8 and entries[i * 8 + 7] & 0x80
                if present and first is None:
                    first = i
                elif not present and first is not None:
                    runs.append((start + first * page, i - first))
                    first = None
    return runs


IMPORT_OUTPUT = _captured(_import_all)
RESIDENT_FILE_PAGES = resident_file_pages()
if os.environ.get(READY_ENV):  # the launcher waits for this (within the run's timeout) before it asks for a fork
    with open(os.environ[READY_ENV], "w") as ready:
        ready.write(f"{os.getpid()}\n")
