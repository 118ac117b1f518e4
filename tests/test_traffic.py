"""MBU (harness.traffic, calibrate.cpu_bandwidth, the worker's bandwidth peak): bytes per decode step by hand."""

import json
from types import SimpleNamespace

import pytest
import torch
from transformers import LlamaConfig

from harness import accounting, calibrate, models, traffic, worker

# asymmetric on purpose: 4 query heads but 2 KV heads (head size 64 / 4 = 16), 3 layers, batch 3
CFG = models.preset(
    "tiny", hidden_size=64, intermediate_size=96, num_hidden_layers=3, num_attention_heads=4, num_key_value_heads=2
)
BATCH, SEQ_LEN, DECODE = 3, 10, 5  # mean decode context: 10 + (5 + 1) / 2 = 13 tokens


def test_kv_cache_bytes_by_hand():
    shape = traffic.kv_shape(
        LlamaConfig(hidden_size=64, num_hidden_layers=3, num_attention_heads=4, num_key_value_heads=2)
    )
    assert shape == {"n_layers": 3, "kv_heads": 2, "head_dim": 16}
    assert traffic.mean_decode_context(SEQ_LEN, DECODE) == 13.0
    # keys and values x 3 layers x 2 KV heads x 16 x 13 tokens x batch 3 x 2 bytes (bf16)
    assert traffic.kv_bytes_per_step(shape, 13.0, BATCH, 2) == 2 * 3 * 2 * 16 * 13 * 3 * 2 == 14976
    assert traffic.kv_shape(SimpleNamespace(n_embd=64)) is None  # an architecture that does not say: unknown


@pytest.fixture(scope="module")
def bf16_model():
    return models.build(CFG, torch.bfloat16, "cpu", seed=0)


def test_bf16_bytes_per_step_by_hand(bf16_model):
    # read whole per step: per layer q, o 64x64; k, v 32x64; gate, up 96x64; down 64x96; 2 norms of 64;
    # then the final norm (64) and lm_head (256x64, not tied): 108,992 parameters x 2 bytes
    per_layer = 2 * 64 * 64 + 2 * 32 * 64 + 3 * 96 * 64 + 2 * 64
    read_whole = 3 * per_layer + 64 + 256 * 64
    assert read_whole == 108_992
    # + 3 rows of the 256x64 embedding table (one per sequence), + the rotary inv_freq buffers (2 x 8 fp32)
    weights = read_whole * 2 + BATCH * 64 * 2 + 2 * 8 * 4
    out = traffic.decode_bytes(bf16_model, BATCH, SEQ_LEN, DECODE)
    assert out == {
        "weight_bytes_per_decode_step": weights,
        "kv_cache_bytes_per_decode_step": 14976.0,
        "kv_cache_element_bytes": 2,
        "bytes_per_decode_step": weights + 14976.0,
    }
    assert weights == 218_432


def test_int8_weights_are_their_int8_data_plus_scales(bf16_model):
    from torchao.quantization import Int8DynamicActivationInt8WeightConfig, quantize_

    model = models.build(CFG, torch.float32, "cpu", seed=0)
    quantize_(model, Int8DynamicActivationInt8WeightConfig())
    w = model.lm_head.weight
    assert w.dtype == torch.float32  # the logical dtype: counting numel x 4 would be the mistake
    assert traffic.tensor_bytes(w) == 256 * 64 + 256 * 4 + 256 * 1  # int8 data, fp32 per-row scale, int8 zero point

    def linear(out_f, in_f):
        return out_f * in_f + out_f * 5

    per_layer = 2 * linear(64, 64) + 2 * linear(32, 64) + 2 * linear(96, 64) + linear(64, 96) + 2 * 64 * 4
    weights = 3 * per_layer + 64 * 4 + linear(256, 64) + BATCH * 64 * 4 + 2 * 8 * 4
    out = traffic.decode_bytes(model, BATCH, SEQ_LEN, DECODE)
    assert out["weight_bytes_per_decode_step"] == weights == 119_168
    assert out["kv_cache_element_bytes"] == 4  # the cache holds the fp32 activations
    assert out["kv_cache_bytes_per_decode_step"] == 2 * 14976.0
    assert weights < traffic.decode_bytes(bf16_model, BATCH, SEQ_LEN, DECODE)["weight_bytes_per_decode_step"]


def test_a_tied_table_is_read_whole_by_lm_head():
    tied = models.build(models.preset("tiny", tie_word_embeddings=True), torch.float32, "cpu", seed=0)
    params = sum(p.numel() for p in tied.parameters())  # the shared table once
    buffers = sum(b.numel() * b.element_size() for b in tied.buffers())
    assert traffic.weight_bytes_per_step(tied, 2) == params * 4 + buffers


def test_no_decode_steps_no_kv_figure(bf16_model):
    out = traffic.decode_bytes(bf16_model, 1, 16, 0)
    assert out["kv_cache_bytes_per_decode_step"] is None and out["bytes_per_decode_step"] is None


def test_mbu_with_given_steps_and_peak():
    out = traffic.mbu(233_408.0, 250.0, 5e9)  # 233,408 B x 250 steps/s = 58.352 MB/s of 5 GB/s
    assert out["achieved_bytes_per_s_decode"] == pytest.approx(58_352_000.0)
    assert out["mbu_decode"] == pytest.approx(0.0116704)
    assert traffic.mbu(233_408.0, 250.0, None) == {"achieved_bytes_per_s_decode": 58_352_000.0, "mbu_decode": None}
    assert traffic.mbu(None, 250.0, 5e9)["mbu_decode"] is None
    m = {"bytes_per_decode_step": 1e6, "decode_steps_per_s": 100.0}
    assert accounting.mbu(m, 1e9) == {"achieved_bytes_per_s_decode": 1e8, "mbu_decode": pytest.approx(0.1)}


def test_cpu_copy_calibration_is_cached_and_reused(tmp_path, monkeypatch):
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path))
    readings = iter([5e9, 3e9, 7e9])
    monkeypatch.setattr(calibrate, "measure_copy", lambda nbytes=calibrate.COPY_BYTES: next(readings))
    first = calibrate.cpu_bandwidth()
    assert first["peak_bandwidth_bytes_per_s"] == first["calibration_bandwidth_bytes_per_s"] == 5e9
    assert first["bandwidth_source"].startswith("measured on this machine: best copy of 32 MiB")
    second = calibrate.cpu_bandwidth()  # a slower (busier) moment does not lower the peak: the cache's 5e9 is used
    assert second["peak_bandwidth_bytes_per_s"] == 5e9 and second["calibration_bandwidth_bytes_per_s"] == 3e9
    assert calibrate.cpu_bandwidth()["peak_bandwidth_bytes_per_s"] == 7e9
    cache = json.loads(calibrate.cache_path().read_text())
    (key,) = [k for k in cache if "|copy|" in k]
    assert cache[key] == 7e9 and key.endswith(f"bytes={calibrate.COPY_BYTES}")


def test_copy_measurement_counts_read_and_write(monkeypatch):
    # per chunk the clock is read at its start, after each copy (enough time?) and at its end: one copy, 1 s
    clock = iter([0.0, 1.0, 1.0, 1.0, 2.0, 2.0])

    monkeypatch.setattr(calibrate, "CHUNKS", 2)
    monkeypatch.setattr(calibrate, "COPY_CHUNK_S", 0.5)
    monkeypatch.setattr(calibrate.time, "perf_counter", lambda: next(clock, 3.0))
    # 1 MiB copied: 1 MiB read + 1 MiB written per copy, one copy per second
    assert calibrate.measure_copy(2**20) == pytest.approx(2 * 2**20)


def test_gpu_peak_bandwidth_is_the_catalog_figure():
    facts = SimpleNamespace(entry="h200", hardware={"memory_bandwidth_gb_per_s": 4800})
    out = worker._bandwidth_peak("cuda", facts)
    assert out["peak_bandwidth_bytes_per_s"] == 4.8e12 and "hardware=h200" in out["bandwidth_source"]
    unknown = worker._bandwidth_peak("cuda", SimpleNamespace(entry=None, hardware={}))
    assert unknown == {"peak_bandwidth_bytes_per_s": None, "bandwidth_source": None}


def test_summary_and_report_show_prefill_mfu_beside_decode_mbu():
    from harness import metrics

    cols = [c for c, _ in metrics.report_columns()]
    assert cols.index("mbu_decode") == cols.index("mfu_prefill") + 1
    labels = [m.label for m in metrics.summary_columns("inference")]
    assert labels.index("MBU decode") == labels.index("MFU prefill") + 1
