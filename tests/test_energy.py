"""Energy: NVML counter and sampled power with a fake NVML, RAPL with a fake sysfs, codecarbon for real."""

import time
from types import SimpleNamespace

import pytest

from harness import energy
from harness.probes import ProbeSet
from harness.probes import energy as trackers
from harness.probes.memory import CpuMemory

ENERGY_CFG = {"pue": 1.5, "pue_source": "t", "carbon_intensity_g_per_kwh": 400.0, "carbon_intensity_source": "t"}


class FakeGpu:
    """NvmlGpu's surface: energy_mj, power_mw, memory_used."""

    def __init__(self, counter=None, power=None, others=0):
        self.counter, self.power, self.others = list(counter or []), power, others

    def energy_mj(self):
        return self.counter.pop(0) if self.counter else None

    def power_mw(self):
        return self.power

    def memory_used(self):
        return {"nvml_other_processes": self.others}


def _run(tracker, seconds):
    tracker.begin()
    time.sleep(seconds)
    return list(tracker.end().components)


def test_nvml_counter_delta_in_joules():
    (c,) = _run(trackers.NvmlEnergy(FakeGpu(counter=[1_000_000, 1_250_000]), "gpu:0"), 0.01)
    assert c["method"] == "nvml-counter" and c["covers"] == "gpu-board"
    assert c["energy_j"] == pytest.approx(250.0)  # 250,000 mJ
    assert any(f.startswith("short-window") for f in c["flags"])


def test_nvml_counter_zero_and_backwards_are_flagged_not_zero():
    (zero,) = _run(trackers.NvmlEnergy(FakeGpu(counter=[500, 500]), "gpu:0"), 0)
    assert zero["energy_j"] is None and any(f.startswith("zero-reading") for f in zero["flags"])
    (back,) = _run(trackers.NvmlEnergy(FakeGpu(counter=[500, 400]), "gpu:0"), 0)
    assert back["energy_j"] is None and any(f.startswith("counter-invalid") for f in back["flags"])


def test_shared_gpu_is_flagged():
    (c,) = _run(trackers.NvmlEnergy(FakeGpu(counter=[0, 1000], others=2), "gpu:0"), 0)
    assert any(f.startswith("shared-gpu: 2") for f in c["flags"])


def test_sampled_power_integrates_when_the_counter_is_missing():
    tracker = trackers.NvmlEnergy(FakeGpu(counter=None, power=200_000), "gpu:0", sample_interval_s=0.01)
    (c,) = _run(tracker, 0.3)
    assert c["method"] == "sampled-power" and c["samples"] >= 2
    assert c["energy_j"] == pytest.approx(200.0 * c["window_s"], rel=1e-6)  # 200 W held over the window
    assert tracker._thread is None  # the sampler stopped


def test_sampler_stops_on_close_without_end():
    tracker = trackers.NvmlEnergy(FakeGpu(counter=None, power=1000), "gpu:0", sample_interval_s=0.01)
    tracker.begin()
    thread = tracker._thread
    tracker.close()
    tracker.close()  # twice is fine
    assert not thread.is_alive()


def _zone(root, name, label, uj, wrap):
    d = root / name
    d.mkdir()
    (d / "name").write_text(label + "\n")
    (d / "energy_uj").write_text(f"{uj}\n")
    (d / "max_energy_range_uj").write_text(f"{wrap}\n")
    return d


def test_rapl_deltas_with_wraparound(tmp_path):
    pkg = _zone(tmp_path, "intel-rapl:0", "package-0", 900, 1000)
    dram = _zone(tmp_path, "intel-rapl:0:0", "dram", 100, 10_000)
    _zone(tmp_path, "intel-rapl:0:1", "core", 5, 10)  # inside the package: not counted twice
    zones = trackers.rapl_zones(tmp_path)
    assert [z[0] for z in zones] == ["package-0", "dram"]
    tracker = trackers.RaplEnergy(zones)
    tracker.begin()
    (pkg / "energy_uj").write_text("300\n")  # wrapped: 900 -> 1000 -> 300 = 400 uJ
    (dram / "energy_uj").write_text("2100\n")
    comps = list(tracker.end().components)
    assert [(c["covers"], c["method"]) for c in comps] == [("cpu-package", "rapl"), ("dram", "rapl")]
    assert comps[0]["energy_j"] == pytest.approx(400e-6) and comps[1]["energy_j"] == pytest.approx(2000e-6)


def test_codecarbon_estimate_for_real_on_this_cpu():
    # tracking_mode=process: CPU power is this process's CPU load x TDP, so the window must hold work; asleep it
    # is ~0 J (asleep, it passed while codecarbon's first-use setup still ran in the tracker's window, it seems)
    tracker = trackers.CodecarbonEnergy(measure_power_secs=1)
    tracker.begin()
    end = time.perf_counter() + 1.0
    while time.perf_counter() < end:
        sum(range(10_000))
    comps = list(tracker.end().components)
    assert {c["covers"] for c in comps} == {"cpu-package", "ram"}
    for c in comps:
        assert c["method"] == "estimated" and "codecarbon" in c["estimator"]
        assert c["energy_j"] > 0 and c["window_s"] >= 1.0


def test_codecarbon_returning_none_is_recorded_not_zero(monkeypatch):
    tracker = trackers.CodecarbonEnergy()
    tracker._tracker = SimpleNamespace(stop=lambda: None, final_emissions_data=None)
    tracker._t0 = time.perf_counter()
    (c,) = tracker.end().components
    assert c["energy_j"] is None and "no data" in c["flags"][0]


def test_accounting_keeps_measured_and_estimated_apart():
    comps = [
        {"name": "gpu", "method": "nvml-counter", "energy_j": 360.0},
        {"name": "cpu", "method": "estimated", "energy_j": 36.0},
        {"name": "dram", "method": "rapl", "energy_j": None},
    ]
    e = energy.account(comps, window_s=10.0, units={"token": 1000, "sample": 10}, energy_cfg=ENERGY_CFG)
    assert e["total_j"] == 396.0 and e["measured_j"] == 360.0 and e["estimated_j"] == 36.0
    assert e["total_method"] == "measured+estimated" and e["incomplete"] == ["dram"]
    assert e["avg_power_w"] == pytest.approx(39.6) and e["kwh"] == pytest.approx(396 / 3.6e6)
    assert e["j_per_token"] == pytest.approx(0.396) and e["j_per_sample"] == pytest.approx(39.6)
    assert e["co2e_g"] == pytest.approx(396 / 3.6e6 * 1.5 * 400)
    assert e["pue"] == 1.5 and e["carbon_intensity_g_per_kwh"] == 400.0


def test_accounting_with_nothing_measured_is_null():
    e = energy.account([{"name": "cpu", "method": "estimated", "energy_j": None}], 1.0, {"token": 5}, ENERGY_CFG)
    assert e["total_j"] is None and e["j_per_token"] is None and e["co2e_g"] is None and e["total_method"] is None


def test_counters_read_mid_window_give_per_repeat_joules(tmp_path):
    gpu = trackers.NvmlEnergy(FakeGpu(counter=[1_000, 3_000, 3_000, 7_000]), "gpu:0")
    gpu.begin()
    assert gpu.read_j() == pytest.approx(2.0)  # 2,000 mJ since begin()
    assert gpu.read_j() == pytest.approx(2.0)
    assert gpu.read_j() == pytest.approx(6.0)
    pkg = _zone(tmp_path, "intel-rapl:0", "package-0", 900, 1000)
    rapl = trackers.RaplEnergy(trackers.rapl_zones(tmp_path))
    rapl.begin()
    (pkg / "energy_uj").write_text("100\n")  # wrapped: 200 uJ
    assert rapl.read_j() == pytest.approx(200e-6)
    read = ProbeSet([CpuMemory(), gpu, rapl]).energy_now()  # probes that measure no energy are left out
    gpu._gpu.counter = [11_000]
    assert read() == pytest.approx(10.0 + 200e-6)
    assert trackers.between(1.0, 3.5) == 2.5
    assert trackers.between(1.0, 1.0) is None and trackers.between(None, 2.0) is None  # no advance: unknown


def test_no_per_repeat_energy_from_estimates_or_sampled_power():
    assert ProbeSet([trackers.CodecarbonEnergy()]).energy_now() is None
    assert ProbeSet([]).energy_now() is None
    sampled = trackers.NvmlEnergy(FakeGpu(counter=None, power=1000), "gpu:0", sample_interval_s=0.01)
    sampled.begin()
    try:
        assert ProbeSet([sampled]).energy_now()() is None  # no counter on this board
    finally:
        sampled.close()


class _FakeCodecarbon:
    """OfflineEmissionsTracker's surface: stop() and final_emissions_data, figures in kWh as codecarbon gives."""

    def __init__(self, cpu_kwh, ram_kwh, duration_s):
        self.final_emissions_data = SimpleNamespace(
            cpu_energy=cpu_kwh, ram_energy=ram_kwh, duration=duration_s, codecarbon_version="x", cpu_model="cpu"
        )

    def stop(self):
        return 1e-6


def test_codecarbon_kwh_become_joules_over_codecarbons_own_window():
    tracker = trackers.CodecarbonEnergy(name_prefix="rank1:")
    tracker._tracker = _FakeCodecarbon(cpu_kwh=0.002, ram_kwh=0.0005, duration_s=4.0)
    tracker._t0 = time.perf_counter()
    cpu, ram = tracker.end().components
    assert (cpu["name"], ram["name"]) == ("rank1:cpu", "rank1:ram")
    assert cpu["energy_j"] == pytest.approx(7200.0)  # 0.002 kWh x 3.6e6 J/kWh
    assert ram["energy_j"] == pytest.approx(1800.0)
    assert cpu["window_s"] == 4.0 and cpu["avg_power_w"] == pytest.approx(1800.0)
    assert cpu["method"] == ram["method"] == "estimated"
    e = energy.account([cpu, ram], 4.0, {"token": 900}, ENERGY_CFG)
    assert e["total_j"] == pytest.approx(9000.0) and e["kwh"] == pytest.approx(0.0025)
    assert e["j_per_token"] == pytest.approx(10.0) and e["co2e_g"] == pytest.approx(0.0025 * 1.5 * 400)


def test_sampled_power_is_integrated_as_trapezoids_held_flat_to_the_edges(monkeypatch):
    """Readings 100 W at t=1, 300 W at t=2, 100 W at t=4 in a window 0.5..5 s: trapezoids 200 + 400 J, edges
    100 W x 0.5 s + 100 W x 1 s: 750 J (left rectangles would give 850, right ones 650)."""
    tracker = trackers.NvmlEnergy(FakeGpu(counter=None), "gpu:0")
    tracker._t0, tracker._e0 = 0.5, None
    tracker._samples = [(1.0, 100.0), (2.0, 300.0), (4.0, 100.0)]
    monkeypatch.setattr(trackers.time, "perf_counter", lambda: 5.0)
    (c,) = tracker.end().components
    assert c["method"] == "sampled-power" and c["samples"] == 3 and c["window_s"] == 4.5
    assert c["energy_j"] == pytest.approx(750.0)
    assert c["avg_power_w"] == pytest.approx(750.0 / 4.5)
    assert not any(f.startswith("short-window") for f in c["flags"])


def test_sampled_power_with_one_reading_or_all_zero_is_null(monkeypatch):
    monkeypatch.setattr(trackers.time, "perf_counter", lambda: 3.0)
    for samples, flag in (([(1.0, 50.0)], "too-few-samples"), ([(1.0, 0.0), (2.0, 0.0)], "zero-reading")):
        tracker = trackers.NvmlEnergy(FakeGpu(counter=None), "gpu:0")
        tracker._t0, tracker._e0, tracker._samples = 0.0, None, samples
        (c,) = tracker.end().components
        assert c["energy_j"] is None and c["avg_power_w"] is None and any(f.startswith(flag) for f in c["flags"])


def test_nvml_counter_millijoules_and_the_short_window_edge(monkeypatch):
    clock = iter([10.0, 11.0])  # begin at 10 s, end at 11 s: exactly SHORT_WINDOW_S, not flagged
    monkeypatch.setattr(trackers.time, "perf_counter", lambda: next(clock))
    tracker = trackers.NvmlEnergy(FakeGpu(counter=[2_000, 5_500]), "gpu:0")
    tracker.begin()
    (c,) = tracker.end().components
    assert c["energy_j"] == pytest.approx(3.5) and c["avg_power_w"] == pytest.approx(3.5) and c["window_s"] == 1.0
    assert c["flags"] == []


def test_rapl_microjoules_per_zone(tmp_path, monkeypatch):
    pkg = _zone(tmp_path, "intel-rapl:0", "package-0", 1_000_000, 10**12)
    dram = _zone(tmp_path, "intel-rapl:0:0", "dram", 0, 10**12)
    _zone(tmp_path, "intel-rapl:1", "psys", 0, 10**12)  # neither a package nor DRAM: left out
    clock = iter([0.0, 2.0])
    monkeypatch.setattr(trackers.time, "perf_counter", lambda: next(clock))
    rapl = trackers.RaplEnergy(trackers.rapl_zones(tmp_path))
    rapl.begin()
    (pkg / "energy_uj").write_text("31000000\n")  # +30 J
    (dram / "energy_uj").write_text("4000000\n")  # +4 J
    p, d = rapl.end().components
    assert (p["covers"], p["energy_j"], p["avg_power_w"]) == ("cpu-package", pytest.approx(30.0), pytest.approx(15.0))
    assert (d["covers"], d["energy_j"]) == ("dram", pytest.approx(4.0))
    assert p["name"] == "rapl:intel-rapl:0:package-0" and p["method"] == "rapl"


def test_accounting_methods_units_and_zero_counts():
    measured = energy.account(
        [{"name": "g", "method": "sampled-power", "energy_j": 72.0}, {"name": "r", "method": "rapl", "energy_j": 8.0}],
        window_s=4.0,
        units={"token": 20, "sample": 0},
        energy_cfg=ENERGY_CFG,
    )
    assert measured["total_method"] == "measured" and measured["total_j"] == 80.0
    assert measured["measured_j"] == 80.0 and measured["estimated_j"] is None and measured["incomplete"] is None
    assert measured["avg_power_w"] == 20.0 and measured["j_per_token"] == 4.0 and measured["j_per_sample"] is None
    assert measured["scope"] == "timed_window" and measured["window_s"] == 4.0
    estimated = energy.account([{"name": "c", "method": "estimated", "energy_j": 36.0}], 0.0, {}, ENERGY_CFG)
    assert estimated["total_method"] == "estimated" and estimated["measured_j"] is None
    assert estimated["estimated_j"] == 36.0 and estimated["avg_power_w"] is None  # no window: no power
    assert estimated["kwh"] == pytest.approx(1e-5) and estimated["co2e_g"] == pytest.approx(1e-5 * 1.5 * 400)
    assert estimated["pue_source"] == "t" and estimated["carbon_intensity_source"] == "t"


def test_accounting_keeps_its_components_and_powers_a_sub_second_window():
    comps = [{"name": "g", "method": "nvml-counter", "energy_j": 3.0}]
    e = energy.account(comps, window_s=0.5, units={}, energy_cfg=ENERGY_CFG)
    assert e["avg_power_w"] == 6.0  # 3 J over half a second
    assert e["components"] == comps and e["components"][0] is not comps[0]  # a copy, not the caller's dict
