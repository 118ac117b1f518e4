import json
import os
from pathlib import Path

import pytest
from composed import resolved, warm

from harness import results


def _config(*overrides):
    """The resolved config of `overrides`, composed once per set of overrides (a fresh copy each call)."""
    return resolved(*overrides)


warm([(), ("workload=training",)])


def test_key_ignores_how_a_run_is_measured_but_not_what_is_measured():
    base = results.canonical_key(_config())
    assert base == results.canonical_key(_config("repeats=7", "sweep=other", "timeout_s=5", "workload.min_iters=9"))
    assert base != results.canonical_key(_config("precision=bf16"))
    assert base != results.canonical_key(_config("model.hidden_size=256"))  # same preset name, other model
    assert base.startswith("workload=inference model=tiny precision=fp32 batch_size=1 seq_len=128 decode_tokens=32")


def test_slug_is_one_safe_path_component():
    slug = results.run_slug(_config("model=local", "model.path=/a b/c"))
    assert "/" not in slug and " " not in slug
    assert results.run_slug(_config()).startswith("inference-tiny-fp32-bs1-seq128-dec32-g1-s0-auto-")


def test_make_result_rejects_unknown_status_and_keeps_nulls():
    cfg = _config()
    r = results.make_result(cfg, "oom", "too big", {"x": 1})
    assert r["schema"] == results.SCHEMA and r["energy"] is None and r["metrics"] == {}
    with pytest.raises(ValueError):
        results.make_result(cfg, "crashed", None, {})


def test_is_complete_only_for_final_statuses_of_the_same_config():
    cfg = _config()
    statuses = [("ok", True), ("oom", True), ("unsupported", True), ("timeout", False), ("error", False)]
    for status, complete in [*statuses, ("killed", False)]:
        r = results.make_result(cfg, status, None, {}, metrics={"decode_tok_per_s": 1.0})
        assert results.is_complete(r, cfg) is complete
    # `ok` without metrics is damaged, not complete
    assert not results.is_complete(results.make_result(cfg, "ok", None, {}), cfg)
    other = _config("cost.mode=onprem")  # same key, another configuration
    assert results.canonical_key(other) == results.canonical_key(cfg)
    assert not results.is_complete(results.make_result(cfg, "ok", None, {}, metrics={"x": 1}), other)
    assert not results.is_complete(None, cfg)


def test_slug_differs_whenever_the_config_does():
    slugs = {results.run_slug(_config(o)) for o in ("cost.mode=onprem", "energy.enabled=false", "repeats=5", "seed=0")}
    assert len(slugs) == 4
    assert results.run_slug(_config("sweep=a", "timeout_s=9")) == results.run_slug(_config("sweep=b"))


def test_write_atomic_replaces_whole_files_and_leaves_no_temporaries(tmp_path):
    path = tmp_path / "d" / "result.json"
    results.write_atomic(path, {"schema": results.SCHEMA, "a": 1})
    results.write_atomic(path, {"schema": results.SCHEMA, "a": 2})
    assert json.loads(path.read_text())["a"] == 2
    assert os.listdir(path.parent) == ["result.json"]
    with pytest.raises(ValueError):  # NaN is not JSON: the old file must survive a failed write
        results.write_atomic(path, {"a": float("nan")})
    assert json.loads(path.read_text())["a"] == 2 and os.listdir(path.parent) == ["result.json"]


def _damage(tmp_path):
    """One good result (c) beside every kind of damaged one, each built from a real result record."""
    good = results.make_result(_config(), "ok", None, {}, metrics={"decode_tok_per_s": 3.0})
    text = json.dumps(good)
    broken = {
        "a": text[: len(text) // 2],  # truncated
        "b": json.dumps({**good, "schema": "other/1"}),  # foreign
        "d": json.dumps({k: v for k, v in good.items() if k != "key_fields"}),  # partial
        "e": json.dumps({**good, "metrics": []}),  # a field of the wrong type
        "f": json.dumps({**good, "metrics": {}}),  # ok without metrics
        "g": "",  # empty
        "h": "[1, 2]",  # JSON, not an object
    }
    for name, content in broken.items():
        (tmp_path / name).mkdir()
        (tmp_path / name / "result.json").write_text(content)
    results.write_atomic(tmp_path / "c" / "result.json", good)


def test_load_names_foreign_and_broken_files(tmp_path, capsys):
    _damage(tmp_path)
    assert [p.parent.name for p, _ in results.iter_results(tmp_path)] == ["c"]
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 7 and all(line.startswith("harness: warning: ") for line in lines)
    whys = ["truncated", "schema 'other/1'", "'key_fields' is missing", "'metrics' is list"]
    whys += ["'ok' without metrics", "empty", "not a JSON object"]
    for n, why, line in zip("abdefgh", whys, lines, strict=True):
        assert f"/{n}/result.json: damaged result (" in line and why in line, line
    damaged = []
    assert len(list(results.iter_results(tmp_path, damaged))) == 1 and len(damaged) == 7
    assert capsys.readouterr().err == ""  # collected, not printed


def test_training_key_holds_the_training_fields_and_the_data_source():
    cfg = _config("workload=training")
    f = results.key_fields(cfg)
    assert list(f) == [
        "workload", "model", "precision", "batch_size", "seq_len", "max_steps", "target_eval_loss", "data",
        "gpus", "seed", "device", "arch",
    ]  # fmt: skip
    assert (f["workload"], f["data"], f["max_steps"]) == ("training", "pydoc", cfg["workload"]["max_steps"])
    assert "decode_tokens" not in f
    base = results.canonical_key(cfg)
    for override in ("data.source=synthetic", "workload.max_steps=7", "workload.target_eval_loss=2.5", "gpus=2"):
        assert results.canonical_key(_config("workload=training", override)) != base, override
    assert "data=synthetic" in results.canonical_key(_config("workload=training", "data.source=synthetic"))
    assert results.run_slug(cfg).startswith("training-tiny-fp32-bs8-seq128-steps100-g1-s0-auto-")


def test_inference_key_holds_every_measured_field():
    base = results.canonical_key(_config())
    for override in ("workload.decode_tokens=8", "seed=1", "hardware.device=cpu", "batch_size=2", "seq_len=64"):
        assert results.canonical_key(_config(override)) != base, override
    assert results.key_fields(_config("seed=3"))["seed"] == 3
    assert results.key_fields(_config())["arch"] == results.key_fields(_config("sweep=x"))["arch"]
    assert len(results.key_fields(_config())["arch"]) == 8


def test_config_hash_ignores_only_the_volatile_settings():
    base = results.config_hash(_config())
    for override in ("resume=false", "timeout_s=5", "results_dir=elsewhere", "sweep=x", "feasibility.force=true"):
        assert results.config_hash(_config(override)) == base, override
    # a memory limit decides whether a run can succeed: part of what the run is (issue 11)
    for override in ("repeats=4", "quality.enabled=false", "energy.pue=1.2", "memory_limit_bytes=1000000"):
        assert results.config_hash(_config(override)) != base, override
    assert len(base) == 8 and int(base, 16) >= 0
    assert results.STATUSES == ("ok", "oom", "unsupported", "timeout", "error", "killed", "predicted-oom")
    assert results.COMPLETE_STATUSES == ("ok", "oom", "unsupported")


def test_is_complete_needs_the_same_key_and_hash(tmp_path):
    cfg = _config()
    r = results.make_result(cfg, "ok", None, {}, metrics={"decode_tok_per_s": 1.0})
    assert results.is_complete(r, cfg)
    assert not results.is_complete(results.make_result(cfg, "ok", None, {}), cfg)  # ok without metrics: damaged
    assert not results.is_complete({**r, "key": "other"}, cfg)
    assert not results.is_complete({**r, "config_hash": "00000000"}, cfg)
    assert not results.is_complete({}, cfg)
    r2 = results.make_result(cfg, "error", "boom", {"h": 1}, traceback=["x"], cost={"usd": 1})
    assert (
        r2["traceback"] == ["x"]
        and r2["cost"] == {"usd": 1}
        and r2["reason"] == "boom"
        and r2["environment"] == {"h": 1}
    )
    assert r2["quality"] is None and r2["repeats"] == [] and r2["warnings"] == [] and r2["timing"] == {}


def test_hydra_node_and_volatile_keys_stay_out_of_the_hash_and_the_slug_is_sanitized():
    cfg = _config()
    assert results.config_hash({**cfg, "hydra": {"run": {"dir": "x"}}}) == results.config_hash(cfg)
    odd = _config("model.name='my model/v2'")
    assert results.run_slug(odd).startswith("inference-my_model_v2-fp32-")
    assert results.canonical_key(odd).startswith("workload=inference model=my model/v2 precision=fp32")


def test_written_results_are_shared_readable_indented_json(tmp_path):
    path = tmp_path / "result.json"
    results.write_atomic(path, {"schema": results.SCHEMA, "a": [1]})
    assert path.read_text() == '{\n  "schema": "harness.result/1",\n  "a": [\n    1\n  ]\n}\n'
    assert path.stat().st_mode & 0o777 == 0o644
    assert json.loads(path.read_text()) == {"schema": results.SCHEMA, "a": [1]}
    path.write_text("[1, 2]")
    assert results.load(path) is None and results.load(tmp_path / "missing.json") is None


def test_write_atomic_writes_a_hidden_temporary_beside_the_target_then_renames_it(tmp_path, monkeypatch):
    path = tmp_path / "sweep" / "run" / "result.json"  # two missing folders: both are made
    renames = []
    real_replace = os.replace
    monkeypatch.setattr(results.os, "replace", lambda src, dst: (renames.append((src, dst)), real_replace(src, dst)))
    results.write_atomic(path, {"schema": results.SCHEMA})
    ((src, dst),) = renames
    # the same folder (so the rename is atomic: one filesystem), a hidden name that no reader globs for
    assert Path(src).parent == path.parent and Path(dst) == path
    assert Path(src).name.startswith(".result.json.") and Path(src).name.endswith(".tmp")
    assert json.loads(path.read_text()) == {"schema": results.SCHEMA}


def test_what_is_wrong_with_a_damaged_result_is_said_exactly():
    cfg = _config()
    good = results.make_result(cfg, "ok", None, {}, metrics={"decode_tok_per_s": 1.0})
    assert results.problem(good) is None
    assert results.problem([good]) == "not a JSON object (list)"
    assert results.problem(good | {"status": "crashed"}) == (
        "status 'crashed' is not one of ok, oom, unsupported, timeout, error, killed, predicted-oom"
    )
    assert results.problem(good | {"metrics": {}}) == "status 'ok' without metrics"


def test_a_serving_slug_names_the_engine_the_arrival_and_the_load():
    open_loop = results.run_slug(_config("workload=serving"))
    closed = results.run_slug(_config("workload=serving", "serving.arrival=closed", "serving.concurrency=3"))
    assert open_loop.startswith("serving-tiny-fp32-bs1-seq128-transformers-poisson-r4.0-g1-s0-auto-")
    assert closed.startswith("serving-tiny-fp32-bs1-seq128-transformers-closed-c3-g1-s0-auto-")
    search = results.run_slug(_config("workload=serving", "serving.search=max_rate"))
    assert search.startswith("serving-tiny-fp32-bs1-seq128-transformers-maxrate-g1-s0-auto-"), search


def test_an_empty_record_holds_every_documented_section_in_order_with_nulls_not_zeros():
    r = results.make_result(_config(), "timeout", "over timeout_s=5", {"python": "3.11"})
    assert list(r) == [
        "schema", "key", "key_fields", "config_hash", "status", "reason", "created_at", "config", "environment",
        "model", "precision", "hardware", "warnings", "metrics", "repeats", "timing", "energy", "cost", "quality",
        "weights",
    ]  # fmt: skip
    assert [r[k] for k in ("model", "precision", "hardware", "energy", "cost", "quality", "weights")] == [None] * 7
    assert (r["warnings"], r["metrics"], r["repeats"], r["timing"]) == ([], {}, [], {})
    assert (r["status"], r["reason"], r["environment"]) == ("timeout", "over timeout_s=5", {"python": "3.11"})
    assert r["created_at"].endswith("+00:00") and len(r["created_at"]) == len("2026-12-02T05:00:00+00:00")
    top = Path(__file__).parents[1].joinpath("docs", "results.md").read_text().split("## Top level")[1]
    assert all(f"| `{k}` |" in top.split("\n## ")[0] for k in r), "every top-level field is in docs/results.md"
    # given sections fill their place; extras (traceback, launcher) follow; the defaults are fresh objects
    r = results.make_result(_config(), "error", "boom", {}, metrics={"x": 1}, traceback=["t"], model={"n": 1})
    assert (r["metrics"], r["model"], list(r)[-1]) == ({"x": 1}, {"n": 1}, "traceback")
    results.make_result(_config(), "oom", None, {})["warnings"].append("w")
    assert results.make_result(_config(), "oom", None, {})["warnings"] == []


def test_an_unknown_status_is_named_with_the_valid_ones():
    with pytest.raises(ValueError, match=r"status='crashed' is not one of .*'ok'.*'oom'"):
        results.make_result(_config(), "crashed", None, {})


def test_the_arch_hash_covers_the_model_numbers_but_not_its_name_nor_unused_training_budget():
    arch = lambda *o: results.key_fields(_config(*o))["arch"]
    random = arch("model.weights=random")
    cfg = _config("model.weights=random")
    cfg["model"]["name"] = "renamed"  # the same numbers under another preset name: the same model
    assert results.key_fields(cfg)["arch"] == random and results.key_fields(cfg)["model"] == "renamed"
    # weights=random: the (unused) training budget stays out, and a config from before `weights` existed matches
    assert arch("model.weights=random", "model.train_steps=7") == random
    old = _config("model.weights=random")
    del old["model"]["weights"], old["model"]["train_steps"]
    assert results.key_fields(old)["arch"] == random
    # trained weights (the default) are another run, and so is another training budget for them
    trained = arch()
    assert trained != random and arch("model.train_steps=7") != trained
    cfg = _config()
    cfg["model"]["name"] = "renamed"
    assert results.key_fields(cfg)["arch"] == trained


def test_a_memory_limit_joins_the_key_only_when_set():
    assert "memory_limit_bytes" not in results.key_fields(_config())
    limited = results.key_fields(_config("memory_limit_bytes=1073741824"))
    assert limited["memory_limit_bytes"] == 2**30 and list(limited)[-1] == "memory_limit_bytes"
    assert results.canonical_key(_config("memory_limit_bytes=1073741824")).endswith(" memory_limit_bytes=1073741824")


def test_a_slug_keeps_upper_case_and_replaces_only_unsafe_characters():
    cfg = _config()
    cfg["model"]["name"] = "Qwen2.5 Mini/v2"
    slug = results.run_slug(cfg)
    assert slug.startswith("inference-Qwen2.5_Mini_v2-fp32-bs1-"), slug


def test_a_damaged_file_says_whether_it_is_empty_or_truncated_and_is_left_out_in_one_line(tmp_path, capsys):
    good = results.make_result(_config(), "ok", None, {}, metrics={"decode_tok_per_s": 1.0})
    results.write_atomic(tmp_path / "a" / results.RESULT_FILE, good)
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / results.RESULT_FILE).write_text("  \n")
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / results.RESULT_FILE).write_text('{"schema": "harness.res')
    empty, why_empty = results.read(tmp_path / "b" / results.RESULT_FILE)
    assert empty is None and why_empty.startswith("empty (Expecting value")
    _, why_cut = results.read(tmp_path / "c" / results.RESULT_FILE)
    assert why_cut.startswith("truncated or not JSON (Unterminated string")
    assert results.read(tmp_path / "nothing" / results.RESULT_FILE) == (None, None)
    damaged = []
    assert [p.parent.name for p, _ in results.iter_results(tmp_path, damaged)] == ["a"]
    assert damaged == [
        (tmp_path / "b" / results.RESULT_FILE, why_empty),
        (tmp_path / "c" / results.RESULT_FILE, why_cut),
    ]
    assert capsys.readouterr().err == ""  # collected, not printed
    assert len(list(results.iter_results(tmp_path))) == 1
    assert capsys.readouterr().err.splitlines() == [
        f"harness: warning: {tmp_path / 'b' / results.RESULT_FILE}: damaged result ({why_empty}); left out",
        f"harness: warning: {tmp_path / 'c' / results.RESULT_FILE}: damaged result ({why_cut}); left out",
    ]


def test_the_config_hash_does_not_depend_on_key_order_and_holds_any_value():
    cfg = _config()
    reordered = {k: cfg[k] for k in reversed(list(cfg))}
    reordered["model"] = {k: cfg["model"][k] for k in reversed(list(cfg["model"]))}
    assert list(reordered) != list(cfg) and results.config_hash(reordered) == results.config_hash(cfg)
    # a value JSON has no type for (a path given in Python, not through Hydra) is hashed by its text
    with_path = dict(cfg, data=dict(cfg["data"], path=Path("/data/corpus.txt")))
    as_text = dict(cfg, data=dict(cfg["data"], path="/data/corpus.txt"))
    assert results.config_hash(with_path) == results.config_hash(as_text) != results.config_hash(cfg)


def test_a_draft_joins_the_key_and_the_slug_only_when_set():
    base, cfg = _config(), _config("workload.draft_model=small", "workload.draft_tokens=6")
    before = {k: v for k, v in base.items()}
    before["workload"] = {k: v for k, v in base["workload"].items() if k not in ("draft_model", "draft_tokens")}
    # a run without a draft keeps the key and config_hash it had before the fields existed
    assert results.config_hash(base) == results.config_hash(before)
    assert results.canonical_key(base) == results.canonical_key(before) and "draft" not in results.run_slug(base)
    assert results.canonical_key(cfg) == results.canonical_key(base).replace(
        " gpus=", " draft_model=small draft_tokens=6 gpus="
    )
    assert "-dec32-draftsmallk6-" in results.run_slug(cfg) and results.config_hash(cfg) != results.config_hash(base)
