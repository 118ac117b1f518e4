"""Quality against the fp32 reference, in-process on a very small model: exact for fp32, bounded otherwise."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from composed import typed as _typed

from harness import data, models, precision, quality
from harness.errors import ConfigError
from harness.validation import validate

MODEL = models.preset(
    "tiny",
    name="t",
    hidden_size=64,
    intermediate_size=128,
    num_hidden_layers=2,
    num_attention_heads=2,
    num_key_value_heads=2,
    max_position_embeddings=256,
    weights="random",
)


def _config(prec: str, **over) -> dict:
    cfg = {
        "model": dict(MODEL),
        "precision": {"name": prec},
        "seed": 0,
        "memory_limit_bytes": None,
        "quality": {"enabled": True, "floor": 0.99, "eval_tokens": 300, "window_tokens": 64, "bootstrap": 200},
        "data": dict(data.PYDOC_SPLIT),
        "workload": {"name": "inference"},
    }
    cfg.update(over)
    return cfg


def _run(cfg: dict, ids: torch.Tensor) -> dict:
    prec = cfg["precision"]["name"]
    model = models.build(cfg["model"], precision.build_dtype(prec, "cpu"), "cpu", cfg["seed"])
    precision.apply(model, prec)
    return quality.evaluate(model, cfg, ids, None, "cpu")


@pytest.fixture(scope="module")
def ids():
    return data.prompt_ids(2, 24, seed=0)


def _hand_loss(model: torch.nn.Module, windows: torch.Tensor) -> tuple[float, float]:
    """Mean next-token cross-entropy and top-1 accuracy, computed independently (HF's own shifted loss)."""
    losses, hits = [], 0
    with torch.inference_mode():
        for w in windows:
            out = model(input_ids=w[None, :-1], labels=w[None, :-1])
            logits = out.logits[0]
            losses.append(float(F.cross_entropy(logits.double(), w[1:])))
            hits += int((logits.argmax(-1) == w[1:]).sum())
    return sum(losses) / len(losses), hits / (len(windows) * (windows.shape[1] - 1))


def test_fp32_is_its_own_reference_and_the_loss_is_the_cross_entropy_on_held_out_windows(ids):
    cfg = _config("fp32")
    model = models.build(cfg["model"], torch.float32, "cpu", 0)
    q = quality.evaluate(model, cfg, ids, None, "cpu")
    assert q["status"] == "ok" and q["reference"].startswith("self")
    # eval_tokens=300 in windows of 64 predicted tokens: 5 windows, 320 tokens
    assert (q["windows"], q["window_tokens"], q["eval_tokens"]) == (5, 64, 320)
    windows, _ = quality.held_out_windows(cfg, None, 256)
    loss, acc = _hand_loss(model, windows)
    assert q["loss_nats"] == pytest.approx(loss, rel=1e-6) and q["accuracy"] == pytest.approx(acc)
    assert q["perplexity"] == pytest.approx(math.exp(loss))
    assert q["loss_nats_lo"] <= q["loss_nats"] <= q["loss_nats_hi"]
    assert q["accuracy_ratio"] == q["perplexity_ratio"] == q["next_token_agreement"] == 1.0
    assert q["kl_divergence_nats_mean"] == 0.0
    # random weights: measured, but no verdict
    assert q["quality_meaningful"] is False and q["verdict"] is None and "not meaningful" in q["verdict_note"]


def test_held_out_windows_come_from_the_held_out_documents_and_prompts_do_not():
    train_docs, eval_docs, _ = data.load_documents(data.PYDOC_SPLIT)
    windows, text = quality.held_out_windows(_config("fp32"), None, 256)
    held = data.encode(eval_docs).tolist()
    first = windows[0].tolist()
    assert any(held[i : i + len(first)] == first for i in range(0, 4))  # the first window starts the held-out text
    assert "never trained on" in text
    # byte-level tokens: each prompt is a run of the training text's bytes, and none of the held-out text's
    train_bytes, held_bytes = bytes(data.encode(train_docs).tolist()), bytes(held)
    for row in data.prompt_ids(4, 48, seed=3):
        assert bytes(row.tolist()) in train_bytes and bytes(row.tolist()) not in held_bytes


@pytest.mark.parametrize("prec", ["fp16", "bf16", "int8"])
def test_low_precision_is_scored_against_fp32_on_the_same_tokens(ids, prec):
    q = _run(_config(prec), ids)
    assert q["status"] == "ok" and q["reference"] == "fp32 build of the same weights"
    assert 0 < q["next_token_agreement"] <= 1
    assert q["kl_divergence_nats_mean"] > 0  # a different precision does change the distribution
    assert q["perplexity_ratio"] == pytest.approx(math.exp(q["reference_loss_nats"] - q["loss_nats"]))
    assert q["accuracy_ratio"] == pytest.approx(q["accuracy"] / q["reference_accuracy"])


def test_compare_by_hand():
    a = torch.tensor([[[2.0, 1.0, 0.0], [0.0, 1.0, 2.0]]], dtype=torch.float64)
    same = quality.compare(a, a.clone())
    assert same["next_token_agreement"] == 1.0 and same["kl_divergence_nats_mean"] == 0.0
    b = a.flip(-1)  # first position's argmax changes, the second's too
    diff = quality.compare(a, b)
    p, q = a[0, 0].softmax(-1), b[0, 0].softmax(-1)
    assert diff["next_token_agreement"] == 0.0
    assert diff["kl_divergence_nats_mean"] == pytest.approx(float((p * (p / q).log()).sum()))


def test_relative_quality_takes_the_lower_ratio():
    assert quality.relative_quality({"accuracy_ratio": 0.995, "perplexity_ratio": 0.97}) == 0.97
    assert quality.relative_quality({"next_token_agreement": 0.98, "perplexity_ratio": 1.01}) == 0.98  # old results
    # the accuracy ratio, where there is one, is the figure (not the old agreement beside it)
    section = {"accuracy_ratio": 0.9, "perplexity_ratio": 0.97, "next_token_agreement": 0.99}
    assert quality.relative_quality(section) == 0.9
    assert quality.relative_quality({}) is None


@pytest.fixture(scope="module")
def local_model(tmp_path_factory):
    from transformers import AutoConfig, AutoModelForCausalLM

    path = tmp_path_factory.mktemp("m") / "model"
    arch = {k: v for k, v in MODEL.items() if k not in ("name", "arch", "path")}
    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(AutoConfig.for_model("llama", **arch)).save_pretrained(path)
    return str(path)


@pytest.mark.parametrize("prec", ["fp32", "int8"])
def test_local_weights_get_a_verdict_from_the_ratio_intervals(ids, local_model, prec):
    from harness import quality_eval

    cfg = _config(prec, model={**MODEL, "name": "local", "path": local_model})
    q = _run(cfg, ids)
    assert q["status"] == "ok" and q["weights"] == "local" and q["quality_meaningful"] is True
    assert math.isfinite(q["perplexity"]) and q["perplexity"] > 1
    expected = quality_eval.worst(
        [quality_eval.verdict(q[f"{m}_ratio_lo"], q[f"{m}_ratio_hi"], 0.99) for m in ("accuracy", "perplexity")]
    )
    assert q["verdict"] == expected and q["passes_floor"] is (expected != "fail")
    if prec == "fp32":
        assert q["verdict"] == "pass" and q["perplexity_ratio_lo"] == q["perplexity_ratio_hi"] == 1.0
    if q["verdict"] == "inconclusive":
        assert q["tokens_to_decide_estimate"] is None or q["tokens_to_decide_estimate"] > q["eval_tokens"]


def test_a_reference_that_does_not_fit_is_skipped_not_guessed(ids):
    q = _run(_config("bf16", memory_limit_bytes=1), ids)
    assert q["status"] == "skipped" and "memory_limit_bytes=1" in q["reason"]
    assert "loss_nats" not in q and "passes_floor" not in q


def test_a_failing_check_is_recorded_not_raised(ids):
    class Broken(torch.nn.Module):
        def forward(self, **kwargs):
            raise RuntimeError("no logits today")

    q = quality.evaluate(Broken(), _config("bf16"), ids, None, "cpu")
    assert q["status"] == "error" and "no logits today" in q["reason"]


def test_disabled():
    q = quality.evaluate(torch.nn.Identity(), _config("int8", quality={"enabled": False}), None, None, "cpu")
    assert q["status"] == "skipped" and q["reason"] == "quality.enabled=false"


def test_quality_floor_config():
    assert _typed().quality.floor == 0.99
    with pytest.raises(ConfigError) as err:
        validate(_typed("quality.floor=1.5"))
    assert str(err.value) == "quality.floor=1.5 is not valid: must be between 0 and 1 (a share of the fp32 reference)"


def test_kl_is_ref_to_run_on_an_asymmetric_pair():
    # position 1: P = (0.9, 0.1) reference, Q = (0.4, 0.6) run (argmax differs); position 2: (0.2, 0.8) vs (0.3, 0.7)
    ref = torch.tensor([[[0.9, 0.1], [0.2, 0.8]]], dtype=torch.float64).log()
    run = torch.tensor([[[0.4, 0.6], [0.3, 0.7]]], dtype=torch.float64).log()
    kl1 = 0.9 * math.log(0.9 / 0.4) + 0.1 * math.log(0.1 / 0.6)  # 0.5507; KL(run || ref) would be 0.7507
    kl2 = 0.2 * math.log(0.2 / 0.3) + 0.8 * math.log(0.8 / 0.7)  # 0.0257
    out = quality.compare(ref, run)
    assert out["positions"] == 2 and out["next_token_agreement"] == 0.5
    assert out["kl_divergence_nats_mean"] == pytest.approx((kl1 + kl2) / 2, rel=1e-9)
    assert out["kl_divergence_nats_max"] == pytest.approx(kl1, rel=1e-9)
    assert out["kl_divergence_nats_max"] == pytest.approx(0.550661, abs=1e-6)
    # logits are shift-invariant: adding a constant to the run's changes nothing
    assert quality.compare(ref, run + 3.0)["kl_divergence_nats_mean"] == pytest.approx((kl1 + kl2) / 2, rel=1e-9)


def test_agreement_counts_positions_over_the_batch():
    ref = torch.zeros(2, 4, 3, dtype=torch.float64)
    ref[..., 0] = 1.0  # argmax 0 everywhere
    run = ref.clone()
    run[0, 1, 2] = 5.0  # 1 of 8 positions now picks token 2
    run[1, 3, 1] = 5.0  # and another
    out = quality.compare(ref, run)
    assert out["positions"] == 8 and out["next_token_agreement"] == 0.75


def test_relative_quality_caps_a_better_perplexity_at_the_agreement():
    assert quality.relative_quality({"next_token_agreement": 0.9, "perplexity_ratio": None}) == 0.9
    assert quality.relative_quality({"next_token_agreement": 1.0, "perplexity_ratio": 1.2}) == 1.0
    # an older file with no agreement: the perplexity ratio alone
    assert quality.relative_quality({"next_token_agreement": None, "perplexity_ratio": 0.5}) == 0.5
    assert quality.relative_quality({"accuracy_ratio": 0.98, "perplexity_ratio": 0.97}) == 0.97
    assert quality.relative_quality({}) is None


def test_random_weights_get_no_verdict_even_exactly_at_the_floor(ids):
    # the floor's edge itself is pinned in test_quality_eval (lo == floor passes); random weights say nothing
    q = _run(_config("fp32", quality={"enabled": True, "floor": 1.0, "eval_tokens": 300}), ids)
    assert q["relative_quality"] == 1.0 and q["floor"] == 1.0
    assert q["verdict"] is None and q["passes_floor"] is None and q["verdict_note"] == quality.RANDOM_WEIGHTS_NOTE
