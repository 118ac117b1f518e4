"""FLOPs per token and MFU per phase: known answers, with inputs where a plausible slip changes the figure."""

import pytest

from harness import flops

# 1000 matmul weights, 2 layers, d_model 64: the attention term is 2 * 2 * n_ctx * 64 = 256 * n_ctx
DESC = {"matmul_params": 1000, "n_layers": 2, "d_model": 64}


def test_forward_flops_per_token_by_hand():
    assert flops.forward_flops_per_token(1000, 2, 64, 10) == 2 * 1000 + 2 * 2 * 10 * 64  # 4560
    assert flops.forward_flops_per_token(1000, 2, 64, 0) == 2000.0
    assert flops.forward_flops_per_token(1000, None, 64, 10) is None
    assert flops.forward_flops_per_token(1000, 2, None, 10) is None


def test_decode_uses_the_mean_context_of_the_decode_steps():
    # prompt 10, 4 decode steps: contexts 10.5 .. on average 10 + (4 + 1) / 2 = 12.5 tokens
    f = flops.inference_flops(DESC, seq_len=10, decode_tokens=4)
    assert f["flops_per_token_prefill"] == 2000 + 256 * 10  # 4560
    assert f["flops_per_token_decode"] == 2000 + 256 * 12.5  # 5200
    assert flops.inference_flops({**DESC, "n_layers": None}, 10, 4) == {
        "flops_per_token_prefill": None,
        "flops_per_token_decode": None,
    }


def test_training_is_three_forwards():
    assert flops.training_flops_per_token(DESC, seq_len=10) == 3 * 4560
    assert flops.training_flops_per_token({**DESC, "d_model": None}, 10) is None


METRICS = {"flops_per_token_prefill": 4560.0, "flops_per_token_decode": 5200.0, "flops_per_token_train": 13680.0}


def test_mfu_per_inference_phase_uses_that_phase_flops_and_one_device():
    # 1000 tok/s prefill, 10 tok/s decode, peak 1e7 FLOP/s; with 2 ranks each rank's rate is its own device's
    for world in (1, 2):
        u = flops.utilization(METRICS, {"prefill": 1000.0, "decode": 10.0}, 1e7, world)
        assert u["achieved_flop_per_s_prefill"] == 4_560_000.0
        assert u["mfu_prefill"] == pytest.approx(0.456)
        assert u["achieved_flop_per_s_decode"] == 52_000.0
        assert u["mfu_decode"] == pytest.approx(0.0052)  # with the prefill FLOPs it would read 0.00456
        assert set(u) == {"achieved_flop_per_s_prefill", "mfu_prefill", "achieved_flop_per_s_decode", "mfu_decode"}


def test_training_mfu_is_divided_by_the_ranks():
    # 100 tok/s over the whole run (every rank's tokens), 13680 FLOP/token, 1e6 FLOP/s per device
    one = flops.utilization(METRICS, {"train": 100.0}, 1e6, 1)
    two = flops.utilization(METRICS, {"train": 100.0}, 1e6, 2)
    assert one["achieved_flop_per_s_train"] == two["achieved_flop_per_s_train"] == 1_368_000.0
    assert one["mfu_train"] == pytest.approx(1.368)
    assert two["mfu_train"] == pytest.approx(0.684)


def test_mfu_is_null_without_a_peak_a_rate_or_flops():
    assert flops.utilization(METRICS, {"prefill": 1000.0}, None, 1)["mfu_prefill"] is None
    assert flops.utilization(METRICS, {"prefill": 1000.0}, 0.0, 1)["mfu_prefill"] is None
    u = flops.utilization(METRICS, {"decode": None}, 1e7, 1)
    assert u == {"achieved_flop_per_s_decode": None, "mfu_decode": None}
    u = flops.utilization({}, {"train": 100.0}, 1e6, 1)
    assert u == {"achieved_flop_per_s_train": None, "mfu_train": None}
