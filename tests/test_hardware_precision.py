"""Device selection and precision support, with a fake torch.cuda where a GPU is needed."""

import pytest
import torch

from harness import hardware, precision
from harness.errors import UnsupportedError


class FakeCuda:
    def __init__(self, available=True, capability=(9, 0), bf16=True):
        self._available, self._capability, self._bf16 = available, capability, bf16

    def is_available(self):
        return self._available

    def current_device(self):
        return 0

    def get_device_capability(self, index):
        return self._capability

    def get_device_name(self, index):
        return "NVIDIA H100 80GB HBM3"

    def device_count(self):
        return 8

    def is_bf16_supported(self):
        return self._bf16


def test_auto_picks_the_gpu_when_there_is_one():
    d = hardware.select("auto", FakeCuda())
    assert (d.type, d.name, d.count, d.capability, d.torch_device) == (
        "cuda",
        "NVIDIA H100 80GB HBM3",
        8,
        "9.0",
        "cuda:0",
    )


def test_auto_and_cpu_fall_back_to_the_cpu():
    assert hardware.select("auto", None).type == "cpu"
    assert hardware.select("cpu", FakeCuda()).type == "cpu"
    assert hardware.select("auto", FakeCuda(available=False)).torch_device == "cpu"


def test_cuda_without_a_gpu_is_unsupported():
    with pytest.raises(UnsupportedError, match="no CUDA device"):
        hardware.select("cuda", FakeCuda(available=False))


def test_bf16_on_a_pre_ampere_gpu_is_unsupported():
    with pytest.raises(UnsupportedError, match="compute capability >= 8.0"):
        precision.check_supported("bf16", "cuda", FakeCuda(capability=(7, 0), bf16=False))
    precision.check_supported("bf16", "cuda", FakeCuda())
    precision.check_supported("bf16", "cpu")


def test_int8_without_torchao_is_unsupported(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_torchao(name, *args, **kwargs):
        if name.startswith("torchao"):
            raise ImportError("No module named 'torchao'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_torchao)
    with pytest.raises(UnsupportedError, match="int8 needs torchao"):
        precision.check_supported("int8", "cpu")


def test_build_dtypes():
    assert precision.build_dtype("fp16", "cpu") is torch.float16
    assert precision.build_dtype("int8", "cpu") is torch.float32
    assert precision.build_dtype("int8", "cuda") is torch.bfloat16
