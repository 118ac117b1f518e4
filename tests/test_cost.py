"""Cost arithmetic with hand-computed answers."""

import pytest

from harness import cost

CLOUD = {"mode": "cloud", "usd_per_kwh": 0.10, "usd_per_kwh_source": "test"}
PRICE = {"usd_per_hour": 3.6, "unit": "device", "hardware": "x", "how": "test"}  # 0.001 USD per device-second
TIMING = {"timed_window_s": 10.0, "run_wall_s": 20.0}
RATES = {"prefill_tok_per_s": 10_000.0, "decode_tok_per_s": 500.0, "e2e_tok_per_s": 400.0, "samples_per_s": 4.0}


def test_cloud_cost_by_hand():
    c = cost.compute(PRICE, devices=2, timing=TIMING, rates=RATES, energy=None, cost_cfg=CLOUD)
    assert c["usd_per_s"] == pytest.approx(0.002)
    assert c["timed_window_usd"] == pytest.approx(0.02)
    assert c["run_usd"] == pytest.approx(0.04)
    assert c["usd_per_1m_tokens_prefill"] == pytest.approx(0.002 / 10_000 * 1e6)  # 0.2 USD
    assert c["usd_per_1m_tokens_decode"] == pytest.approx(4.0)
    assert c["usd_per_1m_tokens_generated"] == pytest.approx(5.0)
    assert c["usd_per_1k_samples"] == pytest.approx(0.5)
    assert c["price"] == PRICE and c["devices"] == 2 and c["mode"] == "cloud"


def test_onprem_adds_energy_times_price_times_pue():
    energy = {"avg_power_w": 360.0, "pue": 1.5, "total_method": "measured"}
    c = cost.compute(PRICE, 1, TIMING, RATES, energy, {**CLOUD, "mode": "onprem"})
    # 360 W = 1e-4 kWh per second; x 0.10 USD/kWh x 1.5 = 1.5e-5 USD/s on top of 0.001
    assert c["energy_usd_per_s"] == pytest.approx(1.5e-5)
    assert c["usd_per_s"] == pytest.approx(0.001015)
    assert c["timed_window_usd"] == pytest.approx(0.01015)
    assert c["run_usd"] == pytest.approx(0.001 * 20 + 1.5e-5 * 10)  # energy measured in the window only
    assert c["energy_method"] == "measured" and c["usd_per_kwh"] == 0.10


def test_onprem_without_energy_says_so():
    c = cost.compute(PRICE, 1, TIMING, RATES, None, {**CLOUD, "mode": "onprem"})
    assert c["energy_usd_per_s"] is None and "energy" in c["warning"] and c["usd_per_s"] == pytest.approx(0.001)


def test_no_price_no_cost_and_missing_rates_stay_null():
    assert cost.compute(None, 1, TIMING, RATES, None, CLOUD) is None
    c = cost.compute(PRICE, 1, TIMING, {**RATES, "decode_tok_per_s": None}, None, CLOUD)
    assert c["usd_per_1m_tokens_decode"] is None


def test_device_count():
    assert cost.device_count("device", "cuda", gpus=4, vcpus=96) == 4
    assert cost.device_count("vcpu", "cpu", gpus=1, vcpus=8) == 8
    assert cost.device_count("device", "cpu", gpus=1, vcpus=8) == 1


def test_multi_node_runs_pay_for_every_nodes_devices():
    """gpus is per node: 8 GPUs on each of 2 nodes are 16 paid devices (the world size), not 8."""
    assert cost.device_count("device", "cuda", gpus=8, vcpus=96, nodes=2) == 16
    assert cost.device_count("vcpu", "cpu", gpus=2, vcpus=8, nodes=3) == 24
    assert cost.device_count("device", "cpu", gpus=2, vcpus=8, nodes=3) == 3
    price = {"usd_per_hour": 3.6}
    timing = {"timed_window_s": 10.0, "run_wall_s": 20.0}
    one = cost.compute(price, 8, timing, {"train_tok_per_s": 1000.0}, None, {"mode": "cloud"})
    two = cost.compute(price, 16, timing, {"train_tok_per_s": 1000.0}, None, {"mode": "cloud"})
    assert two["usd_per_1m_tokens_train"] == pytest.approx(2 * one["usd_per_1m_tokens_train"]) == pytest.approx(16.0)


def test_each_repeat_is_priced_as_the_run():
    c = cost.compute(PRICE, 2, TIMING, RATES, None, CLOUD)  # 0.002 USD/s for two devices
    rep = {"e2e_tok_per_s": 400.0, "wall_s": 0.5, "energy_j": None}
    assert cost.per_repeat(c, rep, "e2e_tok_per_s", 1.5) == pytest.approx(5.0)  # as usd_per_1m_tokens_generated
    # rank 0 of two ranks carries half the devices' price for its own tokens
    assert cost.per_repeat(c, rep, "e2e_tok_per_s", 1.5, ranks=2) == pytest.approx(2.5)
    assert cost.per_repeat(None, rep, "e2e_tok_per_s", 1.5) is None  # no price: no cost
    assert cost.per_repeat(c, {"e2e_tok_per_s": None}, "e2e_tok_per_s", 1.5) is None


def test_onprem_repeat_uses_its_own_energy():
    energy = {"avg_power_w": 360.0, "pue": 1.5, "total_method": "measured"}
    c = cost.compute(PRICE, 1, TIMING, RATES, energy, {**CLOUD, "mode": "onprem"})
    # 180 J over 0.5 s = 360 W: 1.5e-5 USD/s of energy on top of 0.001 USD/s; 400 tok/s
    rep = {"train_tok_per_s": 400.0, "wall_s": 0.5, "energy_j": 180.0}
    assert cost.per_repeat(c, rep, "train_tok_per_s", 1.5) == pytest.approx(0.001015 / 400 * 1e6)
    # no energy for the repeat: its on-prem price is unknown, not the rental alone
    assert cost.per_repeat(c, {**rep, "energy_j": None}, "train_tok_per_s", 1.5) is None


def test_training_cost_prices_tokens_trained_and_the_time_to_target():
    rates = {"train_tok_per_s": 2_000.0, "samples_per_s": 8.0}
    c = cost.compute(PRICE, 1, TIMING, rates, None, CLOUD)
    assert c["usd_per_1m_tokens_train"] == pytest.approx(0.5)  # 0.001 USD/s / 2000 tok/s x 1e6
    assert c["usd_per_1k_samples"] == pytest.approx(0.125)
    assert "usd_per_1m_tokens_decode" not in c and "usd_per_1m_tokens_prefill" not in c
    reached = {"target": {"target_eval_loss": 2.0, "reached": True, "time_s": 7.0}}
    assert cost.training(0.001, reached, TIMING) == {"training_usd": pytest.approx(0.01), "usd_to_target": 0.007}
    missed = {"target": {"target_eval_loss": 2.0, "reached": False, "time_s": None}}
    assert cost.training(0.001, missed, TIMING) == {"training_usd": pytest.approx(0.01), "usd_to_target": None}
    assert cost.training(0.001, {"target": {"target_eval_loss": None}}, TIMING) == {"training_usd": pytest.approx(0.01)}
    assert cost.training(0.001, {}, TIMING) == {"training_usd": pytest.approx(0.01)}


def test_onprem_energy_share_uses_the_runs_own_pue():
    energy = {"avg_power_w": 720.0, "pue": 1.25, "total_method": "estimated"}
    cfg = {"mode": "onprem", "usd_per_kwh": 0.2, "usd_per_kwh_source": "meter"}
    c = cost.compute(PRICE, 3, TIMING, RATES, energy, cfg)
    # 720 W = 2e-4 kWh/s x 0.2 USD/kWh x 1.25 = 5e-5 USD/s; 3 devices rent 0.003 USD/s
    assert c["device_usd_per_s"] == pytest.approx(0.003) and c["energy_usd_per_s"] == pytest.approx(5e-5)
    assert c["usd_per_s"] == pytest.approx(0.00305) and c["run_usd"] == pytest.approx(0.003 * 20 + 5e-5 * 10)
    assert c["usd_per_1m_tokens_generated"] == pytest.approx(0.00305 / 400 * 1e6)
    assert c["energy_method"] == "estimated" and c["usd_per_kwh_source"] == "meter" and "warning" not in c
    cloud = cost.compute(PRICE, 3, TIMING, RATES, energy, CLOUD)  # cloud mode ignores the energy figure
    assert cloud["usd_per_s"] == pytest.approx(0.003) and "energy_usd_per_s" not in cloud
    rep = {"e2e_tok_per_s": 400.0, "wall_s": 2.0, "energy_j": 1440.0}  # 720 W
    assert cost.per_repeat(c, rep, "e2e_tok_per_s", 1.25, ranks=3) == pytest.approx((0.001 + 5e-5) / 400 * 1e6)
    assert (
        cost.per_repeat(c, rep, "e2e_tok_per_s", None) is None
        and cost.per_repeat(c, {**rep, "wall_s": 0}, "e2e_tok_per_s", 1.25) is None
    )
    assert cost.per_repeat(cloud, rep, "e2e_tok_per_s", 1.25, scale=1e3) == pytest.approx(0.003 / 400 * 1e3)


def test_per_million_and_per_thousand_figures_are_exact():
    # exact to 1e-12: a scale of 1e6 + 1 (a slip pytest.approx's default 1e-6 would forgive) changes them
    c = cost.compute(PRICE, 1, TIMING, {**RATES, "train_tok_per_s": 250.0}, None, CLOUD)
    assert c["usd_per_1m_tokens_train"] == pytest.approx(4.0, rel=1e-12) and c["usd_per_1k_samples"] == pytest.approx(
        0.25, rel=1e-12
    )
    c = cost.compute(PRICE, 1, TIMING, RATES, None, CLOUD)
    assert c["usd_per_1m_tokens_prefill"] == pytest.approx(0.1, rel=1e-12)
    assert c["usd_per_1m_tokens_decode"] == pytest.approx(2.0, rel=1e-12)
    assert c["usd_per_1m_tokens_generated"] == pytest.approx(2.5, rel=1e-12)
    assert c["device_usd_per_s"] == pytest.approx(0.001, rel=1e-12) and c["run_usd"] == pytest.approx(0.02, rel=1e-12)
    assert cost.per_repeat(c, {"e2e_tok_per_s": 400.0}, "e2e_tok_per_s", None) == pytest.approx(2.5, rel=1e-12)
    energy = {"avg_power_w": 360.0, "pue": 1.5, "total_method": "measured"}
    onprem = cost.compute(PRICE, 1, TIMING, RATES, energy, {**CLOUD, "mode": "onprem"})
    assert onprem["energy_usd_per_s"] == pytest.approx(1.5e-5, rel=1e-12)
    rep = {"e2e_tok_per_s": 400.0, "wall_s": 0.5, "energy_j": 180.0}
    assert cost.per_repeat(onprem, rep, "e2e_tok_per_s", 1.5) == pytest.approx(0.001015 / 400 * 1e6, rel=1e-12)


def test_onprem_without_energy_warning_text():
    c = cost.compute(PRICE, 1, TIMING, RATES, {"avg_power_w": None}, {**CLOUD, "mode": "onprem"})
    assert c["warning"] == "onprem mode without an energy figure: the energy share of the cost is missing"
    assert "energy_method" not in c and c["usd_per_kwh_source"] == "test"
