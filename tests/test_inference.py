"""The inference workload in-process on tiny models: sample counts, the iteration policy, FLOPs."""

from types import SimpleNamespace

import pytest
import torch

from harness import data, flops, models, precision
from harness.backends.hf import HFEager
from harness.probes import ProbeSet, Reading
from harness.probes.timing import CpuTimer
from harness.scenarios import inference

# the shipped tiny preset, shrunk so that in-process tests take milliseconds
TINY = models.preset(
    "tiny", hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=2
)


class _Probe:
    name, measures_energy, reads_mid_window = "test", False, False

    def begin(self):
        pass

    def read(self):
        return None

    def close(self):
        pass


def _fw(model):
    return HFEager.around(model).forward


@pytest.fixture(scope="module")
def model():
    return models.build(TINY, torch.float32, "cpu", seed=0)


def test_sample_counts_follow_the_policy(model):
    ids = data.prompt_ids(2, 8, seed=0)
    policy = inference.Policy(warmup_iters=1, min_iters=3, min_time_s=0.0, max_iters=100, repeats=2)
    backend = HFEager.around(model)
    out = inference.run(backend.forward, ids, decode_tokens=5, policy=policy, timer=CpuTimer())
    m = out["metrics"]
    assert m["iterations"] == 6 and [r["iterations"] for r in out["repeats"]] == [3, 3]
    assert m["prefill_latency_s"]["n"] == 6 and m["decode_latency_s"]["n"] == 30
    assert m["tokens_prompt"] == 16 and m["tokens_generated_per_request"] == 12
    assert backend.last_position_only is True  # the scenario records it as logits_last_position_only
    # throughput is tokens over the time spent on them
    total_request_s = m["request_latency_s"]["mean"] * 6
    assert m["e2e_tok_per_s"] == pytest.approx(12 * 6 / total_request_s)


def test_min_time_extends_and_max_iters_caps(model):
    ids = data.prompt_ids(1, 8, seed=0)
    long = inference.run(_fw(model), ids, 2, inference.Policy(0, 1, 0.2, 10_000, 1), CpuTimer())
    r = long["repeats"][0]
    assert r["wall_s"] >= 0.2
    # it stopped only once 0.2 s had passed: either several requests, or one that alone took that long
    assert r["iterations"] > 1 or r["request_latency_s_p50"] >= 0.2
    capped = inference.run(_fw(model), ids, 2, inference.Policy(0, 1, 60.0, 4, 1), CpuTimer())
    assert capped["metrics"]["iterations"] == 4


def test_zero_decode_tokens_gives_no_decode_throughput(model):
    out = inference.run(_fw(model), data.prompt_ids(1, 8, 0), 0, inference.Policy(0, 2, 0.0, 10, 1), CpuTimer())
    assert out["metrics"]["decode_latency_s"]["n"] == 0 and out["metrics"]["decode_tok_per_s"] is None


def test_trackers_bracket_the_timed_window(model):
    calls = []

    class Tracker(_Probe):
        def begin(self):
            calls.append("begin")

        def end(self):
            calls.append("end")
            return Reading("x", {"x_bytes": 1})

    probes = ProbeSet([Tracker()])
    inference.run(_fw(model), data.prompt_ids(1, 8, 0), 1, inference.Policy(1, 1, 0.0, 1, 1), CpuTimer(), probes)
    assert calls == ["begin", "end"] and probes.values() == {"x_bytes": 1}


def test_trackers_are_closed_when_the_run_fails(model):
    closed = []

    class Tracker(_Probe):
        def end(self):
            raise RuntimeError("boom")

        def close(self):
            closed.append(True)

    probes = ProbeSet([Tracker()])
    with pytest.raises(RuntimeError, match="boom"):
        inference.run(_fw(model), data.prompt_ids(1, 8, 0), 1, inference.Policy(0, 1, 0.0, 1, 1), CpuTimer(), probes)
    assert closed == [True]


def test_prompts_are_real_text_and_seeded():
    a, b = data.prompt_ids(3, 64, seed=1), data.prompt_ids(3, 64, seed=1)
    assert torch.equal(a, b) and not torch.equal(a, data.prompt_ids(3, 64, seed=2))
    text = bytes(a[0].tolist()).decode("utf-8", errors="replace")
    assert sum(c.isalpha() or c.isspace() for c in text) > 40  # English, not noise


def test_flops_formula_by_hand():
    # Kaplan et al. 2020: 2*N + 2*n_layer*n_ctx*d_attn
    assert flops.forward_flops_per_token(1000, 2, 16, 10) == 2 * 1000 + 2 * 2 * 10 * 16
    assert flops.forward_flops_per_token(1000, None, 16, 10) is None
    f = flops.inference_flops({"n_layers": 2, "d_model": 16, "matmul_params": 1000}, seq_len=10, decode_tokens=3)
    assert f["flops_per_token_prefill"] == 2000 + 640
    assert f["flops_per_token_decode"] == 2000 + 2 * 2 * 12 * 16  # mean context 10 + (3+1)/2


def test_describe_counts_matmuls_and_embeddings(model):
    d = models.describe(model)
    assert d["params_embedding"] == 256 * 32
    # per layer: q,k,v,o 4*32*32 + gate,up,down 3*32*64; plus lm_head 32*256
    assert d["matmul_params"] == 2 * (4 * 32 * 32 + 3 * 32 * 64) + 32 * 256
    assert d["params"] == d["params_embedding"] + d["params_non_embedding"]


def test_same_seed_same_weights_across_precisions():
    a = models.build(TINY, torch.float32, "cpu", seed=3)
    b = models.build(TINY, torch.bfloat16, "cpu", seed=3)
    wa, wb = a.model.layers[0].mlp.up_proj.weight, b.model.layers[0].mlp.up_proj.weight
    assert torch.allclose(wa.to(torch.bfloat16).float(), wb.float())


def test_int8_quantizes_linear_layers():
    m = models.build(TINY, torch.float32, "cpu", seed=0)
    info = precision.apply(m, "int8")
    assert info["weight_dtype"] == "int8" and "torchao" in info["method"]
    from torchao.utils import TorchAOBaseTensor

    assert isinstance(m.model.layers[0].mlp.up_proj.weight, TorchAOBaseTensor)  # int8 weights now
    assert not isinstance(m.model.embed_tokens.weight, TorchAOBaseTensor)  # lookups stay as they were


def test_each_repeat_reads_its_own_energy(model):
    readings = iter([0.0, 2.0, 2.0, 2.0])  # joules since begin(): repeat 1 used 2 J, repeat 2 none (unknown)
    policy = inference.Policy(warmup_iters=0, min_iters=2, min_time_s=0.0, max_iters=2, repeats=2)
    out = inference.run(_fw(model), data.prompt_ids(1, 8, 0), 3, policy, CpuTimer(), energy_now=lambda: next(readings))
    first, second = out["repeats"]
    assert first["energy_j"] == 2.0 and first["j_per_token"] == pytest.approx(2.0 / (2 * 4))  # 2 requests x 4 tokens
    assert second["energy_j"] is None and second["j_per_token"] is None  # a counter that did not move is no zero
    plain = inference.run(_fw(model), data.prompt_ids(1, 8, 0), 1, inference.Policy(0, 1, 0.0, 1, 1), CpuTimer())
    assert plain["repeats"][0]["energy_j"] is None


def _deprecations(call):
    """Deprecation messages `call()` gives, through warnings or transformers' logger (its once-only cache
    cleared, so an earlier test's warning does not hide this one's)."""
    import logging
    import warnings

    got = []
    handler = logging.Handler()
    handler.emit = lambda record: got.append(record.getMessage())
    logger = logging.getLogger("transformers")
    logger.addHandler(handler)
    clear = getattr(logging.Logger.warning_once, "cache_clear", None)
    clear and clear()
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            result = call()
    finally:
        logger.removeHandler(handler)
    return result, [m for m in got + [str(w.message) for w in caught] if "deprecated" in m]


def test_the_kv_cache_goes_under_the_installed_transformers_name_without_deprecation(model):
    # recent transformers (5.24) renamed past_key_values to cache (the old name warns, and goes in 5.40); older ones
    # know only past_key_values: the backend asks the model's class which one it takes
    import inspect

    takes = inspect.signature(type(model).forward).parameters
    assert models.cache_keyword(model) == ("cache" if "cache" in takes else "past_key_values")
    forward, ids = _fw(model), data.prompt_ids(1, 4, seed=0)
    with torch.inference_mode():
        (first, second), said = _deprecations(
            lambda: (f := forward(ids), forward(f.logits[:, -1:].argmax(-1), f.cache))
        )
    assert first.cache is not None and second.cache is first.cache  # the same DynamicCache, grown in place
    assert second.cache.get_seq_length() == 5 and second.logits.shape[:2] == (1, 1)
    assert said == []
    if "cache" in takes:  # the detector works: the old keyword is reported on this transformers
        with torch.inference_mode():
            _, said = _deprecations(lambda: model(input_ids=ids, past_key_values=None, use_cache=True))
        assert said


def test_cache_keyword_and_output_cache_for_either_transformers_generation():
    class Old(torch.nn.Module):
        def forward(self, input_ids=None, past_key_values=None, use_cache=None):
            pass

    class New(torch.nn.Module):
        def forward(self, input_ids=None, cache=None, use_cache=None):
            pass

    wrapped = New()
    wrapped.forward = lambda *a, **k: None  # an instance-level wrapper (gate_noise's slow forward) hides nothing
    assert models.cache_keyword(Old()) == "past_key_values" and models.cache_keyword(wrapped) == "cache"
    old, new = object(), object()
    assert models.output_cache(SimpleNamespace(past_key_values=old)) is old
    assert models.output_cache(SimpleNamespace(cache=new, past_key_values=old)) is new
    assert models.output_cache(SimpleNamespace(logits=1)) is None
