"""The memory model (harness/memory_model.py): known answers on the presets, and the predicted-oom path."""

from __future__ import annotations

import json

import pytest
import torch
from composed import resolved

from harness import memory_model, models

MIB = 2**20


@pytest.mark.parametrize("preset, params", [("tiny", 1_115_264), ("small", None), ("base", None)])
def test_parameter_count_is_the_built_models(preset, params):
    cfg = models.preset(preset)
    built = models.describe(models.build(cfg, torch.float32, "cpu", 0))["params"]
    assert sum(memory_model.param_counts(cfg)) == built == (params or built)


def test_known_answers_on_tiny():
    cfg = resolved("model=tiny", "batch_size=8")  # seq_len 128, decode_tokens 32, d 128, I 512, 4 layers
    p = memory_model.predict(cfg)
    assert p.weights_bytes == 1_115_264 * 4
    assert p.kv_cache_bytes == 8 * 160 * 2 * 4 * 128 * 4  # batch × tokens × (k, v) × layers × d × fp32
    assert p.activations_bytes == 8 * 128 * 3 * 512 * 4 + p.kv_cache_bytes  # MLP peak + the cache's growth copy
    assert (p.gradients_bytes, p.optimizer_bytes) == (0, 0)
    bf16 = memory_model.predict(resolved("model=tiny", "batch_size=8", "precision=bf16"))
    assert bf16.weights_bytes == 1_115_264 * 2 and bf16.kv_cache_bytes == p.kv_cache_bytes // 2
    # int8 as torchao stores it: 1 byte per linear weight, a scale per output row, embedding and norms in fp32
    # (cuda: from bf16); on CPU the freed fp32 copy of the linears stays resident
    linear, emb, other = memory_model.param_counts(cfg["model"])
    rows = 4 * (128 * 4 + 2 * 512 + 128) + 256
    assert memory_model.predict(resolved("model=tiny", "precision=int8"), "cuda").weights_bytes == (
        linear + rows * 2 + (emb + other) * 2
    )
    assert memory_model.predict(resolved("model=tiny", "precision=int8")).weights_bytes == (
        linear + rows * 4 + (emb + other) * 4 + linear * 4
    )


def test_training_holds_gradients_and_adamw_state():
    p = memory_model.predict(resolved("model=small", "workload=training", "batch_size=8"))
    n = p.params
    assert (p.weights_bytes, p.gradients_bytes, p.optimizer_bytes) == (4 * n, 4 * n, 8 * n)
    bf16_cfg = resolved("model=small", "workload=training", "batch_size=8", "precision=bf16")
    bf16 = memory_model.predict(bf16_cfg)
    assert bf16.weights_bytes == 4 * n + 2 * memory_model.param_counts(resolved("model=small")["model"])[0]
    # per token per layer: 10·d + 4·I saved activations (fp32 on CPU) + 2 · heads · seq_len attention (fp32)
    per_token = 6 * ((10 * 256 + 4 * 1024) * 4 + 2 * 8 * 128 * 4) + 2 * 256 * 4
    assert p.activations_bytes == bf16.activations_bytes == 8 * 128 * per_token  # CPU autocast: measured as fp32
    assert memory_model.predict(bf16_cfg, "cuda").activations_bytes < p.activations_bytes


def test_limits_come_from_memory_limit_bytes_and_the_gpu_catalog():
    cfg = resolved("model=7b", "hardware=t4", "memory_limit_bytes=100000000000")
    sec = memory_model.feasibility(cfg)
    assert sec["device"] == "cuda" and sec["limit_bytes"] == 16_000_000_000 and sec["fits"] is False
    assert sec["limit_source"].startswith("hardware.memory_gb=16")
    assert memory_model.feasibility(resolved("model=tiny"))["fits"] is None  # nothing to hold it against
    assert memory_model.feasibility(resolved("model=7b", "hardware=h200"))["fits"] is True


def test_a_run_predicted_not_to_fit_is_recorded_not_launched(harness):
    proc, root = harness("memory_limit_bytes=1000000", "sweep=feas")
    assert proc.returncode == 0, proc.stderr
    (path,) = root.glob("feas/*/result.json")
    r = json.loads(path.read_text())
    assert r["status"] == "predicted-oom" and r["reason"].startswith("predicted peak ")
    assert "above 1 MiB (memory_limit_bytes); not launched (feasibility.force=true runs it)" in r["reason"]
    assert r["feasibility"]["fits"] is False and r["feasibility"]["predicted"]["total_bytes"] > 1_000_000
    assert not (path.parent / "worker.log").exists()
    assert "predicted-oom" in proc.stdout


def test_the_process_baseline_is_added_measured_and_cached(tmp_path, monkeypatch):
    cfg = resolved("model=tiny", "batch_size=8")
    bare, with_base = memory_model.predict(cfg), memory_model.predict(cfg, "cpu", 500 * MIB)
    assert with_base.total_bytes == bare.total_bytes + 500 * MIB and with_base.baseline_bytes == 500 * MIB
    assert with_base.model_bytes == bare.model_bytes == bare.total_bytes  # the predicted parts do not change
    assert memory_model.baseline_bytes("cuda") == 0  # the allocator's peak starts empty
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path))
    measured = []
    monkeypatch.setattr(memory_model, "measure_baseline", lambda threads: measured.append(threads) or 123 * MIB)
    assert memory_model.baseline_bytes("cpu", 2) == 123 * MIB and measured == [2]
    assert memory_model.baseline_bytes("cpu", 2) == 123 * MIB and measured == [2]  # cached: measured once
    assert memory_model.baseline_bytes("cpu", 1) == 123 * MIB and measured == [2, 1]  # per thread count
    cached = json.loads((tmp_path / memory_model.BASELINE_FILE).read_text())
    assert sorted(cached.values()) == [123 * MIB, 123 * MIB]
    # another set of installed libraries (an extra added scipy, say) is measured again, not read from the cache
    monkeypatch.setattr(memory_model, "_installed", lambda: "0therlib")
    assert memory_model.baseline_bytes("cpu", 2) == 123 * MIB and measured == [2, 1, 2]


def test_a_limit_the_model_fits_but_the_process_does_not_is_predicted_oom(tmp_path, monkeypatch):
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path))
    monkeypatch.setattr(memory_model, "measure_baseline", lambda threads: 500 * MIB)
    model_part = memory_model.predict(resolved("model=tiny")).total_bytes  # ~9 MiB
    sec = memory_model.feasibility(resolved("model=tiny", f"memory_limit_bytes={100 * MIB}"))
    assert sec["fits"] is False and sec["predicted"]["baseline_bytes"] == 500 * MIB
    assert sec["predicted"]["total_bytes"] == model_part + 500 * MIB
    assert memory_model.feasibility(resolved("model=tiny", f"memory_limit_bytes={600 * MIB}"))["fits"] is True
    # no limit: nothing to hold the peak against, and the baseline is not measured for nothing
    monkeypatch.setattr(memory_model, "measure_baseline", lambda threads: pytest.fail("measured without a limit"))
    (tmp_path / memory_model.BASELINE_FILE).unlink()
    assert memory_model.feasibility(resolved("model=tiny"))["fits"] is None
