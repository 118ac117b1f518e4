"""torch on a CUDA machine, as far as fork safety goes: a CPU build of torch made to behave like a CUDA build in
what poisons a fork and what initialises CUDA. Built from torch 2.13's source:

- torch/cuda/__init__.py: `_is_compiled()` is `hasattr(torch._C, "_cuda_getDeviceCount")`; `is_available()` calls
  `torch._C._cuda_getDeviceCount()` unless PYTORCH_NVML_BASED_CUDA_CHECK=1, then `device_count() > 0`;
  `device_count()` asks NVML first (`_raw_device_count_nvml`, libnvidia-ml) and calls `_cuda_getDeviceCount()`
  only where NVML fails or CUDA is initialised; `_lazy_init()` (every context call: `current_device`,
  `get_device_capability`, `get_device_properties`, `synchronize`, ...) raises "Cannot re-initialize CUDA in
  forked subprocess" when `_is_in_bad_fork()`, else calls `torch._C._cuda_init()`, which defines
  `_get_device_properties`; `is_initialized()` is `_initialized and not _is_in_bad_fork()`.
- torch/csrc/cuda/Module.cpp: `_cuda_getDeviceCount` and `_cuda_init` register the fork handler
  (`register_fork_handler_for_device_init(kCUDA)`, pthread_atfork) whose child side sets the device "in bad fork"
  (`_cuda_isInBadFork`, bound to `torch.cuda._is_in_bad_fork` at import).

torch's own Python code runs unchanged; only the C boundary (torch._C's CUDA functions, libnvidia-ml's count, and
`torch.version.cuda`) is replaced. A child forked after the poison keeps the fake and is "in bad fork"; a child
forked from a process that never poisoned gets the CPU build back (its run measures on the CPU, as it would have
on the GPU). Every poisoning or initialising call is recorded with its caller (`calls`, and one JSON line each in
`log_path`), in the process that installed the fake only.

Activated in the fork server of a real sweep by tests/cuda_build_site/sitecustomize.py (HARNESS_TEST_CUDA_BUILD).
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from pathlib import Path
from types import SimpleNamespace

_MISSING = object()
_HERE = str(Path(__file__).resolve())


def _caller() -> str:
    """The first frame outside torch and this fake: who made the call."""
    for frame in reversed(traceback.extract_stack()[:-2]):
        path = frame.filename.replace(os.sep, "/")
        if frame.filename != _HERE and "/torch/" not in path:
            return f"{frame.filename}:{frame.lineno} in {frame.name}"
    return "unknown"


# names torch's own modules import from torch._C where `torch.cuda._is_compiled()` (torch/_dynamo/device_interface.py)
_IMPORTED_FROM_C = ("_cuda_getCurrentRawStream",)


def _not_here(name: str):
    def call(*args, **kwargs):
        raise RuntimeError(f"fake CUDA build: torch._C.{name} is not modelled")

    return call


class CudaBuild:
    """One visible GPU, as a CUDA build of torch sees it (name and capability of an H200)."""

    def __init__(self, torch, log_path: str | None = None, count: int = 1, nvml: bool = True):
        self.torch, self.log_path, self.count, self.nvml = torch, log_path, count, nvml
        self.calls: list[dict] = []
        self.poisoned = False  # the fork handler is registered (torch: pthread_atfork, once)
        self.bad_fork = False  # this process is a child forked after the poison
        self.installed = False
        self._pid = os.getpid()
        self._saved: list[tuple[object, str, object]] = []
        self.props = SimpleNamespace(
            name="NVIDIA H200", major=9, minor=0, total_memory=150_110_945_280, multi_processor_count=132
        )

    # -- the C boundary --------------------------------------------------------------------------------------
    def _record(self, kind: str) -> None:
        if os.getpid() != self._pid:
            return
        call = {"call": kind, "caller": _caller(), "pid": os.getpid()}
        self.calls.append(call)
        if self.log_path:
            with open(self.log_path, "a") as log:
                log.write(json.dumps(call) + "\n")

    def _poison(self) -> None:
        self.poisoned = True

    def _get_device_count(self) -> int:  # torch._C._cuda_getDeviceCount: cudaGetDeviceCount, poison_fork()
        self._record("cudaGetDeviceCount")
        self._poison()
        return self.count

    def _cuda_init(self) -> None:  # torch._C._cuda_init: cuInit, a context; poison_fork(); module attributes
        self._record("cuda_init")
        self._poison()
        self.torch.cuda._get_device_properties = lambda index: self.props

    def _raw_device_count_nvml(self) -> int:  # libnvidia-ml's nvmlDeviceGetCount_v2; -1 where NVML fails
        return self.count if self.nvml else -1

    def _after_fork_child(self) -> None:
        if not self.installed:
            return
        if self.poisoned:
            self.bad_fork = True  # torch's forked_child(): set_device_in_bad_fork(kCUDA, true)
        else:
            self.uninstall()

    # -- install / uninstall ------------------------------------------------------------------------------------
    def _set(self, owner: object, name: str, value: object) -> None:
        self._saved.append((owner, name, getattr(owner, name, _MISSING)))
        setattr(owner, name, value)

    def install(self) -> CudaBuild:
        torch = self.torch
        self._set(torch._C, "_cuda_getDeviceCount", self._get_device_count)
        self._set(torch._C, "_cuda_init", self._cuda_init)
        self._set(torch._C, "_cuda_getDevice", lambda: 0)
        self._set(torch._C, "_cuda_getArchFlags", lambda: "sm_80 sm_90 sm_100")
        self._set(torch._C, "_cuda_isInBadFork", lambda: self.bad_fork)
        for name in _IMPORTED_FROM_C:  # imported by name where _is_compiled(); never called by the server
            if not hasattr(torch._C, name):
                self._set(torch._C, name, _not_here(name))
        self._set(torch.cuda, "_is_in_bad_fork", lambda: self.bad_fork)
        self._set(torch.cuda, "_cudart", torch.cuda._cudart or SimpleNamespace())
        self._set(torch.cuda, "_raw_device_count_nvml", self._raw_device_count_nvml)
        # seeds queued for CUDA's initialisation by earlier code in this process (torch.manual_seed queues
        # torch.cuda.manual_seed_all while CUDA is not up): a real build runs them on its generators at init, the
        # fake has none, so it starts with no queued seeds and gives the old tracker back when uninstalled
        self._set(torch.cuda, "_lazy_seed_tracker", torch.cuda._LazySeedTracker())
        self._set(torch.version, "cuda", "13.0")
        if self.nvml:  # the machine's NVML, as harness.probes.nvml loads it
            from fake_gpu import FakeBoard, FakeNvml

            from harness.probes import nvml

            board = FakeBoard(name=self.props.name, capability=(self.props.major, self.props.minor))
            self._set(nvml, "_import_pynvml", lambda: FakeNvml([board]))
        if not self.installed:
            os.register_at_fork(after_in_child=self._after_fork_child)
        self.installed = True
        return self

    def uninstall(self) -> None:
        for owner, name, value in reversed(self._saved):
            if value is _MISSING:
                delattr(owner, name)
            else:
                setattr(owner, name, value)
        self._saved.clear()
        self.torch.cuda._initialized = False
        self.torch.cuda._cached_device_count = None
        self.installed = False


def activate_from_env() -> CudaBuild | None:
    """In this process, per HARNESS_TEST_CUDA_BUILD (the log file) and HARNESS_TEST_CUDA_POISON (`count`: a
    cudaGetDeviceCount, `init`: a context call, made right after install, as a library's import could)."""
    log_path = os.environ.get("HARNESS_TEST_CUDA_BUILD")
    if not log_path:
        return None
    import torch

    build = CudaBuild(torch, log_path).install()
    build._record("installed")  # so that a test knows which process had it
    sys.modules[__name__].ACTIVE = build
    poison = os.environ.get("HARNESS_TEST_CUDA_POISON")
    if poison == "count":
        torch._C._cuda_getDeviceCount()
    elif poison == "init":
        torch.cuda.current_device()
    return build


ACTIVE: CudaBuild | None = None
