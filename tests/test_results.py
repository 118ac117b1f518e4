import json
import os

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from harness import app, results
from harness.config import CONF_DIR


def _config(*overrides):
    app.register()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return OmegaConf.to_container(compose("config", overrides=list(overrides)), resolve=True)


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
