"""The cost levers: the backend group (eager | compile) and the ordered transforms list (precision, int4, prune,
and a plugin's), their keys, settings, refusals and what they record."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from composed import resolved as composed
from conftest import FAST, load_results, run_cli

from harness import models, quality, results, summary, transforms
from harness.errors import ConfigError, UnsupportedError
from harness.transforms import Context
from harness.transforms.int4 import Int4
from harness.transforms.precision import AUTOCAST, WEIGHTS
from harness.transforms.prune import Prune, prune_2_4_, prune_unstructured_

PLUGIN_DIR = Path(__file__).resolve().parent / "plugins"
TINY = models.preset(
    "tiny", hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=2
)


def _ctx(config=None, mode=WEIGHTS, device="cpu", cuda=None, holds=True) -> Context:
    return Context(config or {"precision": {"name": "fp32"}}, mode, device, cuda, holds)


# --- keys: a run from before the levers keeps its key and hash; a lever is part of both ---


@pytest.mark.parametrize(
    "overrides, old_hash",
    [  # config_hash of these runs computed with the code at 5e07a75, before backend/transforms existed
        ((), "bfa7b48b"),
        (("precision=int8", "batch_size=4"), "f1848b5d"),
        (("workload=training",), "75ceea47"),
        (("workload=serving",), "955e897d"),
    ],
)
def test_a_run_from_before_the_levers_keeps_its_hash_and_key(overrides, old_hash):
    cfg = composed(*overrides)
    assert results.config_hash(cfg) == old_hash
    old = {k: v for k, v in cfg.items() if k not in ("backend", "transforms", "transform")}
    assert results.key_fields(old) == results.key_fields(cfg)
    assert "backend" not in results.key_fields(cfg) and "transforms" not in results.key_fields(cfg)
    # settings of a transform that is not listed change nothing
    assert results.config_hash(composed(*overrides, "transform.prune.sparsity=0.7")) == old_hash


def test_each_lever_and_its_settings_are_part_of_the_key_slug_and_label():
    base = composed()
    runs = {
        "compile": composed("backend=compile"),
        "ro": composed("backend=compile", "backend.mode=reduce-overhead"),
        "int4": composed("transforms=[precision,int4]"),
        "p5": composed("transforms=[precision,prune]"),
        "p7": composed("transforms=[precision,prune]", "transform.prune.sparsity=0.7"),
        "24": composed("transforms=[precision,prune]", "transform.prune.pattern=2:4"),
    }
    keys = {results.canonical_key(c) for c in [base, *runs.values()]}
    hashes = {results.config_hash(c) for c in [base, *runs.values()]}
    assert len(keys) == len(hashes) == 7
    f = results.key_fields(runs["ro"])
    assert f["backend"] == "compile-reduce-overhead" and "transforms" not in f
    assert results.key_fields(runs["p7"])["transforms"] == "precision+prune0.7"
    assert results.key_fields(runs["24"])["transforms"] == "precision+prune2:4"
    assert "-fp32-precision_prune2_4-bs1-" in results.run_slug(runs["24"])
    assert "-fp32-compile-bs1-" in results.run_slug(runs["compile"])
    assert summary.label(results.key_fields(runs["int4"])) == "tiny fp32 +int4g32 bs=1 seq=128 gpus=1"
    assert summary.label(results.key_fields(runs["compile"])) == "tiny fp32 compile bs=1 seq=128 gpus=1"
    assert summary.label(results.key_fields(base)) == "tiny fp32 bs=1 seq=128 gpus=1"


def test_quality_reference_is_self_only_for_untransformed_fp32():
    assert quality.is_reference(composed())
    assert quality.is_reference(composed("backend=compile"))  # the same weights: its numerics are checked apart
    assert not quality.is_reference(composed("transforms=[precision,prune]"))
    assert not quality.is_reference(composed("precision=bf16"))


# --- bad values: one line naming the key, the value and the choices, exit 2 ---


@pytest.mark.parametrize(
    "args, expected",
    [
        (["transforms=[precision,nope]"], "transforms=nope is not valid: choose from precision, int4, prune"),
        (["transforms=[int4]"], "transforms=['int4'] is not valid: must start with precision"),
        (["transforms=[precision,prune]", "transform.prune.pattern=1:3"], "transform.prune.pattern=1:3 is not valid"),
        (["transforms=[precision,prune]", "transform.prune.sparsity=1.5"], "transform.prune.sparsity=1.5 is not valid"),
        (["transforms=[precision,int4]", "transform.int4.group_size=48"], "choose one of 32, 64, 128, 256"),
        (["backend.name=onnx"], "backend.name=onnx is not valid: choose one of eager, compile"),
        (["backend=compile", "backend.mode=fast"], "backend.mode=fast is not valid: choose one of default,"),
    ],
)
def test_bad_lever_input_is_one_line_and_exit_2(tmp_path, args, expected):
    proc = run_cli(*args, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0], lines


# --- transforms, with known answers ---


def test_unstructured_pruning_zeroes_the_smallest_magnitudes():
    w = torch.tensor([[0.5, -0.1, 2.0, -3.0], [0.05, 1.0, -0.2, 0.3]])
    assert prune_unstructured_(w, 0.5) == 4
    assert w.tolist() == [[0.5, 0.0, 2.0, -3.0], [0.0, 1.0, 0.0, 0.0]]


def test_2_4_pruning_keeps_the_two_largest_of_every_four():
    w = torch.tensor([[0.5, -0.1, 2.0, -3.0, 1.0, 2.0, -4.0, 0.1]])
    assert prune_2_4_(w) == 4
    assert w.tolist() == [[0.0, 0.0, 2.0, -3.0, 0.0, 2.0, -4.0, 0.0]]


def test_prune_counts_nonzero_parameters_and_says_the_kernels_stay_dense():
    model = models.build(TINY, torch.float32, "cpu", seed=0)
    before = models.describe(model)
    applied = Prune("unstructured", 0.5, _ctx()).apply(model)
    after = models.describe(model)
    head = model.get_output_embeddings().weight.numel()
    linear = before["matmul_params"] - head
    assert applied.how["params_zeroed"] == linear // 2 and applied.how["kernels_changed"] is False
    assert after["params_nonzero"] == before["params_nonzero"] - linear // 2
    assert after["matmul_params"] == before["matmul_params"]  # dense kernels do the dense work


def test_2_4_and_int4_refuse_what_this_machine_cannot_run():
    with pytest.raises(UnsupportedError, match="2:4 semi-structured sparsity needs CUDA"):
        Prune("2:4", 0.5, _ctx()).check()
    with pytest.raises(UnsupportedError, match="inference transform"):
        Prune("unstructured", 0.5, _ctx(mode=AUTOCAST)).check()
    with pytest.raises(UnsupportedError, match="both replace the Linear weights"):
        Int4(32, _ctx({"precision": {"name": "int8"}})).check()


def test_int4_on_cpu_quantizes_every_fitting_linear_and_says_how():
    model = models.build(TINY, torch.float32, "cpu", seed=0)
    ids = torch.arange(16).view(1, 16)
    with torch.inference_mode():
        ref = model(input_ids=ids).logits
    applied = Int4(32, _ctx()).apply(model)
    assert applied.how["linears_quantized"] == 2 * 7 + 1 and applied.how["linears_skipped"] == []
    assert applied.how["kernels_changed"] is False and "IntxWeightOnlyConfig" in applied.how["method"]
    assert type(model.get_output_embeddings().weight).__name__ == "IntxUnpackedToInt8Tensor"
    with torch.inference_mode():
        out = model(input_ids=ids).logits
    err = (out - ref).abs().max().item()
    assert 0 < err < 0.25 * ref.abs().max().item()  # int4 changes the numbers, a little (random weights)


def test_the_chain_is_built_in_the_listed_order_with_its_settings():
    cfg = composed("transforms=[precision,prune,int4]", "transform.prune.sparsity=0.25")
    chain = transforms.for_run(cfg, WEIGHTS, "cpu")
    assert [type(t).name for t in chain] == ["precision", "prune", "int4"]
    assert chain[1].sparsity == 0.25 and chain[2].group_size == 32


def test_a_transform_without_settings_is_tagged_by_its_name_with_settings_by_a_hash():
    cfg = {"transforms": ["precision", "mine"], "transform": {}}
    assert transforms._tag("mine", {}) == "mine"
    assert transforms._tag("mine", {"a": 1}) != transforms._tag("mine", {"a": 2})
    assert transforms.tag(cfg) == "precision+mine"
    with pytest.raises(ConfigError, match="choose from"):
        transforms.validate(cfg)


# --- end to end, through the real CLI ---


def _plugin_env() -> dict[str, str]:
    path = os.pathsep.join(p for p in (str(PLUGIN_DIR), os.environ.get("PYTHONPATH", "")) if p)
    return dict(os.environ, PYTHONPATH=path, **{transforms.PLUGINS_ENV: "harness_test_transforms"})


@pytest.mark.e2e
@pytest.mark.timeout(900)
def test_a_transform_from_the_test_suite_runs_end_to_end(tmp_path):
    args = ["-m", *FAST, "transforms=[precision],[precision,scale_head]", "+transform.scale_head.factor=0.25"]
    proc = subprocess.run(
        [sys.executable, "-m", "harness", *args, "energy.enabled=false", f"results_dir={tmp_path / 'r'}", "sweep=t"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=850,
        env=_plugin_env(),
    )
    assert proc.returncode == 0, proc.stderr
    by = {r["key_fields"].get("transforms"): r for r in load_results(tmp_path / "r" / "t")}
    plain, scaled = by[None], by[transforms._tag("scale_head", {"factor": 0.25}).join(["precision+", ""])]
    assert plain["status"] == scaled["status"] == "ok", scaled.get("reason")
    how = {"name": "scale_head", "method": "lm_head weights x 0.25", "kernels_changed": False}
    assert scaled["transforms"] == [
        {"transform": "precision", **scaled["precision"]},
        {"transform": "scale_head", **how},
    ]
    q0, q1 = plain["quality"], scaled["quality"]
    assert q0["reference"].startswith("self") and q1["reference"].startswith("fp32 build")
    assert q1["reference_loss_nats"] == pytest.approx(q0["loss_nats"])  # scored against the untransformed run
    assert q1["loss_nats"] != pytest.approx(q0["loss_nats"])
    assert "+scale_head" in proc.stdout and "transforms=[precision,scale_head]" in scaled["overrides"]


# --- the backend group ---


def test_compile_maps_the_eager_backend_and_refuses_what_it_cannot_serve():
    from harness import backends, scenarios
    from harness.backends.compiled import HFCompiled

    cfg = composed("backend=compile", "backend.mode=reduce-overhead", "seq_len=16")
    b = backends.for_run("hf", cfg)
    assert isinstance(b, HFCompiled) and b.mode == "reduce-overhead" and b.max_cache_len == 16 + 32 + 1
    assert type(backends.for_run("hf", composed())).__name__ == "HFEager"
    training = scenarios.get("training")
    with pytest.raises(UnsupportedError, match="scenario training needs train_step, which backend hf-compile"):
        backends.check_capabilities(training.name, training.requires, b)
    with pytest.raises(UnsupportedError, match="backend=compile compiles the Hugging Face eager backend"):
        backends.for_run("remote", cfg)


def test_the_reproduce_command_and_the_hero_legend_carry_the_levers():
    import pandas as pd

    from harness import reproduce
    from harness.report.hero import with_levers

    cmd = reproduce.command(composed("backend=compile", "transforms=[precision,prune]", "transform.prune.sparsity=0.7"))
    assert "backend=compile" in cmd and "transform.prune.sparsity=0.7" in cmd and "prune" in cmd
    assert "backend" not in reproduce.command(composed()) and "transform" not in reproduce.command(composed())
    rows = pd.DataFrame(
        {
            "precision": ["fp32", "fp32", "bf16"],
            "backend": [None, "compile", float("nan")],
            "transforms": [None, None, "precision+int4g32"],
        }
    )
    assert with_levers(rows).tolist() == ["fp32", "fp32 compile", "bf16 +int4g32"]


@pytest.mark.e2e
@pytest.mark.timeout(1500)  # inductor on 2 shared cores: minutes (the first run of a session also trains tiny)
def test_compile_compiles_before_the_window_and_prices_it(harness):
    """The real CLI with backend=compile on the tiny model (inductor on 2 cores: a few minutes)."""
    proc, root = harness("backend=compile", "hardware.usd_per_hour=1.0", "energy.enabled=false", timeout=1400)
    assert proc.returncode == 0, proc.stderr
    (r,) = load_results(root)
    assert r["status"] == "ok", r.get("reason")
    b, t = r["backend"], r["timing"]
    assert b["name"] == "compile" and b["implementation"] == "hf-compile" and "StaticCache" in b["cache"]
    assert b["graphs"] >= 2 and b["recompiles"] == 0 and b["compile_calls_after_warm"] == 0
    assert 0 < b["compile_s"] == t["compile_s"] == r["metrics"]["compile_s"] < t["warmup_s"]
    assert r["cost"]["compile_usd"] == pytest.approx(r["cost"]["device_usd_per_s"] * t["compile_s"])
    assert b["next_token_agreement_vs_eager"] == 1.0 and b["max_abs_logit_diff_vs_eager"] < 1e-3
    assert r["key_fields"]["backend"] == "compile" and " compile " in proc.stdout


class _FakeCuda:
    """torch.cuda's two calls the checks make: the device index and its compute capability."""

    def __init__(self, capability: tuple[int, int]):
        self.capability = capability

    def current_device(self) -> int:
        return 0

    def get_device_capability(self, index: int) -> tuple[int, int]:
        return self.capability


@pytest.mark.parametrize(
    "capability, precision, reason",
    [
        ((7, 5), "fp16", "compute capability >= 8.0; this GPU is 7.5"),
        ((9, 0), "fp32", "take fp16 or bf16 weights; precision=fp32"),
        ((9, 0), "bf16", None),
    ],
)
def test_2_4_needs_an_ampere_gpu_and_half_precision(capability, precision, reason):
    from harness.transforms.prune import sparse_kernel_reason

    ctx = _ctx({"precision": {"name": precision}}, device="cuda", cuda=_FakeCuda(capability))
    got = sparse_kernel_reason(ctx)
    assert got == reason if reason is None else reason in got


def test_int4_on_a_gpu_needs_compute_capability_8():
    ctx = _ctx(device="cuda", cuda=_FakeCuda((7, 0)))
    with pytest.raises(UnsupportedError, match="compute capability >= 8.0, not 7.0"):
        Int4(32, ctx).check()
    Int4(32, _ctx(device="cuda", cuda=_FakeCuda((9, 0)))).check()


def test_the_checkpoint_for_trained_weights_is_trained_without_the_runs_levers():
    """A compile or int4 run on trained weights trains them as any run does: eager, untransformed (the
    compiled backend has no train step: its checkpoint training ended `unsupported` before)."""
    from harness import checkpoints

    cfg = composed("backend=compile", "transforms=[precision,int4]")
    train = checkpoints.training_config(cfg)
    assert train["backend"] == {"name": "eager"} and train["transforms"] == ["precision"]
    assert transforms.tag(train) is None and "backend" not in results.key_fields(train)


def test_a_model_torch_compile_refuses_ends_unsupported_with_the_reason():
    from torch._dynamo.exc import Unsupported

    from harness.backends.compiled import HFCompiled

    b = HFCompiled({"mode": "default", "fullgraph": True}, max_cache_len=None)
    b.model = models.build(TINY, torch.float32, "cpu", seed=0)

    def refuses(**_kwargs):
        raise Unsupported("graph break in a data-dependent branch")

    b._compiled, b._prompt = refuses, torch.zeros(1, 4, dtype=torch.long)  # compiled and warm: the call refuses
    with pytest.raises(UnsupportedError, match=r"fullgraph=True\) cannot compile this model here: Unsupported: graph"):
        b.forward(torch.zeros(1, 4, dtype=torch.long))
