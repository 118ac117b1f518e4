"""Each kind of extension registered from a module of the test suite (HARNESS_PLUGINS, harness/plugins.py) and
run through the real CLI: a backend, a probe, a launcher (the scenario's: tests/test_scenarios.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import FAST, load_results

from harness.plugins import PLUGINS_ENV

PLUGIN_DIR = Path(__file__).resolve().parent / "plugins"
QUIET = ["quality.enabled=false", "repeats=2"]


def _cli(tmp_path: Path, plugins: str, *overrides: str, timeout: float = 300) -> subprocess.CompletedProcess:
    path = os.pathsep.join(p for p in (str(PLUGIN_DIR), os.environ.get("PYTHONPATH", "")) if p)
    env = dict(os.environ, PYTHONPATH=path, **{PLUGINS_ENV: plugins})
    args = [*FAST, *overrides, f"results_dir={tmp_path / 'results'}", "sweep=plug"]
    return subprocess.run(
        [sys.executable, "-m", "harness", *args], cwd=tmp_path, capture_output=True, text=True, timeout=timeout, env=env
    )


def _only_result(tmp_path: Path) -> dict:
    (result,) = load_results(tmp_path / "results" / "plug")
    return result


@pytest.mark.e2e
def test_a_backend_from_a_plugin_is_chosen_by_its_scenario_and_runs(tmp_path):
    proc = _cli(tmp_path, "harness_test_backends", "workload.name=first_streamed", "energy.enabled=false", *QUIET)
    assert proc.returncode == 0, proc.stderr
    r = _only_result(tmp_path)
    # `stream` is a capability of the plugin's backend only: on hf the run would end unsupported, naming it
    assert r["status"] == "ok", r.get("reason")
    assert r["metrics"]["prefill_latency_s"]["n"] == 2 and r["metrics"]["prefill_tok_per_s"] > 0


@pytest.mark.e2e
def test_a_probe_from_a_plugin_watches_the_window_and_its_energy_is_accounted(tmp_path):
    plugins = "harness_test_scenarios,harness_test_probes"
    proc = _cli(tmp_path, plugins, "workload.name=prefill_only", "energy.enabled=true", *QUIET)
    assert proc.returncode == 0, proc.stderr
    r = _only_result(tmp_path)
    assert r["status"] == "ok", r.get("reason")
    (rated,) = [c for c in r["energy"]["components"] if c["name"] == "rated power 15 W"]
    assert rated["method"] == "estimated" and rated["energy_j"] == pytest.approx(15.0 * rated["window_s"])
    assert r["energy"]["total_method"] != "measured"  # an estimate is never shown as a measurement


@pytest.mark.e2e
def test_a_launcher_from_a_plugin_starts_the_worker_when_named(tmp_path):
    plugins = "harness_test_scenarios,harness_test_launchers"
    proc = _cli(tmp_path, plugins, "workload.name=prefill_only", "launcher.name=niced", "energy.enabled=false", *QUIET)
    assert proc.returncode == 0, proc.stderr
    r = _only_result(tmp_path)
    assert r["status"] == "ok", r.get("reason")
    assert r["launcher"]["mode"] == "niced" and r["launcher"]["returncode"] == 0


def test_an_unregistered_launcher_is_refused_with_the_choices(tmp_path):
    proc = _cli(tmp_path, "harness_test_launchers", "launcher.name=slurmish", timeout=120)
    assert proc.returncode == 2
    assert "launcher.name=slurmish is not valid: choose one of niced; null: launcher.preload decides" in proc.stderr


def _run(tmp_path: Path, *overrides: str) -> subprocess.CompletedProcess:
    """The CLI with the scenario plugins and no workload key of another schema (conftest.FAST has inference's)."""
    path = os.pathsep.join(p for p in (str(PLUGIN_DIR), os.environ.get("PYTHONPATH", "")) if p)
    env = dict(os.environ, PYTHONPATH=path, **{PLUGINS_ENV: "harness_test_scenarios"})
    args = ["seq_len=16", "energy.enabled=false", *QUIET, *overrides, f"results_dir={tmp_path / 'results'}"]
    return subprocess.run(
        [sys.executable, "-m", "harness", *args, "sweep=plug"], cwd=tmp_path, capture_output=True, text=True, env=env
    )


@pytest.mark.e2e
def test_a_scenario_from_a_plugin_brings_its_own_workload_schema(tmp_path):
    # prefill_passes declares its schema (Spec.schema): `workload=prefill_passes` composes it, with no yaml
    proc = _run(tmp_path, "workload=prefill_passes", "workload.passes=3", "model.weights=random")
    assert proc.returncode == 0, proc.stderr
    r = _only_result(tmp_path)
    assert r["status"] == "ok", r.get("reason")
    assert r["config"]["workload"] == {"name": "prefill_passes", "passes": 3}  # its own fields, nothing else
    assert r["key_fields"]["passes"] == 3 and "workload.passes=3" in r["overrides"]
    # another workload's field is refused before anything runs, naming who has it; and its own field elsewhere
    for args, line in (
        (("workload=prefill_passes", "workload.decode_tokens=4"), "workload.decode_tokens=4 is not valid: is used "
         "only by workload=inference; this run is workload=prefill_passes"),
        (("workload.passes=4",), "workload.passes=4 is not valid: is used only by workload=prefill_passes; this run "
         "is workload=inference"),
        (("workload=prefill_passes", "workload.passes=0"), "workload.passes=0 is not valid: must be >= 1"),
    ):  # fmt: skip
        proc = _run(tmp_path, *args)
        assert proc.returncode == 2 and line in proc.stderr, proc.stderr
        assert "not in struct" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
