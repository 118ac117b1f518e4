"""MFU per phase and per rank count (harness.accounting.mfu), with FLOPs per token that differ per phase so
that a phase priced with another phase's FLOPs, or a rank count left out, changes the answer."""

import pytest

from harness import accounting
from harness.scenarios.base import Phase

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
