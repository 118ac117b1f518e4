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
    for status, complete in [("ok", True), ("oom", True), ("unsupported", True), ("timeout", False), ("error", False)]:
        assert results.is_complete(results.make_result(cfg, status, None, {}), cfg) is complete
    other = _config("cost.mode=onprem")  # same key, another configuration
    assert results.canonical_key(other) == results.canonical_key(cfg)
    assert not results.is_complete(results.make_result(cfg, "ok", None, {}), other)
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


def test_load_ignores_foreign_and_broken_files(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "result.json").write_text("{not json")
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "result.json").write_text('{"schema": "other/1"}')
    results.write_atomic(tmp_path / "c" / "result.json", {"schema": results.SCHEMA, "key": "k"})
    assert [p.parent.name for p, _ in results.iter_results(tmp_path)] == ["c"]
