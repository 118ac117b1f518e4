"""Device selection and precision support, with a fake torch.cuda where a GPU is needed."""

import pytest
import torch
from fake_gpu import FakeTorchCuda

from harness import hardware, precision
from harness.errors import UnsupportedError


def FakeCuda(available=True, capability=(9, 0)):  # noqa: N802 - reads like the class it builds
    return FakeTorchCuda(capability=capability, available=available, count=8)


def test_auto_picks_the_gpu_when_there_is_one():
    d = hardware.select("auto", FakeCuda())
    assert (d.type, d.name, d.count, d.capability, d.torch_device) == (
        "cuda",
        "NVIDIA H100 80GB HBM3",
        8,
        "9.0",
        "cuda:0",
    )
    # identity in NVML's spelling, so that the NVML handle is the same physical device
    assert d.uuid == "GPU-11111111-2222-3333-4444-555555555555" and d.pci_bus_id == "00000000:3B:00.0"
    assert d.memory_total_bytes == 79 * 2**30 + 2**29 and not d.mig


def test_a_mig_slice_and_a_torch_without_pci_fields():
    cuda = FakeTorchCuda(name="NVIDIA A100-SXM4-40GB MIG 1g.10gb", capability=(8, 0), uuid_hex="abcd", pci=None)
    d = hardware.select("cuda", cuda)
    assert d.mig and d.uuid == "MIG-abcd" and d.pci_bus_id is None


def test_auto_and_cpu_fall_back_to_the_cpu():
    assert hardware.select("auto", None).type == "cpu"
    assert hardware.select("cpu", FakeCuda()).type == "cpu"
    assert hardware.select("auto", FakeCuda(available=False)).torch_device == "cpu"


def test_cuda_without_a_gpu_is_unsupported():
    with pytest.raises(UnsupportedError, match="no CUDA device"):
        hardware.select("cuda", FakeCuda(available=False))


@pytest.mark.parametrize("capability", [(7, 0), (7, 5)])  # V100, T4
def test_bf16_on_a_pre_ampere_gpu_is_unsupported(capability):
    cuda = FakeCuda(capability=capability)
    assert cuda.is_bf16_supported()  # torch's default answer there: emulated bf16 counts as supported
    with pytest.raises(UnsupportedError, match=r"compute capability >= 8.0 .*this one is 7\."):
        precision.check_supported("bf16", "cuda", cuda)


def test_bf16_on_ampere_and_newer_and_on_cpu_is_supported():
    for capability in [(8, 0), (8, 6), (9, 0), (10, 0)]:
        precision.check_supported("bf16", "cuda", FakeCuda(capability=capability))
    precision.check_supported("bf16", "cpu")


def test_tf32_state_and_the_fp32_peak_it_selects(monkeypatch):
    assert precision.tf32_state() == {"tf32_matmul": False, "float32_matmul_precision": "highest"}
    monkeypatch.setattr(torch, "get_float32_matmul_precision", lambda: "high")
    assert precision.tf32_state()["tf32_matmul"] is True
    assert precision.peak_dtype("fp32", "cuda", True) == "tf32"
    assert precision.peak_dtype("fp32", "cuda", False) == "fp32"
    assert precision.peak_dtype("fp32", "cpu", True) == "fp32" and precision.peak_dtype("bf16", "cuda", True) == "bf16"


@pytest.mark.parametrize(
    "m, k, n, why",
    [
        (17, 128, 512, None),  # the smallest M cuBLAS int8 takes
        (16, 128, 512, "M=16 rows"),  # decode at batch 16
        (1, 128, 512, "M=1 rows"),  # decode at batch 1
        (2048, 128, 250, "not a multiple of 8"),  # e.g. an lm_head over a vocabulary of 250
        (4, 100, 512, "not a multiple of 8"),  # the CPU detour wins over the M rule
    ],
)
def test_int8_cuda_path_rules_follow_torchao(m, k, n, why):
    reason = precision.int8_cuda_reason(m, k, n)
    assert (reason is None) if why is None else (why in reason)


def _tiny_int8():
    from omegaconf import OmegaConf

    from harness import models
    from harness.config import CONF_DIR

    tiny = OmegaConf.to_container(OmegaConf.load(CONF_DIR / "model" / "tiny.yaml"))
    model = models.build(tiny, torch.float32, "cpu", 0)
    record = precision.apply(model, "int8")
    return model, record


def test_int8_kernel_path_is_observed_on_cpu():
    model, _ = _tiny_int8()
    seen = precision.observe_int8(model, batch=2, seq_len=8, device="cpu", device_type="cpu")
    linears = 4 * 7 + 1  # 4 layers x (q, k, v, o, gate, up, down) + lm_head
    assert seen["prefill"] == {
        "path": precision.INT8_PATH,
        "m_rows": [16],
        "int8_linears": linears,
        "int8_matmuls": linears,
        "reasons": [],
    }
    assert seen["decode"]["m_rows"] == [2] and seen["decode"]["path"] == precision.INT8_PATH
    assert torch._int_mm.__name__ == "_int_mm"  # the counting wrapper is gone


def test_int8_fallback_is_seen_and_its_reason_given(monkeypatch):
    """CUDA's torch._int_mm refuses M <= 16; torchao then multiplies in fp32 (safe_int_mm). Here a fake
    _int_mm with that rule, and torchao's own safe_int_mm logic for the caught error."""
    model, _ = _tiny_int8()
    real = torch._int_mm

    def cuda_like_int_mm(a, b):
        if a.shape[0] <= 16:
            raise RuntimeError(f"self.size(0) needs to be greater than 16, but got {a.shape[0]}")
        return real(a, b)

    import torchao.kernel.intmm as intmm

    def cpu_scaled(a, b, scales1):  # torchao's CUDA path: safe_int_mm's try / fp32 fallback
        try:
            c = torch._int_mm(a, b)
        except Exception:
            c = torch.matmul(a.to(torch.float32), b.to(torch.float32)).to(torch.int32)
        return c.to(scales1.dtype) * scales1

    monkeypatch.setattr(torch, "_int_mm", cuda_like_int_mm)
    monkeypatch.setattr(intmm, "_int_scaled_matmul_cpu", cpu_scaled)
    seen = precision.observe_int8(model, batch=4, seq_len=8, device="cpu", device_type="cuda")
    assert seen["prefill"]["path"] == precision.INT8_PATH and seen["prefill"]["m_rows"] == [32]
    decode = seen["decode"]
    assert decode["path"] == precision.FLOAT_FALLBACK and decode["int8_matmuls"] == 0
    assert decode["reasons"] == [precision.int8_cuda_reason(4, 128, 128)]  # every Linear here is a multiple of 8
    record = {"name": "int8", "kernels": seen}
    peaks = {"fp32": 67e12, "tf32": 494.7e12, "int8": 1979e12}.get
    # the decode MFU is divided by the fp32 peak (tf32 when enabled), never by the int8 peak
    assert precision.phase_peak(record, "decode", 1979e12, peaks) == (67e12, "fp32")
    assert precision.phase_peak(record, "decode", 1979e12, peaks, tf32_matmul=True) == (494.7e12, "tf32")
    assert precision.phase_peak(record, "prefill", 1979e12, peaks) == (1979e12, None)
    mixed = {"name": "int8", "kernels": {"decode": {**decode, "path": precision.MIXED}}}
    assert precision.phase_peak(mixed, "decode", 1979e12, peaks) == (None, None)
    via_cpu = {"name": "int8", "kernels": {"decode": {**decode, "reasons": [precision.int8_cuda_reason(32, 8, 250)]}}}
    assert precision.phase_peak(via_cpu, "decode", 1979e12, peaks) == (None, None)
    assert precision.phase_peak({"name": "bf16"}, "decode", 989e12, peaks) == (989e12, None)


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


def test_each_phase_is_divided_by_the_peak_of_what_ran_in_it():
    from types import SimpleNamespace

    from harness import worker
    from harness.scenarios.base import Phase

    phases = [Phase("prefill", 1000.0, 2e9, 1), Phase("decode", 100.0, 2e9, 1)]
    reason = precision.int8_cuda_reason(1, 768, 768)
    kernels = {"path": precision.FLOAT_FALLBACK, "reasons": [reason]}
    prec = {"name": "int8", "kernels": {"prefill": {**kernels, "path": precision.INT8_PATH}, "decode": kernels}}
    facts = SimpleNamespace(peak_flop_per_s={"fp32": 67e12, "int8": 1979e12}.get)
    out = worker._mfu(phases, {"peak_flop_per_s": 1979e12}, prec, SimpleNamespace(type="cuda"), facts)
    assert out == {
        "achieved_flop_per_s_prefill": 2e12,  # int8 kernels ran: the int8 peak
        "mfu_prefill": pytest.approx(2e12 / 1979e12),
        "achieved_flop_per_s_decode": 2e11,
        "mfu_decode": pytest.approx(2e11 / 67e12),
        "mfu_peak_dtype_decode": "fp32",
    }
