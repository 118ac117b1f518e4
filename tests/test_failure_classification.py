"""Every route to a failure status: the worker's own (exceptions) and the launcher's (killed, timed out,
crashed). A SIGKILL is `oom` only with the kernel's evidence, otherwise `killed` (issue 11).

Also the behaviour switches a user sets (resume, energy.enabled): each test fails when the switch is ignored.
"""

from __future__ import annotations

import signal
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.types import RunMode
from omegaconf import OmegaConf
from synthetic import config as synthetic_config

from harness import app, launch, results, worker
from harness.config import CONF_DIR
from harness.errors import UnsupportedError

CPU_ALLOCATOR = (
    "[enforce fail at alloc_cpu.cpp:117] data. DefaultCPUAllocator: can't allocate memory: "
    "you tried to allocate 1099511627776 bytes. Error code 12 (Cannot allocate memory)"
)


@pytest.mark.parametrize(
    "exc, oom",
    [
        (MemoryError(), True),
        (torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"), True),
        (RuntimeError(CPU_ALLOCATOR), True),
        (RuntimeError("CUDA error: out of memory"), True),
        (RuntimeError("mat1 and mat2 shapes cannot be multiplied"), False),
        (ValueError("can't allocate memory"), False),  # only the allocator's RuntimeError says it
        (KeyError("out of memory"), False),
    ],
)
def test_is_oom_by_each_route(exc, oom):
    assert worker._is_oom(exc) is oom


@pytest.mark.parametrize(
    "exc, status",
    [
        (MemoryError("big"), "oom"),
        (torch.OutOfMemoryError("CUDA out of memory"), "oom"),
        (RuntimeError(CPU_ALLOCATOR), "oom"),
        (UnsupportedError("int8 is an inference precision"), "unsupported"),
        (ValueError("bad"), "error"),
        (KeyboardInterrupt(), "error"),
    ],
)
def test_the_worker_records_each_failure_with_its_status(monkeypatch, exc, status):
    def measure(config, timing, sections, run_dir=None):
        raise exc

    monkeypatch.setattr(worker, "measure", measure)
    monkeypatch.delenv("RANK", raising=False)
    r = worker.execute({"config": synthetic_config(), "spawned_at": 0.0, "result_path": "/nonexistent/r.json"})
    assert r["status"] == status and r["schema"] == results.SCHEMA
    assert r["reason"] == (str(exc) if status == "unsupported" else f"{type(exc).__name__}: {exc}".strip())
    assert ("traceback" in r) is (status != "unsupported")
    assert r["metrics"] == {} and r["timing"]["run_wall_s"] > 0


def test_a_single_process_writes_its_failure_whatever_rank_says(monkeypatch):
    # several ranks are tested for real in test_rank_failure_e2e (the first failing rank writes and exits)
    monkeypatch.setattr(worker, "measure", lambda *a: (_ for _ in ()).throw(ValueError("x")))
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    monkeypatch.setenv("RANK", "1")
    spec = {"config": synthetic_config(), "spawned_at": 0.0, "result_path": "/nonexistent/r.json"}
    assert worker.execute(spec)["status"] == "error"


CFG = {"timeout_s": 2.5, "memory_limit_bytes": 1000}


@pytest.mark.parametrize(
    "returncode, stopped, evidence, status, reason",
    [
        (-signal.SIGKILL, "timeout", None, "timeout", "no result within timeout_s=2.5 s; the run was stopped"),
        (-signal.SIGKILL, "memory", None, "oom", "resident memory reached 4096 bytes, above memory_limit_bytes=1000"),
        (
            -signal.SIGKILL,
            None,
            "oom_kill 3->4",
            "oom",
            "out-of-memory killer stopped the worker (SIGKILL; oom_kill 3->4)",
        ),
        (-signal.SIGKILL, None, None, "killed", "killed by SIGKILL, with no out-of-memory evidence"),
        (-signal.SIGKILL, "SIGINT", None, "killed", "the sweep was interrupted by SIGINT"),
        (-signal.SIGTERM, None, None, "killed", "killed by SIGTERM"),
        (-signal.SIGSEGV, None, "oom_kill 3->4", "error", "the worker died from signal SIGSEGV"),
        (3, None, None, "error", "the worker exited with code 3 without writing a result"),
        (0, None, None, "error", "the worker exited with code 0 without writing a result"),
    ],
)
def test_the_launcher_classifies_a_worker_that_wrote_nothing(returncode, stopped, evidence, status, reason):
    got_status, got_reason = launch._failure(returncode, stopped, 4096, CFG, evidence)
    assert got_status == status and reason in got_reason


def test_a_real_worker_killed_by_sigkill_and_one_that_times_out(tmp_path, monkeypatch):
    """Real processes: one SIGKILLs itself (no OOM evidence: `killed`), one sleeps past timeout_s."""
    scripts = {
        "killed": "import os, signal; os.kill(os.getpid(), signal.SIGKILL)",
        "slow": "import time; time.sleep(60)",
    }
    monkeypatch.setattr(launch, "oom_counters", lambda *a, **k: {"oom_kill": 0})  # the kernel saw no OOM
    expected = {"killed": ("killed", -signal.SIGKILL), "slow": ("timeout", None)}
    for name, script in scripts.items():
        monkeypatch.setattr(launch, "worker_command", lambda config, spec, s=script: [sys.executable, "-c", s])
        cfg = synthetic_config(timeout_s=1.0, launcher={"preload": False})  # worker_command: a spawned worker
        r = launch.run_isolated(cfg, tmp_path / name)
        status, code = expected[name]
        assert r["status"] == status, r["reason"]
        if code is not None:
            assert r["launcher"]["returncode"] == code
        assert results.load(tmp_path / name / results.RESULT_FILE)["status"] == status
        assert r["launcher"]["wall_s"] < 30  # the slow one was stopped, not waited for


# ---- switches ---------------------------------------------------------------------------------------------


def _typed_cfg(tmp_path: Path, *overrides: str, random_weights: bool = True):
    app.register()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        # random weights: these tests are about the resume switch, not the checkpoint it would train first
        random = ["model.weights=random"] if random_weights else []
        overrides = ["sweep=s", f"results_dir={tmp_path}", *random, *overrides]
        return compose("config", overrides=overrides)


def _fake_hydra(monkeypatch, run_dir: Path) -> list:
    hc = SimpleNamespace(
        runtime=SimpleNamespace(output_dir=str(run_dir)),
        mode=RunMode.RUN,
        job=SimpleNamespace(num=0),
        overrides=SimpleNamespace(task=[]),
    )
    monkeypatch.setattr(app.HydraConfig, "get", staticmethod(lambda: hc))
    launched = []

    def run_isolated(config, where, overrides=None):
        launched.append(config)
        return results.make_result(config, "ok", None, {}, metrics={"decode_tok_per_s": 1.0})

    monkeypatch.setattr(app.launch, "run_isolated", run_isolated)
    monkeypatch.setattr(app.summary, "headline", lambda r: "")
    monkeypatch.setattr(app.summary, "table", lambda rs: "")
    return launched


@pytest.mark.parametrize("resume, launches", [(True, 0), (False, 1)])
def test_resume_switch(tmp_path, monkeypatch, resume, launches):
    run_dir = tmp_path / "run"
    launched = _fake_hydra(monkeypatch, run_dir)
    cfg = _typed_cfg(tmp_path, f"resume={str(resume).lower()}")
    config = OmegaConf.to_container(cfg, resolve=True)
    previous = results.make_result(config, "ok", None, {"previous": True}, metrics={"decode_tok_per_s": 1.0})
    results.write_atomic(run_dir / results.RESULT_FILE, previous)
    out = app.run(cfg)
    assert len(launched) == launches
    assert (out["environment"] == {"previous": True}) is resume


@pytest.mark.parametrize("workload", ["inference", "training", "serving", "classification", "distill"])
def test_resume_recognises_a_result_written_with_the_one_shared_workload_node(tmp_path, monkeypatch, workload):
    """A result file of the layout before per-workload schemas: its config holds every workload's fields (the
    one WorkloadConfig node), its key and config_hash those written then (tests/data/seams_golden.json, at
    5e07a75). Resume takes it as this very run: nothing is launched."""
    import json

    from harness.config import LEGACY_WORKLOAD

    golden = json.loads((Path(__file__).parent / "data" / "seams_golden.json").read_text())[workload]
    run_dir = tmp_path / "run"
    launched = _fake_hydra(monkeypatch, run_dir)
    monkeypatch.setattr(app.pretrain, "prepare", lambda config, where: None)  # no checkpoint is trained here
    cfg = _typed_cfg(tmp_path, f"workload={workload}", random_weights=False)  # the golden cases' settings
    config = OmegaConf.to_container(cfg, resolve=True)
    assert set(config["workload"]) < set(LEGACY_WORKLOAD)  # the node holds only its own fields now
    old = {**config, "workload": {**LEGACY_WORKLOAD, **config["workload"]}}
    previous = results.make_result(old, "ok", None, {"previous": True}, metrics={"decode_tok_per_s": 1.0})
    previous.update(key=golden["key"], config_hash=golden["config_hash"])
    results.write_atomic(run_dir / results.RESULT_FILE, previous)
    assert results.config_hash(config) == golden["config_hash"] == results.config_hash(old)
    out = app.run(cfg)
    assert launched == [] and out["environment"] == {"previous": True}


def test_resume_retries_an_incomplete_result(tmp_path, monkeypatch):
    run_dir = tmp_path / "run"
    launched = _fake_hydra(monkeypatch, run_dir)
    cfg = _typed_cfg(tmp_path)
    previous = results.make_result(OmegaConf.to_container(cfg, resolve=True), "timeout", "slow", {})
    results.write_atomic(run_dir / results.RESULT_FILE, previous)
    app.run(cfg)
    assert len(launched) == 1


def _place(world_size=1, rank=0, local_rank=0):
    return SimpleNamespace(world_size=world_size, rank=rank, local_rank=local_rank, local_world_size=world_size)


def test_energy_enabled_switch(monkeypatch):
    from harness import probes
    from harness.probes import energy as eprobes
    from harness.probes.interference import Interference
    from harness.probes.memory import CpuMemory

    monkeypatch.setattr(eprobes, "rapl_zones", lambda: [])  # no RAPL here: codecarbon's estimate
    cpu = SimpleNamespace(type="cpu")
    on = {"energy": {"enabled": True, "sample_interval_s": 0.1}}
    off = {"energy": {"enabled": False, "sample_interval_s": 0.1}}
    kinds = lambda config, place: [type(p) for p in probes.for_device(config, cpu, place).probes]
    assert kinds(off, _place()) == [CpuMemory, Interference]  # memory and interference only
    assert kinds(on, _place()) == [CpuMemory, Interference, eprobes.CodecarbonEnergy]
    (_, _, ranked) = probes.for_device(on, cpu, _place(world_size=2, rank=1, local_rank=1)).probes
    assert ranked._prefix == "rank1:"
    # with RAPL, one probe per node (local rank 0), none on the others
    monkeypatch.setattr(eprobes, "rapl_zones", lambda: [("package-0", Path("/nonexistent"))])
    assert kinds(on, _place(2, 0, 0)) == [CpuMemory, Interference, eprobes.RaplEnergy]
    assert kinds(on, _place(2, 1, 1)) == [CpuMemory, Interference]
