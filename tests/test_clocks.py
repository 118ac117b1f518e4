"""GPU clocks through NVML (harness.probes.clocks, NvmlGpu.clocks), against a fake pynvml with its function names,
clock types and return types: the window's start/end/min clocks, pstate and clock-event reasons, the warm-up that
waits for a steady SM clock (or a cap), and the `disturbed` verdict they feed (harness.interference)."""

from __future__ import annotations

import itertools

import pytest
import torch
from fake_gpu import FakeBoard, FakeNvml

from harness import data, models
from harness.backends.hf import HFEager
from harness.interference import Thresholds, section
from harness.probes import ProbeSet
from harness.probes import clocks as clocks_mod
from harness.probes.clocks import POWER_OR_HEAT, ClockWatch, reason_names, steady
from harness.probes.interference import Interference
from harness.probes.nvml import NvmlGpu
from harness.probes.timing import CpuTimer
from harness.scenarios import inference

H200 = dict(name="NVIDIA H200", uuid="GPU-aaaaaaaa-2222-3333-4444-555555555555", total_bytes=143771 * 2**20)


def _gpu(**board) -> NvmlGpu:
    return NvmlGpu(0, nvml=FakeNvml([FakeBoard(**{**H200, **board})]))


def test_clocks_read_sm_memory_pstate_and_event_reasons_as_ints():
    gpu = _gpu(sm_mhz=[345], mem_mhz=[3201], pstate=[8], event_reasons=[0x1])
    assert gpu.clocks() == {"sm_mhz": 345, "mem_mhz": 3201, "pstate": 8, "event_reasons": 0x1}
    assert gpu.max_clocks() == {"sm_mhz": 1980, "mem_mhz": 3201}


def test_an_older_driver_answers_the_throttle_call_and_an_unsupported_reading_is_none():
    old = _gpu(event_api=False, event_reasons=[0x4])
    assert old.clocks()["event_reasons"] == 0x4  # nvmlDeviceGetCurrentClocksThrottleReasons
    assert _gpu(event_reasons=None).clocks()["event_reasons"] is None  # never 0: unknown is not "no reason"
    assert NvmlGpu(0, nvml=_Broken()).clocks() == dict.fromkeys(("sm_mhz", "mem_mhz", "pstate", "event_reasons"))


class _Broken:
    def nvmlInit(self):
        raise OSError("libnvidia-ml.so.1: cannot open shared object file")


def test_reason_names_follow_nvml_bits():
    assert reason_names(0x1 | 0x4 | 0x40) == ["gpu_idle", "sw_power_cap", "hw_thermal_slowdown"]
    assert reason_names(0) == [] and reason_names(None) is None
    assert reason_names(0x800) == ["0x800"]  # a bit newer than this table, kept
    import pynvml

    assert POWER_OR_HEAT == (
        pynvml.nvmlClocksEventReasonSwPowerCap
        | pynvml.nvmlClocksEventReasonHwSlowdown
        | pynvml.nvmlClocksEventReasonSwThermalSlowdown
        | pynvml.nvmlClocksEventReasonHwThermalSlowdown
        | pynvml.nvmlClocksEventReasonHwPowerBrakeSlowdown
    )
    for bit, name in clocks_mod.EVENT_REASONS.items():
        camel = "".join(w.capitalize() for w in name.split("_"))  # gpu_idle -> GpuIdle, as pynvml names them
        assert getattr(pynvml, f"nvmlClocksEventReason{camel}") == bit, name


def test_steady_means_the_last_readings_agree():
    assert not steady([345, 900, 1980])
    assert steady([345, 1960, 1980, 1975])
    assert not steady([1980, 1980])  # too few


class _Clock:
    def __init__(self, step_s: float):
        self.t, self.step_s = 0.0, step_s

    def __call__(self) -> float:
        self.t += self.step_s
        return self.t


def test_the_warm_up_waits_for_a_steady_sm_clock_and_records_it():
    watch = ClockWatch(_gpu(sm_mhz=[345, 345, 900, 1700, 1980, 1980, 1980, 1980]), clock=_Clock(0.1))
    checks = list(itertools.takewhile(lambda done: not done, (watch.settled() for _ in range(20))))
    assert len(checks) == 6  # 345 345 900 1700 1980 1980 -> steady at the 7th reading
    record = watch.end()["warmup"]
    assert record["until"] == "steady" and record["checks"] == 7 and record["sm_mhz"] == 1980


def test_the_warm_up_stops_at_its_cap_and_says_so():
    rising = list(range(300, 300 + 100 * 200, 100))  # never steady
    watch = ClockWatch(_gpu(sm_mhz=rising), clock=_Clock(1.0))
    n = 0
    while not watch.settled():
        n += 1
    record = watch.end()["warmup"]
    assert record["until"] == "cap" and record["s"] >= clocks_mod.WARMUP_MAX_S and n == clocks_mod.WARMUP_MAX_S


def test_the_window_records_start_end_min_pstate_and_every_reason_seen():
    gpu = _gpu(sm_mhz=[1980, 1410, 1980], mem_mhz=[3201], pstate=[0, 2, 0], event_reasons=[0x0, 0x4, 0x0])
    watch = ClockWatch(gpu, interval_s=3600)  # no sampling thread reading: begin, end and nothing between
    watch.begin()
    watch._samples.append(gpu.clocks())  # a reading between, as the sampler takes them
    w = watch.end()
    assert w["sm_mhz"] == {"start": 1980, "end": 1980, "min": 1410}
    assert w["sm_max_mhz"] == 1980 and w["mem_mhz"]["min"] == 3201
    assert w["pstate_start"] == 0 and w["pstate_max"] == 2
    assert w["event_reasons"] == ["sw_power_cap"] and w["event_reasons_mask"] == 0x4
    assert w["warmup"]["until"] == "not waited"


def _gpu_part(clocks: dict) -> dict:
    return {"rank": 0, "gpu": {"device": "0 NVIDIA H200", "other_processes": 0, "processes": [], "clocks": clocks}}


def _clocks(low: int, mask: int) -> dict:
    return {"sm_mhz": {"start": 1980, "end": 1980, "min": low}, "sm_max_mhz": 1980, "event_reasons_mask": mask}


@pytest.mark.parametrize(
    "low, mask, disturbed, says",
    [
        (1980, 0x0, False, None),
        (1980, 0x1 | 0x10, False, None),  # idle at the start, sync boost: not power or heat
        (1700, 0x0, True, "SM clock fell to 1700 MHz in the window, below 0.9 of its maximum 1980 MHz"),
        (1980, 0x4, True, "held back for power or heat in the window (NVML clock-event reasons: sw_power_cap)"),
        (1980, 0x20, True, "sw_thermal_slowdown"),
    ],
)
def test_low_or_held_back_clocks_make_the_window_disturbed(low, mask, disturbed, says):
    sec = section([_gpu_part(_clocks(low, mask))], Thresholds())
    assert sec["disturbed"] is disturbed
    if says:
        assert says in sec["reason"] and "GPU 0 NVIDIA H200" in sec["reason"]
    assert sec["thresholds"]["min_sm_clock_fraction"] == 0.9


def test_the_fraction_is_a_setting():
    assert section([_gpu_part(_clocks(1700, 0))], Thresholds(min_sm_clock_fraction=0.8))["disturbed"] is False


def test_the_interference_probe_records_clocks_for_a_gpu_run_and_the_inference_warm_up_waits_for_them():
    gpu = _gpu(sm_mhz=[345, 345, 900, 1700, 1980], event_reasons=[0x1, 0x0])
    probe = Interference(measure_cpu=False, gpu=gpu, gpu_label="0 NVIDIA H200")
    probes = ProbeSet([probe])
    calls = {"n": 0}
    shape = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2)
    shape["num_key_value_heads"] = 2
    model = models.build(models.preset("tiny", **shape), torch.float32, "cpu", seed=0)
    forward = HFEager.around(model).forward

    def counted(*args):
        calls["n"] += 1
        return forward(*args)

    clocks_mod.STEADY_SPACING_S, saved = 0.0, clocks_mod.STEADY_SPACING_S
    try:
        inference.run(counted, data.prompt_ids(1, 8, 0), 0, inference.Policy(1, 1, 0.0, 1, 1), CpuTimer(), probes)
    finally:
        clocks_mod.STEADY_SPACING_S = saved
    w = probes.sections()["interference"]["gpu"]["clocks"]
    # 1 warm-up iteration, then 4 more until 1980 x3 (345 345 900 1700 | 1980 1980 1980), then 1 timed
    assert w["warmup"]["until"] == "steady" and w["warmup"]["checks"] == 7
    assert calls["n"] == 1 + 6 + 1
    assert w["sm_mhz"]["start"] == 1980 and w["event_reasons"] == []


def test_without_a_gpu_the_warm_up_does_not_wait():
    assert ProbeSet([Interference(measure_cpu=False)]).settled() is True
