"""The seams: a scenario from the test suite registered by name and run through the real CLI; capabilities."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import FAST, load_results

from harness import backends, scenarios
from harness.backends.base import check_capabilities
from harness.errors import UnsupportedError

PLUGIN_DIR = Path(__file__).resolve().parent / "plugins"


def _plugin_env() -> dict[str, str]:
    path = os.pathsep.join(p for p in (str(PLUGIN_DIR), os.environ.get("PYTHONPATH", "")) if p)
    return dict(os.environ, PYTHONPATH=path, **{scenarios.PLUGINS_ENV: "harness_test_scenarios"})


@pytest.mark.e2e
def test_a_scenario_from_the_test_suite_runs_end_to_end(tmp_path):
    args = ["-m", *FAST, "workload.name=prefill_only,needs_stream", "energy.enabled=false", "quality.enabled=false"]
    proc = subprocess.run(
        [sys.executable, "-m", "harness", *args, f"results_dir={tmp_path / 'results'}", "sweep=plug"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        env=_plugin_env(),
    )
    assert proc.returncode == 0, proc.stderr
    by_name = {r["key_fields"]["workload"]: r for r in load_results(tmp_path / "results" / "plug")}
    ok, unsupported = by_name["prefill_only"], by_name["needs_stream"]
    assert ok["status"] == "ok", ok.get("reason")
    m = ok["metrics"]
    assert m["prefill_latency_s"]["n"] == 2 and m["prefill_tok_per_s"] > 0  # repeats=2 from FAST
    assert len(ok["repeats"]) == 2 and all(r["prefill_latency_s_p50"] > 0 for r in ok["repeats"])
    assert m["peak_rss_bytes"] > 0 and m["mfu_prefill"] > 0  # the worker's probes and accounting ran for it
    assert ok["precision"]["method"] == "model dtype" and "workload.name=prefill_only" in ok["overrides"]
    assert unsupported["status"] == "unsupported"
    assert "needs stream" in unsupported["reason"] and "backend hf" in unsupported["reason"]


def test_without_the_plugin_the_name_is_refused_with_the_choices(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != scenarios.PLUGINS_ENV}
    proc = subprocess.run(
        [sys.executable, "-m", "harness", "workload.name=prefill_only", f"results_dir={tmp_path}"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert proc.returncode == 2
    assert "workload.name=prefill_only is not valid: choose one of inference, training" in proc.stderr


class _Backend:
    name, capabilities = "fake", frozenset({"prefill", "decode"})


def test_a_missing_capability_is_unsupported_naming_it():
    check_capabilities("inference", frozenset({"prefill"}), _Backend())
    with pytest.raises(UnsupportedError, match=r"scenario training needs train_step, which backend fake does not"):
        check_capabilities("training", scenarios.get("training").requires, _Backend())


def test_hf_eager_provides_what_the_built_in_scenarios_need():
    hf = backends.create("hf")
    for name in ("inference", "training"):
        assert scenarios.get(name).requires <= hf.capabilities
    with pytest.raises(KeyError, match="choose one of hf"):
        backends.create("onnx")
