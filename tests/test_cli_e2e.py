"""End to end: the real `python -m harness` in a subprocess, checking what it wrote."""

from __future__ import annotations

import json
import os
import re
import shutil

import pytest
from conftest import load_results, run_cli

from harness import accounting, catalog, metrics, scenarios

pytestmark = pytest.mark.e2e

TINY_PARAMS = 1_115_264  # conf/model/tiny.yaml: 2*256*128 (embed, lm_head) + 4 layers * 262,400 + 128


def _dist_ok(d: dict, n_min: int) -> None:
    assert d["n"] >= n_min
    assert 0 < d["min"] <= d["p50"] <= d["p90"] <= d["p99"] <= d["max"]
    assert d["stdev"] >= 0 and d["min"] <= d["mean"] <= d["max"]


@pytest.mark.timeout(900)  # the first run of a session trains tiny's checkpoint too
def test_default_run_writes_one_complete_result(tmp_path):
    proc = run_cli(cwd=tmp_path, timeout=800)  # no arguments at all: the embedded default
    assert proc.returncode == 0, proc.stderr
    (result,) = load_results(tmp_path / "results")
    assert result["schema"] == "harness.result/1"
    # it ends, like a sweep, with its report: reports/<sweep>/index.html (the sweep: a timestamp)
    last = proc.stdout.strip().splitlines()[-1]
    assert last == f"report: reports/{result['config']['sweep']}/index.html" and (tmp_path / last[8:]).is_file()
    assert result["status"] == "ok" and result["reason"] is None
    assert result["key_fields"]["model"] == "tiny" and result["key_fields"]["precision"] == "fp32"
    m = result["metrics"]
    assert m["params"] == TINY_PARAMS
    for name in ("prefill_latency_s", "ttft_s", "request_latency_s"):
        _dist_ok(m[name], n_min=5)
    _dist_ok(m["decode_latency_s"], n_min=5 * 32)
    assert m["decode_latency_s"]["n"] == 32 * m["iterations"]
    assert m["prefill_tok_per_s"] > m["decode_tok_per_s"] > 0
    assert m["samples_per_s"] > 0 and m["e2e_tok_per_s"] > 0
    assert m["flops_per_token_decode"] > m["flops_per_token_prefill"] > 2 * m["matmul_params"]
    assert m["peak_rss_bytes"] > 50 * 2**20 and m["peak_rss_scope"] in ("timed_window", "process")
    assert m["threads"] >= 1 and m["timing_method"] == "perf_counter"
    assert len(result["repeats"]) == 3 and all(r["iterations"] >= 5 for r in result["repeats"])
    assert result["environment"]["packages"]["torch"].startswith("2.")
    assert result["environment"]["device"]["type"] == "cpu"
    # energy: this machine has no RAPL, so codecarbon's estimate, labelled as one
    e = result["energy"]
    assert e["total_method"] == "estimated" and e["measured_j"] is None and e["total_j"] > 0
    assert {c["covers"] for c in e["components"]} == {"cpu-package", "ram"}
    assert all(c["method"] == "estimated" and "codecarbon" in c["estimator"] for c in e["components"])
    assert e["j_per_token"] == pytest.approx(e["total_j"] / (m["iterations"] * m["tokens_generated_per_request"]))
    assert e["pue"] == 1.56 and e["carbon_intensity_g_per_kwh"] == 436.0 and e["co2e_g"] > 0
    # a CPU not in the catalog: priced as the nearest entry of its vendor and generation, said so, with the
    # override; where nothing fits, no cost and a warning naming the override
    if catalog.nearest_cpu_entry() is not None:
        assert result["cost"]["price"]["assumed"] is True and "nearest catalog entry" in result["cost"]["price"]["how"]
        assert any("price assumed" in w and "hardware.usd_per_hour" in w for w in result["warnings"])
        assert "USD/1M tok" in proc.stdout and "* price assumed: nearest catalog entry" in proc.stdout
    else:
        assert result["cost"] is None and any("hardware.usd_per_hour" in w for w in result["warnings"])
    # trained weights by default: held-out quality with an interval and a verdict
    q = result["quality"]
    assert result["weights"]["kind"] == "trained" and q["verdict"] == "pass" and q["eval_tokens"] == 4096
    assert m["peak_flop_per_s"] > 0 and "measured on this machine" in m["peak_source"] and 0 < m["mfu_prefill"]
    # the figures' arithmetic, from the recorded inputs (4 layers, d_model 128, prompt 128, 32 decode tokens)
    assert m["flops_per_token_prefill"] == 2 * m["matmul_params"] + 2 * 4 * 128 * 128
    assert m["flops_per_token_decode"] == 2 * m["matmul_params"] + 2 * 4 * (128 + 33 / 2) * 128
    for phase in ("prefill", "decode"):
        achieved = m[f"flops_per_token_{phase}"] * m[f"{phase}_tok_per_s"]
        assert m[f"achieved_flop_per_s_{phase}"] == pytest.approx(achieved, rel=1e-12)
        assert m[f"mfu_{phase}"] == pytest.approx(achieved / m["peak_flop_per_s"], rel=1e-12)
    assert e["total_j"] == pytest.approx(sum(c["energy_j"] for c in e["components"]), rel=1e-12)
    assert e["co2e_g"] == pytest.approx(e["total_j"] / 3.6e6 * 1.56 * 436.0, rel=1e-12)
    # joules, not kWh: a CPU and its RAM draw watts to hundreds of watts (kWh read as J would be ~1e-5 W)
    assert 0.1 < e["avg_power_w"] < 5000 and e["avg_power_w"] == pytest.approx(e["total_j"] / e["window_s"])
    assert 0 < result["timing"]["fixed_cost_s"] < result["timing"]["run_wall_s"]
    assert "tiny fp32" in proc.stdout and "decode tok/s" in proc.stdout  # the summary table
    # what the worker wrote is what the scenario and the worker declare, and all of it is registered
    written = set(m) | {k for rep in result["repeats"] for k in rep}
    assert written <= set(metrics.names()), sorted(written - set(metrics.names()))
    assert written <= set(scenarios.get("inference").writes) | set(accounting.COMMON_METRICS)
    assert result["overrides"] == [] and result["metrics"]["logits_last_position_only"] is True


@pytest.fixture(scope="module")
def precision_sweep(tmp_path_factory):
    """The four precisions of tiny, one process each; read by the precision test, resumed by the resume test."""
    from conftest import FAST

    tmp = tmp_path_factory.mktemp("precision-sweep")
    # a generous limit: run alone (-k), the first run of the session trains tiny's checkpoint too
    args = ["-m", *FAST, "sweep=prec", "precision=fp32,fp16,bf16,int8", f"results_dir={tmp}"]
    proc = run_cli(*args, cwd=tmp, timeout=800)
    return proc, tmp


@pytest.mark.timeout(900)
def test_precision_sweep_runs_each_in_its_own_process(precision_sweep):
    proc, root = precision_sweep
    assert proc.returncode == 0, proc.stderr
    runs = load_results(root / "prec")
    assert sorted(r["key_fields"]["precision"] for r in runs) == ["bf16", "fp16", "fp32", "int8"]
    assert all(r["status"] == "ok" for r in runs), [r["reason"] for r in runs]
    by = {r["key_fields"]["precision"]: r for r in runs}
    assert by["fp16"]["precision"]["weight_dtype"] == "float16"
    assert by["bf16"]["precision"]["weight_dtype"] == "bfloat16"
    assert by["int8"]["precision"]["weight_dtype"] == "int8" and "torchao" in by["int8"]["precision"]["method"]
    assert {k["path"] for k in by["int8"]["precision"]["kernels"].values()} == {"int8 (torch._int_mm)"}  # observed
    # fresh processes: each run paid its own start-up, and every run counted the same model
    assert all(r["timing"]["startup_s"] > 0 for r in runs)
    assert {r["metrics"]["params"] for r in runs} == {TINY_PARAMS}
    for i in range(1, 5):
        assert f"[{i}/4]" in proc.stdout
    assert "4 results (4 ok)" in proc.stdout


def test_grid_sweep_writes_every_combination(harness):
    # random weights: this test is about the grid (two axes make one; each run is a process, seconds each),
    # and the sweep over models is test_quality_e2e's
    proc, root = harness("-m", "sweep=grid", "model.weights=random", "batch_size=1,2", "seq_len=16,32")
    assert proc.returncode == 0, proc.stderr
    runs = load_results(root / "grid")
    combos = {(r["key_fields"]["batch_size"], r["key_fields"]["seq_len"]) for r in runs}
    assert len(runs) == 4 and combos == {(b, s) for b in (1, 2) for s in (16, 32)}
    for r in runs:
        assert r["status"] == "ok"
        assert r["metrics"]["tokens_prompt"] == r["key_fields"]["batch_size"] * r["key_fields"]["seq_len"]


@pytest.mark.parametrize(
    "arg, expected",
    [
        ("precision=int4", "precision=int4 is not valid: choose one of bf16, fp16, fp32, int8"),
        ("batch_size=0", "batch_size=0 is not valid: must be >= 1"),
        ("model=nope", "model=nope is not valid: choose one of 125m, 1b, 7b, base, local, small, tiny"),
        ("gpus=-1", "gpus=-1 is not valid: must be >= 1"),
        ("batchsize=8", "batchsize=8 is not valid: no such key; did you mean batch_size?"),
        ("seq_len=64,128", "seq_len=64,128 is not valid: a list of values is a sweep: add -m (--multirun)"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path, arg, expected):
    proc = run_cli(arg, cwd=tmp_path)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0]
    assert not (tmp_path / "results").exists()  # nothing ran


def test_bad_value_inside_a_sweep_stops_before_any_run(tmp_path):
    proc = run_cli("-m", "precision=fp32,int4", cwd=tmp_path)
    assert proc.returncode == 2 and "precision=int4" in proc.stderr
    assert not (tmp_path / "results").exists()


def test_oom_is_recorded_and_the_sweep_goes_on(harness):
    # 1b in fp32 needs ~5 GB; the limit stops it long before the machine suffers. The memory model predicts as
    # much and would not launch it (predicted-oom, tests/test_memory_model.py): forced, the limit itself is tested
    proc, root = harness("-m", "sweep=oom", "model=tiny,1b", "memory_limit_bytes=1500000000", "feasibility.force=true")
    assert proc.returncode == 0, proc.stderr
    by = {r["key_fields"]["model"]: r for r in load_results(root / "oom")}
    assert by["tiny"]["status"] == "ok"
    assert by["1b"]["status"] == "oom" and "memory_limit_bytes=1500000000" in by["1b"]["reason"]
    assert by["1b"]["config"]["model"]["name"] == "1b" and by["1b"]["environment"]["packages"]["harness"]


def test_timeout_is_recorded(harness):
    proc, root = harness("sweep=slow", "timeout_s=0.5")
    assert proc.returncode == 0, proc.stderr
    (r,) = load_results(root / "slow")
    assert r["status"] == "timeout" and "timeout_s=0.5" in r["reason"]
    assert r["launcher"]["wall_s"] < 10  # stopped, not waited for


def test_error_is_recorded_with_the_traceback(harness):
    proc, root = harness("sweep=err", "model.arch=no_such_arch")
    assert proc.returncode == 0, proc.stderr
    (r,) = load_results(root / "err")
    assert r["status"] == "error" and "no_such_arch" in r["reason"]
    assert any("Traceback" in line or "File" in line for line in r["traceback"])


@pytest.mark.parametrize(
    "arg, reason",
    [("hardware=cuda", "no CUDA device"), ("gpus=3", "gpus=3 CPU ranks need a core each")],
)
def test_unsupported_is_recorded_with_its_reason(harness, arg, reason):
    proc, root = harness("sweep=unsup", arg)
    assert proc.returncode == 0, proc.stderr
    (r,) = load_results(root / "unsup")
    assert r["status"] == "unsupported" and reason in r["reason"]
    assert r["metrics"] == {}


@pytest.mark.timeout(900)
def test_resume_skips_complete_runs_and_retries_failed_ones(precision_sweep, harness, tmp_path):
    # the precision sweep's four results, copied (that test reads the originals); results_dir is not in the key
    sweep_proc, sweep_root = precision_sweep
    assert sweep_proc.returncode == 0, sweep_proc.stderr
    shutil.copytree(sweep_root / "prec", tmp_path / "results" / "prec")
    paths = sorted((tmp_path / "results" / "prec").rglob("result.json"))
    assert len(paths) == 4
    before = {p: p.read_text() for p in paths}
    # make one of them a failed run: a re-run must measure it again and keep the old file beside
    failed = json.loads(paths[0].read_text())
    failed["status"], failed["reason"] = "error", "injected by the test"
    paths[0].write_text(json.dumps(failed))

    proc, _ = harness("-m", "sweep=prec", "precision=fp32,fp16,bf16,int8")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("already complete, skipped") == 3
    assert all(p.read_text() == before[p] for p in paths[1:])  # untouched
    rerun = json.loads(paths[0].read_text())
    assert rerun["status"] == "ok" and rerun["created_at"] >= failed["created_at"]
    assert json.loads((paths[0].parent / "result.previous.json").read_text())["reason"] == "injected by the test"


def test_local_pretrained_model(harness, tmp_path):
    import torch
    from transformers import AutoModelForCausalLM, LlamaConfig

    cfg = LlamaConfig(
        vocab_size=300,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=256,
    )
    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(cfg).save_pretrained(tmp_path / "mymodel")
    proc, root = harness("sweep=local", "model=local", f"model.path={tmp_path / 'mymodel'}")
    assert proc.returncode == 0, proc.stderr
    (r,) = load_results(root / "local")
    assert r["status"] == "ok", r["reason"]
    assert r["model"]["vocab_size"] == 300 and r["metrics"]["params"] == sum(
        p.numel() for p in AutoModelForCausalLM.from_config(cfg).parameters()
    )
    assert os.path.samefile(r["config"]["model"]["path"], tmp_path / "mymodel")


def test_cost_from_a_catalog_entry_and_a_user_price(harness):
    proc, root = harness("-m", "sweep=cost", "hardware=cpu_c7a,cpu", "hardware.usd_per_hour=0.0513")
    assert proc.returncode == 0, proc.stderr
    by = {r["config"]["hardware"]["name"]: r for r in load_results(root / "cost")}
    c7a, user = by["cpu_c7a"]["cost"], by["cpu"]["cost"]
    vcpus = by["cpu_c7a"]["environment"]["cpu_affinity_cores"]
    assert c7a["devices"] == vcpus and c7a["price"]["unit"] == "vcpu"  # per vCPU-hour, all vCPUs rented
    assert user["devices"] == 1 and user["price"]["how"] == "user (hardware.usd_per_hour)"  # the whole machine
    for r in by.values():
        c, m, t = r["cost"], r["metrics"], r["timing"]
        usd_per_s = 0.0513 * c["devices"] / 3600
        assert c["run_usd"] == pytest.approx(usd_per_s * t["run_wall_s"])
        assert c["usd_per_1m_tokens_decode"] == pytest.approx(usd_per_s / m["decode_tok_per_s"] * 1e6)
        assert c["usd_per_1k_samples"] == pytest.approx(usd_per_s / m["samples_per_s"] * 1e3)
        # each repeat priced the same way from its own throughput: the gate's cost samples
        for rep in r["repeats"]:
            assert rep["usd_per_1m_tokens_generated"] == pytest.approx(usd_per_s / rep["e2e_tok_per_s"] * 1e6)
            assert rep["energy_j"] is None and rep["j_per_token"] is None  # codecarbon: no per-repeat figure


def test_energy_off_leaves_energy_null(harness):
    proc, root = harness("sweep=noenergy", "energy.enabled=false")
    assert proc.returncode == 0, proc.stderr
    (r,) = load_results(root / "noenergy")
    assert r["status"] == "ok" and r["energy"] is None


def test_submitit_local_launcher_runs_the_sweep(harness):
    # the same path a SLURM cluster takes (hydra/launcher=slurm), on this machine
    proc, root = harness("-m", "sweep=sub", "hydra/launcher=local", "precision=fp32,bf16")
    assert proc.returncode == 0, proc.stderr
    runs = load_results(root / "sub")
    assert sorted(r["key_fields"]["precision"] for r in runs) == ["bf16", "fp32"]
    assert all(r["status"] == "ok" for r in runs)
    assert (root / "sub" / ".submitit").is_dir()
    # the jobs' own lines go to their logs under .submitit/; the launcher prints each job's end (and its state)
    assert re.search(r"\[2/2\] tiny bf16 .*: ok \(job \d+\), decode", proc.stdout), proc.stdout
