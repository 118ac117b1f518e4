"""The hardware catalog: every device name it lists matches its own entry and nothing else."""

import os

import pytest

from harness import catalog

_REAL = catalog.nearest_cpu_entry

# What torch.cuda.get_device_name / NVML report for each family (from the team's hardware reference).
REPORTED = {
    "NVIDIA H200": "h200",
    "NVIDIA H100 80GB HBM3": "h100_sxm",
    "NVIDIA H100 PCIe": "h100_pcie",
    "NVIDIA A100-SXM4-80GB": "a100_80gb",
    "NVIDIA A100-SXM4-40GB": "a100_40gb",
    "NVIDIA L40S": "l40s",
    "NVIDIA L4": "l4",
    "NVIDIA A10G": "a10g",
    "Tesla T4": "t4",
    "Tesla V100-SXM2-16GB": "v100",
    "NVIDIA B200": "b200",
}


@pytest.mark.parametrize("reported, entry", REPORTED.items())
def test_every_catalog_gpu_matches_exactly_its_entry(reported, entry):
    assert catalog.match(reported) == [entry]


def test_every_gpu_entry_has_sourced_peaks_and_price():
    entries = catalog.entries()
    assert set(REPORTED.values()) | {"cpu_c7i", "cpu_m7i", "cpu_c7a"} == set(entries)
    for name, e in entries.items():
        assert e["usd_per_hour"] > 0 and e["price_source"] and e["price_as_of"] and e["price_instance"], name
        if e["device"] == "cuda":
            assert e["peak_tflops"]["fp16"] > e["peak_tflops"]["fp32"] > 0 and e["peak_source"], name
            assert e["board_power_w"] > 0 and e["memory_bandwidth_gb_per_s"] > 0, name


# Real device names that contain a catalog name (or share its family) but are other hardware, with other
# peaks, memory or price: each must stay unknown (no entry; hardware.md has no sourced figures for them).
NEAR_MISSES = [
    "NVIDIA GH200 480GB",  # Grace Hopper superchip, not the H200 SXM
    "NVIDIA H200 NVL",  # dense bf16 about 836 TFLOP/s, not the SXM's 989
    "Tesla V100-SXM2-32GB",  # not the 16 GB entry
    "NVIDIA H100 NVL",
    "NVIDIA A100 80GB PCIe",
    "NVIDIA A100-PCIE-40GB",
    "NVIDIA A100-SXM4-40GB MIG 1g.10gb",  # MIG slices of catalog GPUs
    "NVIDIA A100-SXM4-80GB MIG 3g.40gb",
    "NVIDIA H100 80GB HBM3 MIG 1g.10gb",
    "NVIDIA H200 MIG 7g.141gb",
    "NVIDIA L40",  # L40, not L40S
    "NVIDIA L4 ",  # only surrounding blanks are forgiven: this one is L4 (see below)
    "NVIDIA GeForce RTX 4090",
    "AMD EPYC",
]


@pytest.mark.parametrize("name", [n for n in NEAR_MISSES if n.strip() != "NVIDIA L4"])
def test_near_miss_names_match_nothing(name):
    assert catalog.match(name) == []


def test_names_are_matched_whole_and_case_insensitively():
    assert catalog.match("NVIDIA L4 ") == ["l4"] and catalog.match("nvidia h200") == ["h200"]
    assert catalog.match("NVIDIA H200 NVL") == [] and catalog.match("X NVIDIA H200") == []


@pytest.mark.parametrize("name", [n for n in NEAR_MISSES if "MIG" in n])
def test_a_mig_slice_is_unknown_with_a_warning(name):
    auto = {"name": "auto", "device": "auto", "price_unit": "device"}
    facts = catalog.resolve(auto, "cuda", name)
    assert catalog.is_mig(name) and facts.entry is None and facts.how == "unknown"
    assert facts.price() is None and facts.peak_flop_per_s("bf16") is None
    assert any("MIG slice" in w and "shared with the other slices" in w for w in facts.warnings)
    # the user's own slice figures are used, and said to be the user's
    priced = catalog.resolve({**auto, "usd_per_hour": 0.5, "peak_tflops": {"bf16": 44.0}}, "cuda", name)
    assert priced.price()["how"] == "user (hardware.usd_per_hour)" and priced.peak_flop_per_s("bf16") == 44e12


def test_choosing_the_parent_entry_on_a_mig_slice_warns():
    facts = catalog.resolve(catalog.entries()["a100_40gb"], "cuda", "NVIDIA A100-SXM4-40GB MIG 1g.10gb")
    assert facts.entry == "a100_40gb" and any("not of the device measured" in w for w in facts.warnings)


def test_detected_gpu_gets_catalog_facts_and_price():
    facts = catalog.resolve({"name": "auto", "device": "auto", "price_unit": "device"}, "cuda", "NVIDIA H100 80GB HBM3")
    assert (facts.entry, facts.how, facts.warnings) == ("h100_sxm", "detected", ())
    assert facts.peak_flop_per_s("bf16") == pytest.approx(989.4e12)
    price = facts.price()
    assert price["usd_per_hour"] == 6.88 and price["instance"] == "p5.4xlarge (1 GPU)" and price["as_of"]
    assert price["how"] == "catalog (hardware=h100_sxm)"


def test_unknown_hardware_has_no_price_and_a_warning_naming_the_override(monkeypatch):
    monkeypatch.setattr(catalog, "nearest_cpu_entry", lambda cpuinfo=None: None)  # a CPU no entry fits
    facts = catalog.resolve({"name": "auto", "device": "auto", "price_unit": "device"}, "cuda", "NVIDIA Mystery 1000")
    assert facts.entry is None and facts.price() is None and facts.peak_flop_per_s("fp32") is None
    assert any("hardware.usd_per_hour=" in w and "cost is null" in w for w in facts.warnings)
    assert any("hardware.peak_tflops" in w for w in facts.warnings)
    cpu = catalog.resolve({"name": "auto", "device": "auto", "price_unit": "device"}, "cpu", "AMD EPYC")
    assert cpu.price() is None and any("cpu_c7a" in w for w in cpu.warnings)


def test_user_price_wins_and_drops_the_catalogs_provenance():
    hw = {"name": "auto", "device": "auto", "price_unit": "device", "usd_per_hour": 2.5}
    facts = catalog.resolve(hw, "cuda", "NVIDIA H100 80GB HBM3")
    price = facts.price()
    assert price["usd_per_hour"] == 2.5 and price["how"] == "user (hardware.usd_per_hour)"
    assert price["source"] is None and price["instance"] is None  # not AWS's p5 any more
    assert facts.peak_flop_per_s("fp16") == pytest.approx(989.4e12)  # the facts still come from the catalog


def test_chosen_entry_on_another_device_warns():
    chosen = catalog.entries()["a100_80gb"]
    facts = catalog.resolve(chosen, "cuda", "NVIDIA H100 80GB HBM3")
    assert facts.entry == "a100_80gb" and any("not of the device measured" in w for w in facts.warnings)
    assert facts.price()["how"] == "catalog (hardware=a100_80gb)"


def _cpuinfo(vendor: str, family: int, model: int, name: str = "Some CPU") -> str:
    block = f"processor\t: 0\nvendor_id\t: {vendor}\ncpu family\t: {family}\nmodel\t\t: {model}\nmodel name\t: {name}\n"
    return block + "\n" + block.replace("processor\t: 0", "processor\t: 1")


@pytest.mark.parametrize(
    "vendor, family, model, entry",
    [
        ("AuthenticAMD", 25, 17, "cpu_c7a"),  # EPYC Genoa (Zen 4)
        ("AuthenticAMD", 25, 1, "cpu_c7a"),  # EPYC Milan (Zen 3): the nearest AMD entry
        ("GenuineIntel", 6, 143, "cpu_c7i"),  # Sapphire Rapids
        ("GenuineIntel", 6, 207, "cpu_c7i"),  # Emerald Rapids ("Intel(R) Xeon(R) Processor" on a VM)
        ("GenuineIntel", 6, 106, None),  # Ice Lake: no entry of its generation, so no price
        ("AuthenticAMD", 23, 49, None),  # Zen 2 (Rome)
        ("ARM", 0, 0, None),
    ],
)
def test_nearest_cpu_entry_by_vendor_and_generation(vendor, family, model, entry):
    found = catalog.nearest_cpu_entry(_cpuinfo(vendor, family, model))
    assert (found[0] if found else None) == entry


def test_an_assumed_price_is_labelled_with_the_override(monkeypatch):
    info = _cpuinfo("AuthenticAMD", 25, 17, "AMD EPYC 9R14")
    monkeypatch.setattr(catalog, "nearest_cpu_entry", lambda cpuinfo=None: _REAL(info))
    facts = catalog.resolve({"name": "auto", "device": "auto", "price_unit": "device"}, "cpu", "AMD EPYC 9R14")
    price = facts.price()
    assert facts.entry == "cpu_c7a" and price["assumed"] is True and price["usd_per_hour"] == 0.0513
    assert price["unit"] == "vcpu" and price["how"].startswith("assumed: nearest catalog entry cpu_c7a")
    assert any("price assumed" in w and "hardware.usd_per_hour=" in w for w in facts.warnings)
    # the user's own price wins over the assumption
    user = catalog.resolve({"name": "auto", "device": "auto", "usd_per_hour": 1.0}, "cpu", "AMD EPYC 9R14")
    assert user.price()["how"] == "user (hardware.usd_per_hour)" and not user.price()["assumed"]


def test_the_catalog_is_parsed_once_per_file_version_and_handed_out_as_copies(tmp_path, monkeypatch):
    # every run reads the catalog (~0.08 s for 17 files); the fork server parses it once (harness.prepare)
    (tmp_path / "hardware").mkdir()
    entry = tmp_path / "hardware" / "board.yaml"
    entry.write_text("name: board\nfamily: 'Board'\nmemory_gb: 24\n")
    monkeypatch.setattr(catalog, "CONF_DIR", tmp_path)
    first = catalog.entries()
    assert first == {"board": {"name": "board", "family": "Board", "memory_gb": 24}}
    first["board"]["memory_gb"] = 0  # a caller's change stays its own
    assert catalog.entries()["board"]["memory_gb"] == 24
    entry.write_text("name: board\nfamily: 'Board'\nmemory_gb: 480\n")  # edited: the same size, another mtime
    stat = entry.stat()
    os.utime(entry, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    assert catalog.entries()["board"]["memory_gb"] == 480
    entry.write_text("name: board\nfamily: 'Board'\nmemory_gb: 8\n")  # another size, however coarse the clock
    assert catalog.entries()["board"]["memory_gb"] == 8
    (tmp_path / "hardware" / "other.yaml").write_text("name: other\nfamily: 'Other'\n")
    assert set(catalog.entries()) == {"board", "other"}
