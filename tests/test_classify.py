"""Classifier inference (workload=classify): its figures by known answers, its keys and checks, a LoRA checkpoint
saved merged, and one CLI sweep (full vs LoRA x fp32 vs int8) through to the report."""

from __future__ import annotations

import json
import re

import pytest
import torch
from composed import resolved as composed
from conftest import load_results, run_cli

from harness import accounting, checkpoints, models, results, taskmetrics
from harness.report import classifier_served
from harness.scenarios.classify import Classify, Policy, examples_per_s, repeat, usd_per_1k_examples
from harness.stats import summarize


def test_cost_per_1k_examples_is_the_price_per_second_over_the_rate():
    # 3.6 USD per hour is 0.001 USD/s; at 50 examples/s, 1,000 examples take 20 s: 0.02 USD
    assert usd_per_1k_examples(3.6 / 3600, 50.0) == pytest.approx(0.02)
    assert usd_per_1k_examples(0.001, None) is None and usd_per_1k_examples(None, 50.0) is None
    # each repeat is priced per 1,000 examples too (not per 1 M, the token scenarios' scale)
    reps = [{"examples_per_s": 50.0}, {"examples_per_s": 25.0}]
    cost = {"device_usd_per_s": 0.001, "mode": "cloud"}
    accounting.price_repeats(reps, cost, Classify(), None, 1)
    assert [r["usd_per_1k_examples"] for r in reps] == pytest.approx([0.02, 0.04])


def test_a_repeat_times_batches_until_both_minimums_and_its_percentiles_are_known():
    latencies = [0.01, 0.02, 0.03, 0.04, 0.10, 0.5]
    samples: list[float] = []
    policy = Policy(warmup_iters=0, min_iters=5, min_time_s=0.0, max_iters=100, repeats=1)
    rep = repeat(lambda i: latencies[i], 4, policy, samples)
    assert samples == latencies[:5] and rep["iterations"] == 5  # min_iters met, min_time_s already: stop
    assert rep["examples_per_s"] == pytest.approx(20 / 0.20)  # 5 batches of 4 over their summed seconds
    assert rep["batch_latency_s_p50"] == pytest.approx(0.03)
    dist = summarize(samples)  # linear interpolation between order statistics (numpy's default)
    assert (dist["p50"], dist["p90"], dist["p99"]) == pytest.approx((0.03, 0.076, 0.0976))
    assert examples_per_s(4, []) is None


def test_ratios_to_the_fp32_build_are_paired_and_judged_with_their_interval():
    labels = [0, 1] * 50
    ref = list(labels)  # the fp32 build: all right
    run = [1 - y if i < 10 else y for i, y in enumerate(labels)]  # 10 of 100 wrong
    r = taskmetrics.paired_ratios(labels, run, ref, 2, 500, seed=0)
    assert r["accuracy_ratio"] == pytest.approx(0.9) and r["agreement"] == pytest.approx(0.9)
    assert r["accuracy_ratio_lo"] < 0.9 < r["accuracy_ratio_hi"] < 0.99  # wholly below a 0.99 floor: a fail
    same = taskmetrics.paired_ratios(labels, ref, ref, 2, 500, seed=0)
    assert (same["accuracy_ratio_lo"], same["macro_f1_ratio"], same["agreement"]) == (1.0, 1.0, 1.0)


def test_keys_name_the_classifier_and_local_ones_by_their_path(tmp_path):
    lora = composed("workload=classify", "finetune=lora", "lora.rank=4")
    fields = results.key_fields(lora)
    assert fields["classifier"] == "harness" and fields["finetune"] == "lora" and fields["lora_rank"] == 4
    assert fields["init"] == "checkpoint" and "decode_tokens" not in fields
    assert "classify-tiny-fp32-bs16-seq128-steps60-checkpoint-lora-r4" in results.run_slug(lora)
    local = composed("workload=classify", "model=local", f"model.path={tmp_path}")
    assert results.key_fields(local)["classifier"] == "local" and "finetune" not in results.key_fields(local)
    assert "-local-" in results.run_slug(local)


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["finetune=lora", "workload.init=random"], "finetune=lora is not valid: adapters on random weights"),
        (["model=local", "model.path={empty}"], "must be a local directory holding config.json"),
        (["model=local", "model.path={lm}"], "is not a sequence classifier"),
        (["workload.min_iters=0"], "workload.min_iters=0 is not valid: must be >= 1"),
    ],
)
def test_bad_classify_settings_are_one_line_and_exit_2(tmp_path, args, expected):
    (tmp_path / "empty").mkdir()
    (tmp_path / "lm").mkdir()
    (tmp_path / "lm" / "config.json").write_text(json.dumps({"architectures": ["LlamaForCausalLM"]}))
    paths = {"empty": tmp_path / "empty", "lm": tmp_path / "lm"}
    proc = run_cli("workload=classify", *(a.format(**paths) for a in args), cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0], lines
    assert not (tmp_path / "results").exists()


def test_a_lora_checkpoint_is_saved_merged_and_loads_alone_with_the_same_logits(tmp_path):
    from peft import LoraConfig, TaskType, get_peft_model

    cfg = models.preset("tiny", num_labels=3)
    base = models.build_classifier(cfg, torch.float32, "cpu", 0)
    model = get_peft_model(base, LoraConfig(task_type=TaskType.SEQ_CLS, r=4, lora_alpha=8))
    for name, p in model.named_parameters():  # a trained adapter and head: not the zero-initialised B
        if p.requires_grad:
            torch.nn.init.normal_(p, std=0.05, generator=torch.Generator().manual_seed(len(name)))
    ids = torch.randint(1, 256, (2, 16), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = model.eval()(input_ids=ids).logits
    saved = checkpoints.save(model, tmp_path)
    assert "merge_and_unload" in saved["lora_merged"]
    assert not (tmp_path / "checkpoint" / "adapter_config.json").exists()
    loaded = models.build_classifier({**cfg, "path": saved["path"], "init": "checkpoint"}, torch.float32, "cpu", 1)
    with torch.no_grad():
        got = loaded.eval()(input_ids=ids).logits
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)


def test_the_served_total_is_what_making_cost_plus_the_volume_at_its_price():
    assert classifier_served.served_total(0.5, 0.002, 1e6) == pytest.approx(0.5 + 2.0)
    assert classifier_served.served_total(None, 0.002, 1e6) is None


@pytest.mark.e2e
@pytest.mark.timeout(900)  # the first run of a session pretrains tiny's checkpoint, then fine-tunes two classifiers
def test_full_and_lora_at_fp32_and_int8_serve_with_verdicts_costs_and_a_ranked_report(harness):
    proc, root = harness(
        "-m",
        "sweep=clsinf",
        "workload=classify",
        "finetune=full,lora",
        "precision=fp32,int8",
        *("workload.max_steps=6", "workload.eval_interval=6", "workload.warmup_steps=1", "lora.rank=4"),
        *("batch_size=8", "seq_len=32", "repeats=2", "workload.warmup_iters=1", "workload.min_iters=2"),
        *("workload.min_time_s=0.05", "hardware.usd_per_hour=1.0", "quality.bootstrap=200"),
        fast=False,
        timeout=840,
    )
    assert proc.returncode == 0, proc.stderr
    runs = load_results(root / "clsinf")
    by = {(r["key_fields"]["finetune"], r["key_fields"]["precision"]): r for r in runs}
    assert sorted(by) == [("full", "fp32"), ("full", "int8"), ("lora", "fp32"), ("lora", "int8")]
    for (method, prec), r in by.items():
        assert r["status"] == "ok", r["reason"]
        m, q, w, c = r["metrics"], r["quality"], r["weights"], r["cost"]
        assert m["examples_per_s"] > 0 and m["batch_latency_s"]["n"] == m["iterations"] >= 4
        assert m["examples_timed"] == 8 * m["iterations"]
        assert c["usd_per_1k_examples"] == pytest.approx(c["usd_per_s"] / m["examples_per_s"] * 1e3)
        assert all(rep["usd_per_1k_examples"] > 0 for rep in r["repeats"])
        assert q["n"] == 254 and q["accuracy_lo"] <= q["accuracy"] <= q["accuracy_hi"]
        assert q["verdict"] in ("pass", "fail", "inconclusive") and q["floor"] == 0.99
        assert q["reference"] == ("self: this run is fp32" if prec == "fp32" else "fp32 build of the same weights")
        assert r["precision"]["name"] == prec
        # what the classifier cost to make: its fine-tuning plus the pretraining it started from
        assert w["kind"] == "fine-tuned" and w["finetune"] == method
        # the pretrained tiny comes from the shared cache, made by whichever test needed it first: priced only if
        # that run had a price (CI's order differs from a developer's), so its part may be missing, and then said so
        parts = [w["made_by"], w["made_by"]["started_from"]["training"]]
        assert w["total_complete"] is all(p["usd"] is not None and p["energy_j"] is not None for p in parts)
        assert w["total_usd"] == pytest.approx(sum(p["usd"] or 0 for p in parts)) and w["made_by"]["usd"] > 0
        assert w["total_energy_j"] == pytest.approx(sum(p["energy_j"] or 0 for p in parts))
        assert (w.get("lora_merged") is not None) == (method == "lora")
    # one classifier per fine-tuning setting, reused at both precisions: the fp32 run is the int8 run's reference
    for method in ("full", "lora"):
        fp32, int8 = by[(method, "fp32")], by[(method, "int8")]
        assert fp32["weights"]["checkpoint"] == int8["weights"]["checkpoint"]
        assert int8["quality"]["reference_accuracy"] == pytest.approx(fp32["quality"]["accuracy"])
    assert by[("lora", "fp32")]["weights"]["key"] != by[("full", "fp32")]["weights"]["key"]
    assert "examples/s" in proc.stdout and "USD to make" in proc.stdout

    report = run_cli("report", str(root / "clsinf"), "--out", str(root / "rep"), "--served-examples", "1e6", cwd=root)
    assert report.returncode == 0, report.stderr
    text = re.sub(r"<[^>]+>", " ", (root / "rep" / "index.html").read_text())
    assert "Classifier cost over a served volume" in text and "USD made + served" in text
    for method in ("full", "lora r4"):
        for prec in ("fp32", "int8"):
            assert f"tiny {prec} bs=8 seq=32 gpus=1 {method}" in text
    assert "Best quality per dollar" in text or "No run can be recommended" in text
