"""Harness-trained weights: the cache key, the cache itself (a second run trains nothing), determinism (the same
seed gives the same weights), and a training run's own checkpoint loaded as a local model."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from conftest import FAST, REPO, load_results, run_cli

from harness import checkpoints, models, pretrain

# a budget of 4 steps: seconds, not a useful model; enough to test the plumbing
SHORT = ["model.train_steps=4", *FAST]


def test_the_key_follows_what_determines_the_weights_and_nothing_else():
    tiny = models.preset("tiny")
    base = checkpoints.key(tiny)
    assert base == checkpoints.key({**tiny, "name": "renamed"})  # the name does not change the weights
    assert base != checkpoints.key({**tiny, "hidden_size": 64})
    assert base != checkpoints.key({**tiny, "train_steps": tiny["train_steps"] + 1})
    assert len(base) == 16


def test_the_cache_root_is_harness_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path))
    tiny = models.preset("tiny")
    assert (
        checkpoints.checkpoint_path(tiny)
        == tmp_path / "checkpoints" / checkpoints.key(tiny) / "training" / "checkpoint"
    )


def _cli(cache, *args, cwd):
    env = dict(os.environ, HARNESS_CACHE=str(cache))
    return subprocess.run(
        [sys.executable, "-m", "harness", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=400
    )


def test_trained_once_then_reused_and_deterministic(tmp_path, monkeypatch):
    cache_a, cache_b = tmp_path / "a", tmp_path / "b"
    first = _cli(cache_a, *SHORT, f"results_dir={tmp_path / 'r1'}", cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-2000:]
    assert "training tiny once" in first.stdout
    second = _cli(cache_a, *SHORT, "seed=1", f"results_dir={tmp_path / 'r2'}", cwd=tmp_path)
    assert second.returncode == 0 and "training tiny once" not in second.stdout  # reused, not trained again
    [folder] = list((cache_a / "checkpoints").iterdir())
    train = json.loads((folder / "training" / "result.json").read_text())
    assert train["status"] == "ok" and train["key_fields"]["workload"] == "training"
    assert train["metrics"]["tokens_trained"] == 4 * checkpoints.RECIPE["batch_size"] * checkpoints.RECIPE["seq_len"]
    ckpt = folder / "training" / "checkpoint"
    assert {"model.safetensors", "config.json", "tokenizer_spec.json"} <= {p.name for p in ckpt.iterdir()}
    [run] = load_results(tmp_path / "r2")
    w = run["weights"]
    assert w["kind"] == "trained" and w["checkpoint"] == str(ckpt) and w["checkpoint_bytes"] > 0
    assert w["training"]["tokens"] == train["metrics"]["tokens_trained"]
    assert w["training"]["wall_s"] == train["timing"]["run_wall_s"] and w["training"]["energy_j"] > 0
    assert run["quality"]["quality_meaningful"] is True and run["quality"]["verdict"] == "pass"  # fp32: itself
    # the same seed and settings in another cache (trained directly, no inference run): the same weights
    monkeypatch.setenv("HARNESS_CACHE", str(cache_b))
    again = pretrain.ensure(_composed("model.train_steps=4"), say=lambda *a, **k: None)
    assert checkpoints.folder(_composed("model.train_steps=4")["model"]).name == folder.name
    assert again["checkpoint"]["sha256"] == train["checkpoint"]["sha256"]
    assert again["checkpoint"]["sha256"] == checkpoints.file_sha256(ckpt / "model.safetensors")


def _composed(*overrides: str) -> dict:
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from harness import app
    from harness.config import CONF_DIR

    app.register()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("config", overrides=[*overrides, "sweep=x"])
    return OmegaConf.to_container(cfg, resolve=True)


def test_a_training_run_saves_its_weights_loadable_as_a_local_model(tmp_path):
    proc = run_cli(
        "workload=training",
        "workload.max_steps=4",
        "workload.eval_interval=2",
        "workload.eval_batches=1",
        "workload.save_checkpoint=true",
        "batch_size=2",
        "seq_len=32",
        f"results_dir={tmp_path / 'train'}",
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    [train] = load_results(tmp_path / "train")
    ckpt = train["checkpoint"]["path"]
    assert ckpt.startswith(str(tmp_path / "train")) and train["checkpoint"]["size_bytes"] > 0
    proc = run_cli("model=local", f"model.path={ckpt}", *FAST, f"results_dir={tmp_path / 'inf'}", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    [inf] = load_results(tmp_path / "inf")
    assert inf["status"] == "ok" and inf["weights"]["kind"] == "local" and inf["quality"]["verdict"] == "pass"
    assert inf["metrics"]["params"] == train["metrics"]["params"]


def test_training_from_trained_weights_is_refused_in_one_line(tmp_path):
    proc = run_cli("workload=training", "model.weights=trained", cwd=tmp_path)
    assert proc.returncode == 2
    assert "model.weights=trained is not valid: training starts from the seeded initialisation" in proc.stderr
    assert REPO.is_dir()


def test_the_training_run_keeps_neither_the_inference_runs_memory_limit_nor_its_timeout():
    # an oom of the checkpoint's training under the inference run's limit would stand as that run's
    # complete `oom` result, never retried (seen in test_reliability_e2e's shared sweep)
    from synthetic import config as synthetic_config

    config = synthetic_config(memory_limit_bytes=200_000_000, timeout_s=5.0)
    config["model"] = {**models.preset("tiny"), "weights": "trained"}
    train = checkpoints.training_config(config)
    assert train["memory_limit_bytes"] is None and config["memory_limit_bytes"] == 200_000_000
    assert train["timeout_s"] == checkpoints.TRAIN_TIMEOUT_S and train["workload"]["save_checkpoint"] is True


def test_trained_weights_load_wherever_this_process_holds_the_model():
    """model.weights=trained means the cached checkpoint for inference and for in-process serving (a bug
    let serving measure random weights under a `trained` key); a remote server holds its own weights,
    and a training run always starts from the seed."""

    def cfg(workload, engine="transformers", weights="trained"):
        return {"model": {"weights": weights}, "workload": {"name": workload}, "serving": {"engine": engine}}

    assert checkpoints.is_trained(cfg("inference"))
    assert checkpoints.is_trained(cfg("serving"))
    assert not checkpoints.is_trained(cfg("serving", engine="openai"))
    assert not checkpoints.is_trained(cfg("training"))
    assert not checkpoints.is_trained(cfg("inference", weights="random"))
