"""The precision transform (check / load_dtype / apply) and the accounting after the window, with known answers."""

from __future__ import annotations

import pytest
import torch

from harness import accounting, models
from harness.errors import UnsupportedError
from harness.scenarios.base import DATA_PARALLEL, REPLICAS, Phase
from harness.transforms.precision import AUTOCAST, WEIGHTS, Precision

TINY = models.preset("tiny", hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2)


def test_training_refuses_int8_before_anything_is_built():
    with pytest.raises(UnsupportedError, match="int8 is an inference precision"):
        Precision("int8", AUTOCAST, "cpu").check()
    Precision("int8", WEIGHTS, "cpu").check()  # torchao is installed here: inference may quantize


def test_autocast_keeps_fp32_weights_and_says_how():
    model = models.build(TINY, torch.float32, "cpu", seed=0)
    fp16 = Precision("fp16", AUTOCAST, "cpu")
    assert fp16.load_dtype() is torch.float32
    applied = fp16.apply(model)
    assert applied.section == "precision" and applied.runtime == {"autocast_dtype": torch.float16}
    assert applied.how == {"name": "fp16", "method": "autocast", "weight_dtype": "float32", "grad_scaler": True}
    assert Precision("fp32", AUTOCAST, "cpu").apply(model).runtime == {"autocast_dtype": None}


def test_weights_mode_builds_in_the_dtype_and_records_it():
    bf16 = Precision("bf16", WEIGHTS, "cpu")
    assert bf16.load_dtype() is torch.bfloat16
    model = models.build(TINY, bf16.load_dtype(), "cpu", seed=0)
    applied = bf16.apply(model)
    assert applied.how == {"name": "bf16", "method": "model dtype", "weight_dtype": "bfloat16"}
    assert applied.runtime == {}
    with pytest.raises(ValueError, match="choose weights or autocast"):
        Precision("bf16", "lora", "cpu")


def test_mfu_is_per_device_and_null_without_a_peak():
    phases = [Phase("prefill", 1000.0, 2e6, 1), Phase("train", 500.0, 6e6, 2), Phase("decode", None, 2e6, 1)]
    out = accounting.mfu(phases, peak_flop_per_s=1e10)
    assert out["achieved_flop_per_s_prefill"] == 2e9 and out["mfu_prefill"] == pytest.approx(0.2)
    assert out["achieved_flop_per_s_train"] == 3e9 and out["mfu_train"] == pytest.approx(0.15)  # 3e9 / (2 x 1e10)
    assert out["achieved_flop_per_s_decode"] is None and out["mfu_decode"] is None
    assert accounting.mfu(phases, None)["mfu_prefill"] is None


def test_replicas_add_up_and_data_parallel_does_not():
    ranks = [{"rank": 0, "metrics": {"e2e_tok_per_s": 10.0}}, {"rank": 1, "metrics": {"e2e_tok_per_s": 14.0}}]
    m = {"e2e_tok_per_s": 10.0}
    units = accounting.merge_ranks(m, {"token": 100.0}, ranks, REPLICAS, ("e2e_tok_per_s",))
    assert m["e2e_tok_per_s"] == 24.0 and units == {"token": 200.0}
    assert m["ranks"] == [{"e2e_tok_per_s": 10.0, "rank": 0}, {"e2e_tok_per_s": 14.0, "rank": 1}]
    ddp = {"train_tok_per_s": 50.0}
    units = accounting.merge_ranks(ddp, {"token": 100.0}, ranks, DATA_PARALLEL, ("train_tok_per_s",))
    assert ddp["train_tok_per_s"] == 50.0 and units == {"token": 100.0}  # already global: synchronous steps
    one = {"e2e_tok_per_s": 10.0}
    assert accounting.merge_ranks(one, {"token": 1.0}, ranks[:1], REPLICAS, ("e2e_tok_per_s",)) == {"token": 1.0}
    assert "ranks" not in one
