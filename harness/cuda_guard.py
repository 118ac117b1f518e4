"""Keep CUDA out of the fork server, and say so when something touched it anyway.

On a CUDA build of torch (torch/cuda/__init__.py, torch/csrc/cuda/Module.cpp, torch 2.11-2.13):
- `torch.cuda.is_available()` calls cudaGetDeviceCount (`torch._C._cuda_getDeviceCount`), which registers torch's
  fork handler: every child forked afterwards is "in bad fork" and raises "Cannot re-initialize CUDA in forked
  subprocess" at its first CUDA call. With PYTORCH_NVML_BASED_CUDA_CHECK=1 it asks NVML instead (`device_count()`,
  which falls back to cudaGetDeviceCount only where NVML fails), and poisons nothing.
- A context call (`get_device_capability`, `get_device_properties`, `current_device`, ...) goes through
  `torch.cuda._lazy_init()`, which creates a CUDA context (it cannot survive a fork) and poisons too.
- torchao 0.18 calls both at import (`float8/float8_utils.py` IS_ROCM, `prototype/mx_formats/kernels.py`
  `is_sm_at_least_100()`), and transformers imports torchao with its model classes (`quantizers/auto.py`).

`fork_safe()` wraps the server's imports: availability and device count from NVML, `get_device_capability` from
NVML (`nvmlDeviceGetCudaComputeCapability`: the same answer, no context), so a library's import-time checks get
the answers they would get in a spawned worker; every call that would still poison or initialise is recorded
with its caller. `touched()` then checks the server's own state (initialised, or a fork poisoned: a probe
child asks torch), so that the launcher can spawn runs instead of forking broken ones.
"""

from __future__ import annotations

import os
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

NVML_CHECK_ENV = "PYTORCH_NVML_BASED_CUDA_CHECK"
_BAD_FORK_EXIT = 3


def _caller() -> str:
    """Where the call came from: the first frame outside torch and this module, short."""
    for frame in reversed(traceback.extract_stack()[:-2]):
        path = frame.filename.replace(os.sep, "/")
        if frame.filename != __file__ and "/torch/" not in path:
            short = path.split("site-packages/", 1)[-1]
            return f"{short}:{frame.lineno} in {frame.name}"
    return "an unknown caller"


def _nvml_capability(device: Any, nvml: Any = None) -> tuple[int, int]:
    """The CUDA compute capability of a visible device (an ordinal or None: device 0, where CUDA starts), from NVML."""
    from harness.probes import nvml as nvml_probe

    index = 0 if device is None else int(getattr(device, "index", device) or 0)
    nvml = nvml or nvml_probe._import_pynvml()
    nvml.nvmlInit()
    try:
        visible = [v.strip() for v in (os.environ.get("CUDA_VISIBLE_DEVICES") or "").split(",") if v.strip()]
        if index < len(visible) and visible[index].startswith(("GPU-", "MIG-")):
            handle = nvml.nvmlDeviceGetHandleByUUID(visible[index])
        else:
            handle = nvml.nvmlDeviceGetHandleByIndex(nvml_probe.nvml_index(index))
        major, minor = nvml.nvmlDeviceGetCudaComputeCapability(handle)
        return int(major), int(minor)
    finally:
        nvml.nvmlShutdown()


@contextmanager
def fork_safe(nvml: Any = None) -> Iterator[list[str]]:
    """While inside, torch.cuda answers availability, device count and capability without poisoning a fork (NVML);
    yields the list of calls that poisoned or initialised CUDA anyway ("what, by whom"), filled as they happen."""
    import torch

    calls: list[str] = []
    saved_env = os.environ.get(NVML_CHECK_ENV)
    os.environ[NVML_CHECK_ENV] = "1"
    patched: list[tuple[Any, str, Any]] = []

    def patch(owner: Any, name: str, value: Any) -> None:
        patched.append((owner, name, getattr(owner, name)))
        setattr(owner, name, value)

    cuda = torch.cuda
    if cuda._is_compiled():  # a CPU build has none of this: nothing to poison
        count, lazy_init, capability = torch._C._cuda_getDeviceCount, cuda._lazy_init, cuda.get_device_capability

        def get_device_count() -> int:
            if not cuda.is_initialized():  # once initialised, torch's device_count() calls it as a matter of course
                calls.append(f"cudaGetDeviceCount by {_caller()}")
            return count()

        def watched_lazy_init() -> None:
            if not cuda.is_initialized():
                calls.append(f"CUDA initialised by {_caller()}")
            lazy_init()

        def nvml_capability(device: Any = None) -> tuple[int, int]:
            if cuda.is_initialized():
                return capability(device)
            try:
                return _nvml_capability(device, nvml)
            except Exception:  # NVML unavailable: torch's own answer (recorded: it initialises CUDA)
                return capability(device)

        patch(torch._C, "_cuda_getDeviceCount", get_device_count)
        patch(cuda, "_lazy_init", watched_lazy_init)
        patch(cuda, "get_device_capability", nvml_capability)
    try:
        yield calls
    finally:
        for owner, name, value in reversed(patched):
            setattr(owner, name, value)
        if saved_env is None:
            os.environ.pop(NVML_CHECK_ENV, None)
        else:
            os.environ[NVML_CHECK_ENV] = saved_env


def fork_poisoned() -> bool:
    """Whether a child forked now would be "in bad fork" (torch's fork handler, registered by cudaGetDeviceCount or
    CUDA's initialisation: torch keeps no flag of it in the parent). A probe child asks torch and exits at once."""
    import torch

    if not torch.cuda._is_compiled():
        return False
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the probe child
        os._exit(_BAD_FORK_EXIT if torch.cuda._is_in_bad_fork() else 0)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status) == _BAD_FORK_EXIT


def touched(calls: list[str]) -> str | None:
    """Why this process must not fork runs (CUDA initialised here, or forks poisoned), in one line; None if clean."""
    import torch

    initialised = torch.cuda.is_initialized()
    if not initialised and not fork_poisoned():
        return None
    what = "initialised CUDA" if initialised else "called cudaGetDeviceCount (forked runs cannot use CUDA)"
    first = f" (first: {calls[0]})" if calls else ""
    return f"the fork server {what} during its imports{first}"
