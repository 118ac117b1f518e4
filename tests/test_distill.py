"""workload=distill: the loss, the paired difference, bad input, keys, and one CLI run end to end."""

from __future__ import annotations

import json

import pytest
from composed import resolved as composed
from conftest import load_results, run_cli

from harness import distill, results, taskmetrics

# seconds on 2 cores: a tiny student, a tiny teacher trained first, short byte sequences
# small enough for seconds on 2 cores (the figures at a larger budget are in docs/classification.md)
DISTILL = ["workload=distill", "model=tiny", "workload.max_steps=12", "workload.warmup_steps=2", "workload.lr=3e-3",
           "distill.teacher_steps=20", "batch_size=8", "seq_len=16", "repeats=2"]  # fmt: skip


def test_the_loss_is_cross_entropy_at_alpha_0_and_zero_kl_when_student_is_teacher():
    import torch
    import torch.nn.functional as F

    s, y = torch.tensor([[2.0, 0.0, -1.0], [0.0, 1.0, 0.5]]), torch.tensor([0, 2])
    assert distill.loss(s, s + 3.0, y, 2.0, 0.0) == pytest.approx(float(F.cross_entropy(s, y)))
    assert distill.loss(s, s, y, 4.0, 1.0) == pytest.approx(0.0, abs=1e-6)
    assert distill.loss(s, -s, y, 1.0, 1.0) > 0


def test_the_paired_difference_holds_the_per_example_wins_and_losses():
    labels = [0] * 100
    a, b = [0] * 100, [0] * 80 + [1] * 20  # a is right on 20 examples b misses, never the other way
    d = taskmetrics.paired_difference(labels, a, b, 1000)
    assert d["accuracy"] == pytest.approx(0.2) and 0.1 < d["accuracy_lo"] < 0.2 < d["accuracy_hi"] < 0.3
    assert distill.verdict(d).startswith("distilled better than alone: +0.200 accuracy")
    same = taskmetrics.paired_difference(labels, b, b, 1000)
    assert (same["accuracy_lo"], same["accuracy_hi"]) == (0.0, 0.0)  # paired: identical predictions, no noise
    assert distill.verdict(same).startswith("no difference shown")


def test_runs_from_before_distill_keep_their_hash_and_distill_settings_are_its_key():
    cfg = composed()
    old = json.loads(json.dumps(cfg))
    del old["teacher"], old["distill"]
    assert results.config_hash(old) == results.config_hash(cfg)
    d = composed("workload=distill", "teacher=tiny", "distill.alpha=0.9")
    f = results.key_fields(d)
    assert (f["teacher"], f["alpha"], f["temperature"]) == ("tiny", 0.9, 2.0)
    assert results.config_hash(d) != results.config_hash(composed("workload=distill", "teacher=tiny"))


@pytest.mark.parametrize(
    "args, expected",
    [
        (["teacher=/no/such/dir"], "teacher=/no/such/dir is not valid: no config.json there"),
        (["distill.alpha=1.5"], "distill.alpha=1.5 is not valid: must be in [0, 1]"),
        (["distill.temperature=0"], "distill.temperature=0.0 is not valid: must be > 0"),
        (["workload=classification", "distill.alpha=0.2"], "distill.alpha=0.2 is not valid: is used only by"),
    ],
)
def test_bad_distill_input_is_one_line_and_exit_2(tmp_path, args, expected):
    proc = run_cli(*(["workload=distill"] if args[0] != "workload=classification" else []), *args, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0], lines
    assert not (tmp_path / "results").exists()


@pytest.mark.e2e
def test_distill_reports_both_students_their_paired_difference_and_the_teachers_cost(harness):
    proc, root = harness("sweep=dst", *DISTILL, "teacher=tiny", "hardware.usd_per_hour=1.0", fast=False)
    assert proc.returncode == 0, proc.stderr
    (r,) = load_results(root / "dst")
    assert r["status"] == "ok", r["reason"]
    q, m, d, c = r["quality"], r["metrics"], r["distill"], r["cost"]
    assert q["task"] == "classification" and q["n"] == d["difference"]["n"] == r["data"]["eval_examples"]
    for fig in (q, d["alone"]):  # the distilled student, the student alone: accuracy and macro-F1 with intervals
        for name in ("accuracy", "macro_f1"):
            assert 0 <= fig[f"{name}_lo"] <= fig[name] <= fig[f"{name}_hi"] <= 1
    diff = d["difference"]
    assert diff["accuracy"] == pytest.approx(q["accuracy"] - d["alone"]["accuracy"])
    assert diff["accuracy_lo"] <= diff["accuracy"] <= diff["accuracy_hi"]
    assert m["distill_accuracy_gain"] == diff["accuracy"] and d["verdict"] == q["distill_verdict"]
    assert d["teacher"]["kind"] == "preset" and d["teacher"]["trained_in_run"]
    # the teacher's labelling: measured time and dollars; energy where a counter reads mid-window (none here)
    assert d["labelling"]["examples"] == r["data"]["train_examples"] and m["teacher_label_s"] > 0
    assert c["teacher_label_usd"] == pytest.approx(m["teacher_label_s"] / 3600)
    assert c["training_usd"] == pytest.approx(c["teacher_train_usd"] + c["teacher_label_usd"] + c["distill_train_usd"])
    assert d["labelling"]["energy_j"] is None or d["labelling"]["energy_j"] > 0
    print(f"\ndistilled {q['accuracy']:.3f} [{q['accuracy_lo']:.3f}, {q['accuracy_hi']:.3f}] "
          f"alone {d['alone']['accuracy']:.3f} [{d['alone']['accuracy_lo']:.3f}, {d['alone']['accuracy_hi']:.3f}] "
          f"teacher {d['teacher_accuracy']:.3f}; {d['verdict']}; label {m['teacher_label_s']:.3f} s")  # fmt: skip


def _saved_run(run_dir, workload: str, usd: float, joules: float, weights: dict, **sections) -> str:
    """A run folder as a save_checkpoint run leaves it: result.json (the real writer) beside checkpoint/."""
    from synthetic import ENV, config

    from harness import checkpoints

    ckpt = run_dir / checkpoints.CHECKPOINT_DIR
    ckpt.mkdir(parents=True)
    (ckpt / "model.safetensors").write_bytes(run_dir.name.encode())
    section = {"path": str(ckpt), "sha256": checkpoints.file_sha256(ckpt / "model.safetensors")}
    figures = {"metrics": {"eval_accuracy": 0.5}, "cost": {"training_usd": usd}, "energy": {"total_j": joules}}
    cfg = config(workload__name=workload)
    rec = results.make_result(cfg, "ok", None, ENV, weights=weights, checkpoint=section, **figures, **sections)
    results.write_atomic(run_dir / results.RESULT_FILE, rec)
    return str(ckpt)


def test_a_saved_classifier_or_distilled_student_carries_what_it_cost_to_make_chain_included(tmp_path):
    from harness import checkpoints

    pretrained = {"kind": "trained", "training": {"usd": 0.5, "energy_j": 50.0}}
    teacher = _saved_run(tmp_path / "cls", "classification", 1.0, 100.0, pretrained)
    made = checkpoints.made_by(teacher)
    assert (made["total_usd"], made["total_energy_j"], made["total_complete"]) == (1.5, 150.0, True)
    teacher_section = {"teacher": {"kind": "checkpoint", "path": teacher, "made_by": made}}
    student = _saved_run(tmp_path / "dst", "distill", 0.25, 20.0, {"kind": "random"}, distill=teacher_section)
    w = checkpoints.provenance({"model": {"path": student}, "workload": {"name": "inference"}, "seed": 0})
    assert w["kind"] == "local" and w["made_by"]["workload"] == "distill"
    assert w["total_usd"] == pytest.approx(1.75) and w["total_energy_j"] == pytest.approx(170.0)
    (tmp_path / "dst" / "checkpoint" / "model.safetensors").write_bytes(b"other weights")  # not what the run saved
    assert checkpoints.made_by(student) is None
