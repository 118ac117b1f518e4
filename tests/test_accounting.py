"""MFU per phase and per rank count (harness.accounting.mfu), with FLOPs per token that differ per phase so
that a phase priced with another phase's FLOPs, or a rank count left out, changes the answer."""

import pytest

from harness import accounting
from harness.scenarios.base import REPLICAS, Phase

# 4560 FLOP/token prefill, 5200 decode (tests/test_flops.py's model), 13680 training
PREFILL, DECODE, TRAIN = 4560.0, 5200.0, 13680.0


def test_mfu_per_inference_phase_uses_that_phase_s_flops():
    # 1000 tok/s prefill, 10 tok/s decode, peak 1e7 FLOP/s; each rank's rate is its own device's
    u = accounting.mfu([Phase("prefill", 1000.0, PREFILL, 1), Phase("decode", 10.0, DECODE, 1)], 1e7)
    assert u["achieved_flop_per_s_prefill"] == 4_560_000.0 and u["mfu_prefill"] == pytest.approx(0.456, rel=1e-12)
    assert u["achieved_flop_per_s_decode"] == 52_000.0
    assert u["mfu_decode"] == pytest.approx(0.0052, rel=1e-12)  # with the prefill FLOPs it would read 0.00456
    assert set(u) == {"achieved_flop_per_s_prefill", "mfu_prefill", "achieved_flop_per_s_decode", "mfu_decode"}


def test_training_mfu_is_divided_by_the_ranks():
    # 100 tok/s over the whole run (every rank's tokens), 13680 FLOP/token, 1e6 FLOP/s per device
    one = accounting.mfu([Phase("train", 100.0, TRAIN, 1)], 1e6)
    two = accounting.mfu([Phase("train", 100.0, TRAIN, 2)], 1e6)
    assert one["achieved_flop_per_s_train"] == two["achieved_flop_per_s_train"] == 1_368_000.0
    assert one["mfu_train"] == pytest.approx(1.368, rel=1e-12)
    assert two["mfu_train"] == pytest.approx(0.684, rel=1e-12)


def test_mfu_is_null_without_a_peak_a_rate_or_flops():
    assert accounting.mfu([Phase("prefill", 1000.0, PREFILL, 1)], None)["mfu_prefill"] is None
    assert accounting.mfu([Phase("prefill", 1000.0, PREFILL, 1)], 0.0)["mfu_prefill"] is None
    assert accounting.mfu([Phase("decode", None, DECODE, 1)], 1e7) == {
        "achieved_flop_per_s_decode": None,
        "mfu_decode": None,
    }
    assert accounting.mfu([Phase("train", 100.0, None, 1)], 1e6) == {
        "achieved_flop_per_s_train": None,
        "mfu_train": None,
    }


def test_rank_summary_keeps_the_listed_figures_and_the_medians_p50():
    metrics = {
        "decode_tok_per_s": 12.5,
        "peak_rss_bytes": 4096,
        "threads": 2,
        "step_time_s": {"p50": 0.25, "p90": 0.4},
        "decode_latency_s": {"p50": 0.08, "p90": 0.1},
        "achieved_flop_per_s_decode": 9.0,  # not a per-rank figure: rank 0 keeps only the run's
    }
    assert accounting.rank_summary(metrics) == {
        "decode_tok_per_s": 12.5,
        "peak_rss_bytes": 4096,
        "threads": 2,
        "step_time_s_p50": 0.25,
        "decode_latency_s_p50": 0.08,
    }


ENERGY_ON = {
    "enabled": True,
    "pue": 1.5,
    "pue_source": "t",
    "carbon_intensity_g_per_kwh": 400.0,
    "carbon_intensity_source": "t",
}


def test_energy_section_accounts_the_window_or_is_null_when_energy_is_off():
    cpu = {"name": "cpu", "method": "rapl", "energy_j": 720.0}
    e = accounting.energy_section([cpu], 4.0, {"token": 90}, ENERGY_ON)
    assert e["total_j"] == 720.0 and e["window_s"] == 4.0 and e["avg_power_w"] == 180.0
    assert e["j_per_token"] == 8.0 and e["co2e_g"] == pytest.approx(720.0 / 3.6e6 * 1.5 * 400.0, rel=1e-12)
    assert accounting.energy_section([cpu], 4.0, {"token": 90}, ENERGY_ON | {"enabled": False}) is None


class _Scenario:
    """A scenario's pricing surface: its own cost figures and the repeat rate it prices."""

    repeat_cost = ("e2e_tok_per_s", "usd_per_1m_tokens_generated")

    def __init__(self):
        self.seen = None

    def price(self, cost, metrics, timing):
        self.seen = (dict(cost), metrics, timing)
        return {"usd_to_target": 7.0}


def test_cost_section_adds_the_scenario_s_own_figures_to_harness_cost():
    price = {"usd_per_hour": 3.6, "source": "t"}
    timing = {"timed_window_s": 10.0, "run_wall_s": 20.0}
    metrics = {"e2e_tok_per_s": 100.0}
    cost_cfg = {"mode": "cloud", "usd_per_kwh": 0.1, "pricing": "on_demand"}
    scenario = _Scenario()
    out = accounting.cost_section(price, 2, timing, metrics, None, cost_cfg, scenario)
    # 3.6 USD/h x 2 devices = 0.002 USD/s: 0.02 USD in the window, 0.04 for the run, 20 USD per 1M tokens
    assert out["usd_per_s"] == pytest.approx(0.002, rel=1e-12) and out["devices"] == 2
    assert out["timed_window_usd"] == pytest.approx(0.02, rel=1e-12)
    assert out["run_usd"] == pytest.approx(0.04, rel=1e-12)
    assert out["usd_per_1m_tokens_generated"] == pytest.approx(20.0, rel=1e-12)
    assert out["usd_to_target"] == 7.0
    assert scenario.seen[1] is metrics and scenario.seen[2] is timing and "usd_to_target" not in scenario.seen[0]
    unpriced = _Scenario()
    assert accounting.cost_section(None, 2, timing, metrics, None, cost_cfg, unpriced) is None
    assert unpriced.seen is None  # nothing to add to a run that has no price


def test_each_repeat_is_priced_as_the_run_with_rank_0_s_share_and_the_pue():
    # 0.002 USD/s for 2 devices: rank 0's share 0.001 USD/s; onprem adds 3.6 MJ over 1000 s = 0.001 kWh/s
    # at 0.1 USD/kWh and PUE 1.5 = 0.00015 USD/s
    cloud = {"mode": "cloud", "device_usd_per_s": 0.002}
    repeats = [{"e2e_tok_per_s": 500.0}, {"e2e_tok_per_s": 250.0}]
    accounting.price_repeats(repeats, cloud, _Scenario(), 1.5, 2)
    assert [r["usd_per_1m_tokens_generated"] for r in repeats] == pytest.approx([2.0, 4.0], rel=1e-12)
    onprem = {"mode": "onprem", "device_usd_per_s": 0.002, "usd_per_kwh": 0.1}
    repeats = [{"e2e_tok_per_s": 500.0, "energy_j": 3.6e6, "wall_s": 1000.0}]
    accounting.price_repeats(repeats, onprem, _Scenario(), 1.5, 2)
    assert repeats[0]["usd_per_1m_tokens_generated"] == pytest.approx(0.00115 / 500.0 * 1e6, rel=1e-12)
    unpriced = _Scenario()
    unpriced.repeat_cost = None
    repeats = [{"e2e_tok_per_s": 500.0}]
    accounting.price_repeats(repeats, cloud, unpriced, 1.5, 2)
    assert repeats == [{"e2e_tok_per_s": 500.0}]


def test_replicas_sum_only_when_every_rank_measured_the_figure():
    ranks = [{"rank": 0, "metrics": {"e2e_tok_per_s": 10.0}}, {"rank": 1, "metrics": {"e2e_tok_per_s": None}}]
    m = {"e2e_tok_per_s": 10.0}
    units = accounting.merge_ranks(m, {"token": 100.0}, ranks, REPLICAS, ("e2e_tok_per_s",))
    assert m["e2e_tok_per_s"] is None and units == {"token": 200.0}  # a partial sum would pass for the run's


def test_cost_section_prices_the_energy_it_is_given_in_onprem_mode():
    price = {"usd_per_hour": 3.6, "source": "t"}
    timing = {"timed_window_s": 10.0, "run_wall_s": 20.0}
    cost_cfg = {"mode": "onprem", "usd_per_kwh": 0.1, "usd_per_kwh_source": "t", "pricing": "on_demand"}
    energy_sec = {"avg_power_w": 3600.0, "pue": 1.5, "total_method": "measured"}
    out = accounting.cost_section(price, 2, timing, {"e2e_tok_per_s": 100.0}, energy_sec, cost_cfg, _Scenario())
    # 3600 W = 0.001 kWh/s x 0.1 USD/kWh x PUE 1.5 = 0.00015 USD/s on top of the devices' 0.002
    assert out["energy_usd_per_s"] == pytest.approx(0.00015, rel=1e-12)
    assert out["usd_per_s"] == pytest.approx(0.00215, rel=1e-12) and out["energy_method"] == "measured"


def test_mbu_reads_the_bytes_per_step_and_the_steps_per_second_of_the_run():
    m = {"bytes_per_decode_step": 3.0e6, "decode_steps_per_s": 250.0, "decode_tok_per_s": 999.0}
    assert accounting.mbu(m, 3.0e10) == {"achieved_bytes_per_s_decode": 7.5e8, "mbu_decode": 0.025}
    assert accounting.mbu(m, None) == {"achieved_bytes_per_s_decode": 7.5e8, "mbu_decode": None}
    assert accounting.mbu({"decode_steps_per_s": 250.0}, 3.0e10)["mbu_decode"] is None
    assert accounting.mbu({"bytes_per_decode_step": 3.0e6}, 3.0e10)["achieved_bytes_per_s_decode"] is None
