"""Training pieces without a subprocess: schedule, data split and order, ranks, scaling arithmetic."""

import math

import pytest
import torch

from harness import data, distributed, scaling
from harness.backends.hf import HFEager
from harness.errors import UnsupportedError
from harness.scenarios import training

PYDOC = {"source": "pydoc", "text_column": "text", "eval_fraction": 0.1, "split_seed": 1234}


def _schedule(**kw):
    base = dict(
        max_steps=100,
        warmup_steps=3,
        lr=1e-3,
        lr_warmup_steps=10,
        weight_decay=0.1,
        grad_clip=1.0,
        eval_interval=20,
        target_eval_loss=None,
        chunks=3,
    )
    return training.Schedule(**{**base, **kw})


def test_lr_warms_up_linearly_then_decays_to_a_tenth():
    s = _schedule()
    assert training.lr_at(5, s) == pytest.approx(5e-4)
    assert training.lr_at(10, s) == pytest.approx(1e-3)
    assert training.lr_at(55, s) == pytest.approx(1e-3 * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 0.5))))
    assert training.lr_at(100, s) == pytest.approx(1e-4)


def test_split_is_fixed_and_disjoint():
    a_train, a_eval, info = data.load_documents(PYDOC)
    b_train, b_eval, _ = data.load_documents(PYDOC)
    assert a_eval == b_eval and a_train == b_train
    assert not set(a_eval) & set(a_train)
    assert info["eval_documents"] == len(a_eval) and 0.05 < len(a_eval) / (len(a_eval) + len(a_train)) < 0.15


def test_same_seed_same_batches_other_rank_other_batches():
    stream = torch.arange(10_000)
    a, b = (
        data.TrainBatches(stream, 4, 16, seed=7, device="cpu"),
        data.TrainBatches(stream, 4, 16, seed=7, device="cpu"),
    )
    other = data.TrainBatches(stream, 4, 16, seed=7 * 1000 + 1, device="cpu")
    first = [a.next() for _ in range(3)]
    assert all(torch.equal(x, b.next()) for x in first)
    assert not torch.equal(first[0], other.next())
    assert first[0].shape == (4, 16)


def test_eval_batches_are_fixed_windows():
    stream = torch.arange(1000)
    batches = data.eval_batches(stream, n_batches=3, batch_size=2, seq_len=10, device="cpu")
    assert len(batches) == 3 and batches[0][0].tolist() == list(range(10)) and batches[-1][-1][-1] == 999
    with pytest.raises(ValueError, match="too short"):
        data.eval_batches(torch.arange(20), 3, 4, 10, "cpu")


def test_synthetic_data_is_labelled():
    train, held_out, info = data.training_streams({"source": "synthetic"}, seed=0)
    assert info["synthetic"] is True and "SYNTHETIC" in info["description"] and train.max() < 256


def test_evaluation_is_deterministic_and_finite():
    from harness import models

    tiny = models.preset(
        "tiny", hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=2
    )
    model = HFEager.around(models.build(tiny, torch.float32, "cpu", seed=0))
    batches = data.eval_batches(
        torch.randint(0, 256, (2000,), generator=torch.Generator().manual_seed(0)), 2, 2, 16, "cpu"
    )
    first = training.evaluate(model, batches, None, "cpu")
    assert first == training.evaluate(model, batches, None, "cpu")
    assert abs(first - math.log(256)) < 0.5  # random init: about uniform over 256 bytes
    # its interval: over the 4 held-out sequences, around the same figure (tokens summed, not batch-averaged)
    interval = training.eval_interval(model, batches, None, "cpu")
    assert interval["eval_loss_n"] == 2 * 2
    assert interval["eval_loss_lo"] <= first + 1e-5 and first - 1e-5 <= interval["eval_loss_hi"]
    assert interval["eval_loss_lo"] < interval["eval_loss_hi"]  # four different sequences: not one point
    assert interval == training.eval_interval(model, batches, None, "cpu")  # seeded: the same interval again


def test_ranks_must_fit_the_machine():
    distributed.check_fits(2, "cpu", cuda_count=0, cpu_cores=2)
    with pytest.raises(UnsupportedError, match="gpus=3 CPU ranks need a core each"):
        distributed.check_fits(3, "cpu", 0, 2)
    with pytest.raises(UnsupportedError, match="gpus=4 but this machine has 2 visible CUDA"):
        distributed.check_fits(4, "cuda", 2, 64)
    assert distributed.threads_per_rank(16, 4) == 4 and distributed.threads_per_rank(2, 4) == 1


def test_torchrun_arguments():
    single = {"nnodes": 1, "node_rank": 0, "rdzv_backend": "c10d", "rdzv_endpoint": None, "rdzv_id": "h"}
    assert distributed.torchrun_args(2, single) == ["--nproc-per-node", "2", "--standalone"]
    multi = {**single, "nnodes": 2, "node_rank": 1, "rdzv_backend": "static", "rdzv_endpoint": "n0:29500"}
    assert distributed.torchrun_args(8, multi, 150) == [
        "--nproc-per-node",
        "8",
        "--nnodes",
        "2",
        "--node-rank",
        "1",
        "--rdzv-backend",
        "static",
        "--rdzv-endpoint",
        "n0:29500",
        "--rdzv-id",
        "h",
        "--rdzv-conf",
        "timeout=150",
    ]


def _result(gpus, tps, status="ok", workload="training"):
    metric = "train_tok_per_s" if workload == "training" else "e2e_tok_per_s"
    return {
        "status": status,
        "key_fields": {"workload": workload, "model": "tiny", "gpus": gpus},
        "metrics": {metric: tps},
        "distributed": {"label": None},
    }


def test_scaling_efficiency_by_hand():
    rows = scaling.efficiency([_result(1, 100.0), _result(2, 150.0), _result(4, 320.0), _result(8, 1.0, "oom")])
    assert [(r["gpus"], r["efficiency"]) for r in rows] == [(2, 0.75), (4, 0.8)]
    assert scaling.efficiency([_result(2, 150.0)]) == []  # no gpus=1 baseline: nothing to compare
    inf = scaling.efficiency([_result(1, 10.0, workload="inference"), _result(2, 20.0, workload="inference")])
    assert inf[0]["metric"] == "e2e_tok_per_s" and inf[0]["efficiency"] == 1.0


def test_cpu_peak_for_a_low_precision_is_never_below_fp32(tmp_path, monkeypatch):
    from harness import calibrate

    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path))
    monkeypatch.setattr(calibrate, "measure", lambda dtype: {"fp32": 50e9, "fp16": 1e9, "bf16": 200e9}[dtype])
    assert calibrate.cpu_peak_for("fp16")["peak_flop_per_s"] == 50e9  # fp16 is slow here: fp32 bounds it
    assert "fp16 and fp32" in calibrate.cpu_peak_for("fp16")["peak_source"]
    assert calibrate.cpu_peak_for("bf16")["peak_flop_per_s"] == 200e9
    assert calibrate.cpu_peak_for("fp32")["peak_flop_per_s"] == 50e9
    monkeypatch.setattr(calibrate, "measure", lambda dtype: 1.0)  # a busy moment does not lower the peak
    assert calibrate.cpu_peak("fp32")["peak_flop_per_s"] == 50e9


def test_chunks_carry_step_time_throughput_and_energy():
    times = [0.1, 0.1, 0.2, 0.2, 0.4, 0.4, 9.0]  # 7 timed steps in 3 chunks of 2; the odd step is left out
    joules = [1.0, 1.0, 2.0, None, 4.0, 4.0, 90.0]
    c = training._chunks(times, joules, 3, tokens_per_step=100)
    assert [x["steps"] for x in c] == [2, 2, 2]
    assert [x["step_time_s_mean"] for x in c] == pytest.approx([0.1, 0.2, 0.4])
    assert [x["train_tok_per_s"] for x in c] == pytest.approx([1000.0, 500.0, 250.0])
    assert c[0]["energy_j"] == 2.0 and c[0]["j_per_token"] == pytest.approx(0.01)
    assert c[1]["energy_j"] is None and c[1]["j_per_token"] is None  # one step without a reading: no figure
    assert training._chunks([0.5], [None], 3, 10)[0]["steps"] == 1  # fewer steps than chunks
    # a coarse counter (NVML, ~100 ms) moves in some steps only: the chunk sums them; no advance at all is unknown
    coarse = training._chunks([0.05] * 4, [0.0, 3.0, 0.0, 0.0], 2, tokens_per_step=10)
    assert [c["energy_j"] for c in coarse] == [3.0, None]
