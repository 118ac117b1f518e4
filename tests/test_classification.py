"""The classification workload: labelled data and its up-front checks, keys, and one CLI run end to end."""

from __future__ import annotations

import json

import pytest
from composed import resolved as composed
from conftest import load_results, run_cli

from harness import labelled, results
from harness.config import LEGACY_WORKLOAD
from harness.scenarios.classification import encode

# seconds on 2 cores: a tiny decoder with a head, short byte sequences
CLS = [
    "workload=classification",
    "workload.max_steps=24",
    "workload.eval_interval=8",
    "workload.warmup_steps=2",
    "workload.lr=3e-3",
    "batch_size=16",
    "seq_len=32",
    "repeats=2",
]


def _data(source="csv", path=None, **kw):
    return {"source": source, "path": str(path) if path else None, "text_column": "text", "label_column": "label",
            "eval_fraction": 0.25, "split_seed": 1234, **kw}  # fmt: skip


def test_the_built_in_set_is_stdlib_docstrings_labelled_by_package():
    texts, labels = labelled.builtin_rows()
    assert set(labels) == set(labelled.PACKAGES) and len(texts) > 600
    assert all(len(t) >= labelled.MIN_CHARS for t in texts)
    sets = labelled.load(_data("docstrings"))
    assert sets.names == tuple(sorted(labelled.PACKAGES)) and sets.info["eval_examples"] == round(len(texts) / 4)
    assert len(sets.train_texts) + len(sets.eval_texts) == len(texts)  # split by example
    assert labelled.load(_data("docstrings")) is sets  # cached, fixed split


def test_local_files_csv_jsonl_parquet_and_their_one_line_problems(tmp_path):
    rows = [{"text": f"example {i}", "label": ["pos", "neg"][i % 2]} for i in range(8)]
    (tmp_path / "a.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    (tmp_path / "a.csv").write_text("text,label\n" + "\n".join(f"{r['text']},{r['label']}" for r in rows))
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "a.parquet")
    for source, name in (("json", "a.jsonl"), ("csv", "a.csv"), ("parquet", "a.parquet")):
        assert labelled.problem(_data(source, tmp_path / name)) is None, source
        sets = labelled.load(_data(source, tmp_path / name))
        assert sets.names == ("neg", "pos") and len(sets.train_texts) + len(sets.eval_texts) == 8
    missing = labelled.problem(_data("json", tmp_path / "a.jsonl", label_column="y"))
    assert (
        str(missing)
        == "data.label_column=y: is not a column of " + str(tmp_path / "a.jsonl") + " (row 0 has: text, label)"
    )
    (tmp_path / "one.csv").write_text("text,label\na,x\nb,x\n")
    assert str(labelled.problem(_data("csv", tmp_path / "one.csv"))) == (
        "data.label_column=label: one class only (x): need >= 2"
    )
    (tmp_path / "empty.csv").write_text("text,label\na,x\n  ,y\n")
    assert (
        str(labelled.problem(_data("csv", tmp_path / "empty.csv"))) == "data.text_column=text: row 1 has an empty text"
    )


def test_encode_truncates_and_pads_bytes_with_zero():
    ids = encode(["ab", "abcdef"], 4)
    assert ids.tolist() == [[97, 98, 0, 0], [97, 98, 99, 100]]


def test_a_run_from_before_the_classification_fields_keeps_its_hash_and_lora_counts_only_when_used():
    cfg = composed()
    old = json.loads(json.dumps(cfg))
    old["workload"] = {**LEGACY_WORKLOAD, **old["workload"]}  # a result of then holds the one shared node
    del old["finetune"], old["lora"], old["workload"]["target_accuracy"], old["workload"]["init"]
    del old["data"]["label_column"]
    assert results.config_hash(old) == results.config_hash(cfg)
    assert results.key_fields(old) == results.key_fields(cfg)
    c = composed("workload=classification")
    assert results.config_hash(composed("workload=classification", "lora.rank=4")) == results.config_hash(c)
    lora4, lora16 = (composed("workload=classification", "finetune=lora", f"lora.rank={r}") for r in (4, 16))
    assert results.config_hash(lora4) != results.config_hash(lora16)
    f = results.key_fields(lora4)
    assert (f["finetune"], f["lora_rank"], f["init"], f["data"]) == ("lora", 4, "random", "docstrings")
    assert "decode_tokens" not in f and "-random-lora-r4-" in results.run_slug(lora4)


@pytest.mark.parametrize(
    "args, expected",
    [
        (["data.source=csv", "data.path={bad}"], "data.label_column=label is not valid: one class only (x): need >= 2"),
        (
            ["data.source=csv", "data.path={bad}", "data.text_column=body"],
            "data.text_column=body is not valid: is not a column",
        ),
        (["workload.target_accuracy=1.5"], "workload.target_accuracy=1.5 is not valid: must be in (0, 1]"),
        (["finetune=lora"], "finetune=lora is not valid: adapters on random weights learn nothing useful"),
        (["workload.init=pretrained"], "workload.init=pretrained is not valid: choose one of random, checkpoint"),
    ],
)
def test_bad_classification_input_is_one_line_and_exit_2(tmp_path, args, expected):
    bad = tmp_path / "one.csv"
    bad.write_text("text,label\nsome text,x\nmore text,x\n")
    proc = run_cli("workload=classification", *(a.format(bad=bad) for a in args), cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0], lines
    assert not (tmp_path / "results").exists()


@pytest.mark.e2e
def test_classification_reports_accuracy_and_f1_with_intervals_and_prices_the_target(harness):
    proc, root = harness("sweep=cls", *CLS, "workload.target_accuracy=0.2", "hardware.usd_per_hour=1.0", fast=False)
    assert proc.returncode == 0, proc.stderr
    (r,) = load_results(root / "cls")
    assert r["status"] == "ok", r["reason"]
    q, m = r["quality"], r["metrics"]
    assert q["task"] == "classification" and q["n"] == r["data"]["eval_examples"] > 100
    for name in ("accuracy", "macro_f1"):
        assert 0 <= q[f"{name}_lo"] <= q[name] <= q[f"{name}_hi"] <= 1
    assert [c["label"] for c in q["per_class"]] == r["data"]["labels"] and q["classes"] == 6
    assert sum(c["support"] for c in q["per_class"]) == q["n"]
    assert m["eval_accuracy"] == q["accuracy"] and m["trainable_params"] == m["params"]
    assert m["accuracy_curve"][0][0] == 0 and m["target"]["target_accuracy"] == 0.2
    # 0.2 is above chance for 6 classes, below what a few steps reach: the run stops there and prices it
    assert m["target"]["reached"] and r["cost"]["usd_to_target"] > 0
    assert r["cost"]["usd_to_target"] <= r["cost"]["training_usd"]
    assert r["finetune"] == {**r["finetune"], "method": "full", "init": "random", "adapter_bytes": None}
    assert r["weights"]["kind"] == "random" and r["weights"]["quality_meaningful"] is True
    assert r["energy"]["total_j"] > 0 and m["peak_rss_bytes"] > 0 and m["train_tok_per_s"] > 0
    assert r["key_fields"]["workload"] == "classification" and r["key_fields"]["target_accuracy"] == 0.2


@pytest.mark.e2e
def test_classification_takes_the_training_levers(harness):
    proc, root = harness(
        *("sweep=clev", *CLS, "workload.max_steps=8", "workload.eval_interval=8"),
        *("workload.grad_accum_steps=4", "workload.grad_checkpointing=true"),
        fast=False,
    )
    assert proc.returncode == 0, proc.stderr
    (r,) = load_results(root / "clev")
    assert r["status"] == "ok", r["reason"]
    assert r["levers"] == {**r["levers"], "grad_accum_steps": 4, "micro_batch_size": 4, "checkpointed_layers": 4}
    assert r["key_fields"]["grad_accum_steps"] == 4 and r["key_fields"]["grad_checkpointing"] is True
    assert r["metrics"]["samples_per_s"] > 0 and r["metrics"]["steps"] == 8
    assert "accum=4 ckpt" in proc.stdout


def _wide_local_model(path) -> None:
    """A local causal LM whose parameters, not its activations, dominate memory at batch 2 x 16 tokens: full
    fine-tuning keeps gradients and two AdamW moments of all ~8.6 M of them (~100 MB); LoRA of a few thousand."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=256, hidden_size=512, intermediate_size=2048, num_hidden_layers=2,
                      num_attention_heads=8, num_key_value_heads=8, max_position_embeddings=256)  # fmt: skip
    LlamaForCausalLM(cfg).save_pretrained(path)


@pytest.mark.e2e
def test_lora_trains_fewer_parameters_with_lower_peak_memory_than_full(harness, tmp_path):
    _wide_local_model(tmp_path / "wide")
    args = ["-m", "sweep=ft", "workload=classification", "model=local", f"model.path={tmp_path / 'wide'}"]
    args += ["workload.init=checkpoint", "workload.max_steps=6", "workload.eval_interval=6", "workload.warmup_steps=1"]
    proc, root = harness(
        *args, "batch_size=2", "seq_len=16", "repeats=1", "finetune=full,lora", "lora.rank=4,16", fast=False
    )
    assert proc.returncode == 0, proc.stderr
    runs = load_results(root / "ft")
    by = {(r["key_fields"]["finetune"], r["key_fields"].get("lora_rank")): r for r in runs}
    assert sorted(by, key=str) == [("full", None), ("lora", 16), ("lora", 4)], sorted(by, key=str)  # full once
    for r in runs:
        assert r["status"] == "ok", r["reason"]
        assert r["weights"]["kind"] == "local" and r["finetune"]["init"] == "checkpoint"
    full, r4, r16 = by[("full", None)]["metrics"], by[("lora", 4)]["metrics"], by[("lora", 16)]["metrics"]
    assert full["trainable_params"] == full["params"] > 8_000_000
    assert r4["trainable_params"] < r16["trainable_params"] < full["trainable_params"] / 50
    assert by[("lora", 4)]["finetune"]["target_modules"] == ["q_proj", "v_proj"]
    assert r4["adapter_bytes"] == 4 * r4["trainable_params"]  # fp32 adapters and head
    # gradients + AdamW moments of ~8.6 M parameters (~100 MB) that LoRA does not keep
    for lora in (r4, r16):
        assert lora["peak_rss_bytes"] < full["peak_rss_bytes"] - 50e6, (lora["peak_rss_bytes"], full["peak_rss_bytes"])


def test_a_bert_shaped_encoder_is_built_from_the_preset_numbers_and_takes_lora_on_query_value():
    import torch

    from harness import finetune, models

    cfg = {**models.preset("tiny", arch="bert", hidden_size=64, intermediate_size=128), "num_labels": 3}
    model = models.build_classifier(cfg, torch.float32, "cpu", 0)
    assert type(model).__name__ == "BertForSequenceClassification" and model.config.num_labels == 3
    ids = torch.randint(1, 256, (2, 8))
    assert model(input_ids=ids, attention_mask=torch.ones_like(ids)).logits.shape == (2, 3)
    lora = {"rank": 4, "alpha": 16, "dropout": 0.0, "target_modules": None}
    _, section = finetune.apply(model, {"finetune": "lora", "workload": {"init": "checkpoint"}, "lora": lora})
    assert section["target_modules"] == ["query", "value"] and section["trainable_params"] < section["total_params"]
