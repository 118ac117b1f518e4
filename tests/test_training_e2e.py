"""End to end: training through the real CLI — loss falls, time-to-target, precisions, CPU ranks."""

from __future__ import annotations

import json

import pytest
from conftest import load_results

pytestmark = pytest.mark.e2e

# seconds per run on 2 cores, yet enough steps for the held-out loss to fall clearly
TRAIN = [
    "workload=training",
    "workload.max_steps=12",
    "workload.eval_interval=6",
    "workload.eval_batches=2",
    "workload.lr_warmup_steps=2",
    "batch_size=4",
    "seq_len=32",
    "repeats=2",
]


def test_training_precisions_from_the_same_start(harness):
    proc, root = harness("-m", "sweep=train", *TRAIN, "precision=fp32,bf16,fp16,int8", fast=False)
    assert proc.returncode == 0, proc.stderr
    by = {r["key_fields"]["precision"]: r for r in load_results(root / "train")}
    assert by["int8"]["status"] == "unsupported" and "int8 is an inference precision" in by["int8"]["reason"]
    for prec in ("fp32", "bf16", "fp16"):
        r = by[prec]
        assert r["status"] == "ok", r["reason"]
        m = r["metrics"]
        assert m["eval_loss"] < m["eval_loss_initial"] - 0.5  # it learns
        assert m["step_time_s"]["n"] == 12 - 3 and m["steps"] == 12 and len(m["loss_curve"]) == 12
        assert [s for s, *_ in m["eval_curve"]] == [0, 6, 12]
        assert m["train_tok_per_s"] > 0 and m["tokens_trained"] == 12 * 4 * 32
        assert m["flops_per_token_train"] == pytest.approx(3 * (2 * m["matmul_params"] + 2 * 4 * 32 * 128))
        assert 0 < m["mfu_train"] < 1
        assert r["data"]["source"] == "pydoc" and r["data"]["synthetic"] is False
        assert r["energy"]["j_per_token"] > 0 and r["energy"]["j_per_step"] > 0
        assert len(r["repeats"]) == 2
    # same seed: same initial weights and held-out text, so the starting loss is the same in every precision
    assert by["fp32"]["metrics"]["eval_loss_initial"] == pytest.approx(
        by["bf16"]["metrics"]["eval_loss_initial"], abs=0.02
    )
    assert by["fp16"]["precision"]["grad_scaler"] is True and by["fp16"]["metrics"]["loss_scale_final"] > 0
    assert by["bf16"]["precision"]["method"] == "autocast"


def test_target_eval_loss_stops_early_and_prices_it(harness):
    proc, root = harness(
        "-m",
        "sweep=ttt",
        *TRAIN,
        "workload.max_steps=40",
        "workload.eval_interval=2",
        "workload.target_eval_loss=4.8,0.5",
        "hardware.usd_per_hour=1.0",
        fast=False,
    )
    assert proc.returncode == 0, proc.stderr
    by = {r["key_fields"]["target_eval_loss"]: r for r in load_results(root / "ttt")}
    hit, miss = by[4.8], by[0.5]
    t = hit["metrics"]["target"]
    assert hit["status"] == "ok" and t["reached"] and t["step"] < 40 and hit["metrics"]["steps"] == t["step"]
    assert hit["metrics"]["eval_loss"] <= 4.8
    assert hit["cost"]["usd_to_target"] == pytest.approx(1.0 / 3600 * t["time_s"])
    for chunk in hit["repeats"]:  # the gate's training samples: throughput and cost per chunk of steps
        tok_s = chunk["steps"] * hit["metrics"]["tokens_per_step"] / chunk["wall_s"]
        assert chunk["train_tok_per_s"] == pytest.approx(tok_s)
        assert chunk["usd_per_1m_tokens_train"] == pytest.approx(1.0 / 3600 / tok_s * 1e6)
    assert miss["status"] == "ok" and not miss["metrics"]["target"]["reached"]
    assert (
        "> target 0.5 after 40 steps" in miss["metrics"]["target"]["reason"] and miss["cost"]["usd_to_target"] is None
    )


def test_levers_accumulation_and_checkpointing_keep_the_loss_curve(harness):
    """The same global batches in 1 or 2 micro-batches, under activation checkpointing: the same held-out curve
    (float noise), the levers in the result's key, folder, label and reproduce command."""
    from harness import reproduce

    proc, root = harness(
        "-m", "sweep=lev", *TRAIN, "workload.grad_accum_steps=1,2", "workload.grad_checkpointing=true", fast=False
    )
    assert proc.returncode == 0, proc.stderr
    by = {r["levers"]["grad_accum_steps"]: r for r in load_results(root / "lev")}
    one, two = by[1], by[2]
    for n, r in by.items():
        assert r["status"] == "ok", r["reason"]
        assert r["levers"] == {
            "grad_accum_steps": n,
            "micro_batch_size": 4 // n,
            "grad_checkpointing": True,
            "checkpointed_layers": 4,
        }
        assert r["key_fields"]["grad_checkpointing"] is True
        assert r["metrics"]["tokens_per_step"] == 4 * 32 and r["metrics"]["tokens_trained"] == 12 * 4 * 32
        assert f"workload.grad_accum_steps={n}" in reproduce.for_result(r)
    assert "grad_accum_steps" not in one["key_fields"] and two["key_fields"]["grad_accum_steps"] == 2
    folders = sorted(p.parent.name for p in (root / "lev").glob("*/result.json"))
    assert [f.split("-g1-")[0] for f in folders] == [
        f"training-tiny-fp32-bs4-seq32-steps12{w}" for w in ("-ckpt", "-ga2-ckpt")
    ]
    for (s1, v1, _), (s2, v2, _) in zip(one["metrics"]["eval_curve"], two["metrics"]["eval_curve"], strict=True):
        assert s1 == s2 and v1 == pytest.approx(v2, abs=1e-3)
    assert one["metrics"]["eval_loss"] < one["metrics"]["eval_loss_initial"] - 0.5  # it learned
    assert "tiny fp32 bs=4 seq=32 gpus=1 accum=2 ckpt" in proc.stdout
    assert "tiny fp32 bs=4 seq=32 gpus=1 ckpt" in proc.stdout


@pytest.mark.alone  # CPU ranks: a core each
def test_two_cpu_ranks_with_gloo_and_scaling_efficiency(harness):
    proc, root = harness("-m", "sweep=ddp", *TRAIN, "gpus=1,2", fast=False)
    assert proc.returncode == 0, proc.stderr
    by = {r["key_fields"]["gpus"]: r for r in load_results(root / "ddp")}
    two = by[2]
    assert two["status"] == "ok", two["reason"]
    d = two["distributed"]
    assert d["world_size"] == 2 and d["backend"] == "gloo" and d["threads_per_rank"] == 1
    assert "simulation" in d["label"]
    ranks = two["metrics"]["ranks"]
    assert [r["rank"] for r in ranks] == [0, 1] and all(r["peak_rss_bytes"] > 0 for r in ranks)
    assert two["metrics"]["tokens_trained"] == 2 * 12 * 4 * 32  # global batch = batch_size x ranks
    assert {c["name"].split(":")[0] for c in two["energy"]["components"]} == {"rank0", "rank1"}
    scaling = json.loads((root / "ddp" / "scaling.json").read_text())
    (row,) = scaling["rows"]
    expected = two["metrics"]["train_tok_per_s"] / (2 * by[1]["metrics"]["train_tok_per_s"])
    assert row["gpus"] == 2 and row["efficiency"] == pytest.approx(expected) and row["cpu_ranks"]
    assert "scaling: gpus=2 efficiency" in proc.stdout


@pytest.mark.alone  # CPU ranks: a core each
def test_inference_replicas_and_too_many_ranks(harness):
    proc, root = harness("-m", "sweep=rep", "gpus=2,3")
    assert proc.returncode == 0, proc.stderr
    by = {r["key_fields"]["gpus"]: r for r in load_results(root / "rep")}
    two = by[2]
    assert two["status"] == "ok", two["reason"]
    ranks = two["metrics"]["ranks"]
    assert two["metrics"]["decode_tok_per_s"] == pytest.approx(sum(r["decode_tok_per_s"] for r in ranks))
    assert by[3]["status"] == "unsupported" and "gpus=3 CPU ranks need a core each" in by[3]["reason"]


def test_local_text_and_json_data(harness, tmp_path):
    text = "\n".join(f"line {i}: the quick brown fox jumps over the lazy dog." for i in range(400))
    (tmp_path / "corpus.txt").write_text(text)
    (tmp_path / "corpus.jsonl").write_text("\n".join(json.dumps({"body": line}) for line in text.splitlines()))
    proc, root = harness(
        "sweep=txt",
        *TRAIN,
        "workload.max_steps=4",
        "workload.eval_interval=4",
        "data.source=text",
        f"data.path={tmp_path / 'corpus.txt'}",
        fast=False,
    )
    assert proc.returncode == 0, proc.stderr
    (r,) = load_results(root / "txt")
    assert r["status"] == "ok" and r["data"]["source"] == "text" and r["data"]["eval_documents"] == 40
    proc, root = harness(
        "sweep=js",
        *TRAIN,
        "workload.max_steps=4",
        "workload.eval_interval=4",
        "data.source=json",
        f"data.path={tmp_path / 'corpus.jsonl'}",
        "data.text_column=body",
        fast=False,
    )
    assert proc.returncode == 0, proc.stderr
    (r,) = load_results(root / "js")
    assert r["status"] == "ok", r["reason"]
    assert r["data"]["train_documents"] == 360


@pytest.mark.parametrize(
    "arg, expected",
    [
        ("workload.target_eval_loss=0", "workload.target_eval_loss=0.0 is not valid: must be > 0"),
        ("data.path=/no/such/file.txt", "data.path=/no/such/file.txt is not valid: data.source=text needs an existing"),
        ("workload.max_steps=0", "workload.max_steps=0 is not valid: must be >= 1"),
        (
            "workload.grad_accum_steps=3",
            "workload.grad_accum_steps=3 is not valid: must divide batch_size=8 (choose one of 1, 2, 4, 8)",
        ),
    ],
)
def test_bad_training_input(tmp_path, arg, expected):
    from conftest import run_cli

    extra = ["data.source=text"] if arg.startswith("data.path") else []
    proc = run_cli("workload=training", *extra, arg, cwd=tmp_path)
    assert proc.returncode == 2 and expected in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
