"""The fork server keeps CUDA out (harness.cuda_guard), against a fake CUDA build of torch (tests/fake_cuda_build.py):
availability, device count and capability answered without poisoning a fork; what poisons or initialises anyway is
named, and seen in the server's own state."""

from __future__ import annotations

import os

import pytest
import torch
from fake_cuda_build import CudaBuild

from harness import cuda_guard


@pytest.fixture
def cuda_build():
    build = CudaBuild(torch).install()
    yield build
    build.uninstall()


def _in_child(fn) -> str:
    """Run fn in a forked child; what it returned or raised, as text."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            text = repr(fn())
        except Exception as exc:
            text = f"{type(exc).__name__}: {exc}"
        os.write(write, text.encode())
        os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    with os.fdopen(read) as pipe:
        return pipe.read()


def test_the_fake_poisons_like_a_cuda_build(cuda_build):
    # torch's own is_available() on a CUDA build: cudaGetDeviceCount, which poisons later forks; a context call
    # in such a child raises what the H200 showed, while is_initialized() there says False
    assert torch.cuda.is_available() and cuda_build.poisoned and not torch.cuda.is_initialized()
    assert _in_child(torch.cuda.is_initialized) == "False"
    raised = _in_child(torch.cuda.current_device)
    assert raised.startswith("RuntimeError: Cannot re-initialize CUDA in forked subprocess"), raised
    assert [c["call"] for c in cuda_build.calls] == ["cudaGetDeviceCount"]


def test_the_nvml_based_check_does_not_poison_and_a_clean_server_forks_a_cpu_child(cuda_build, monkeypatch):
    monkeypatch.setenv(cuda_guard.NVML_CHECK_ENV, "1")
    assert torch.cuda.is_available() and torch.cuda.device_count() == 1
    assert not cuda_build.poisoned and cuda_build.calls == []
    assert _in_child(torch.cuda.is_available) == "False"  # the fake is gone in the child: its run is on the CPU


def test_import_time_checks_get_their_answer_without_touching_cuda(cuda_build):
    with cuda_guard.fork_safe() as calls:
        from torchao import utils as ao  # torchao 0.18's checks, which its import calls (float8_utils, mx_formats)

        answers = ao.is_ROCM(), ao.is_sm_at_least_90(), ao.is_sm_at_least_100(), torch.cuda.get_device_capability()
    assert answers == (False, True, False, (9, 0))  # the fake H200's capability, from NVML
    assert calls == [] and cuda_build.calls == [] and not cuda_build.poisoned
    assert cuda_guard.touched(calls) is None
    assert os.environ.get(cuda_guard.NVML_CHECK_ENV) is None  # the variable does not outlive the imports
    # unguarded, the same checks initialise CUDA (what harness.preload did before harness.cuda_guard)
    ao.is_sm_at_least_100()
    assert [c["call"] for c in cuda_build.calls][:2] == ["cudaGetDeviceCount", "cuda_init"]
    assert cuda_guard.touched([]) == "the fork server initialised CUDA during its imports"


def test_an_initialising_call_is_named_with_its_caller(cuda_build):
    with cuda_guard.fork_safe() as calls:
        torch.cuda.current_device()
    reason = cuda_guard.touched(calls)
    assert reason.startswith("the fork server initialised CUDA during its imports (first: CUDA initialised by ")
    assert "test_cuda_fork_safety.py" in reason and "test_an_initialising_call_is_named_with_its_caller" in reason


def test_a_device_count_call_poisons_without_initialising_and_a_probe_fork_sees_it(cuda_build):
    with cuda_guard.fork_safe() as calls:
        torch._C._cuda_getDeviceCount()  # as a library calling the runtime directly would
    assert not torch.cuda.is_initialized() and cuda_guard.fork_poisoned()
    assert cuda_guard.touched(calls).startswith("the fork server called cudaGetDeviceCount")


def test_without_nvml_the_capability_comes_from_torch_and_is_recorded(cuda_build):
    cuda_build.nvml = False  # no libnvidia-ml: torch's device_count falls back to cudaGetDeviceCount

    class NoNvml:
        def nvmlInit(self):
            raise OSError("libnvidia-ml.so.1: cannot open shared object file")

    with cuda_guard.fork_safe(nvml=NoNvml()) as calls:
        assert torch.cuda.get_device_capability() == (9, 0)
    assert calls and "CUDA initialised" in " ".join(calls)
    assert cuda_guard.touched(calls).startswith("the fork server initialised CUDA")


def test_a_cpu_build_has_nothing_to_guard():
    with cuda_guard.fork_safe() as calls:
        assert not torch.cuda.is_available()
    assert calls == [] and not cuda_guard.fork_poisoned() and cuda_guard.touched(calls) is None
