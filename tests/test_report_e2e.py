"""End to end: a real tiny multirun writes reports/<sweep>/index.html by itself, with quality figures."""

from __future__ import annotations

import re
import shlex

import pytest
from conftest import load_results, run_cli
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from harness import app, catalog, results
from harness.config import CONF_DIR

pytestmark = pytest.mark.e2e


def _key_of_command(command: str) -> str:
    """The canonical key that `command` (python -m harness <overrides>) would measure."""
    overrides = shlex.split(command)[3:]
    app.register()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("config", overrides=[*overrides, "sweep=x"])
    return results.canonical_key(OmegaConf.to_container(cfg, resolve=True))


def test_multirun_writes_the_report_with_quality(harness, tmp_path):
    proc, root = harness("-m", "sweep=rep", "precision=fp32,int8", "gpus=1,4096")  # no machine places 4096
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "report: reports/rep/index.html"
    runs = {(r["key_fields"]["precision"], r["key_fields"]["gpus"]): r for r in load_results(root / "rep")}
    assert {k: r["status"] for k, r in runs.items()} == {
        ("fp32", 1): "ok",
        ("int8", 1): "ok",
        ("fp32", 4096): "unsupported",
        ("int8", 4096): "unsupported",
    }

    # quality: fp32 is the reference itself; the others are measured against it
    ref = runs["fp32", 1]["quality"]
    assert ref["next_token_agreement"] == 1.0 and ref["kl_divergence_nats_mean"] == 0.0 and ref["passes_floor"]
    for prec in ("int8",):  # bf16 and fp16: tests/test_quality.py, in-process
        q = runs[prec, 1]["quality"]
        assert q["status"] == "ok" and q["positions"] == 1024  # quality.eval_tokens=1024 (the fast overrides)
        assert 0 < q["next_token_agreement"] <= 1 and q["kl_divergence_nats_mean"] >= 0
        assert q["verdict"] in ("pass", "fail", "inconclusive") and q["passes_floor"] is (q["verdict"] != "fail")
        assert runs[prec, 1]["timing"]["quality_s"] > 0
    assert runs["fp32", 4096]["quality"] is None  # unsupported: never measured, stays null

    index = tmp_path / "reports" / "rep" / "index.html"
    html = index.read_text()
    assert (index.parent / "runs.csv").is_file()
    assert '<h3 id="w-inference">inference</h3>' in html and 'class="plotly-graph-div"' in html
    assert '<div class="answer">' in html  # the answer first
    assert "gpus=4096 CPU ranks need a core each" in html  # the failed runs' reason
    assert len(re.findall(r'<tr class="front(?: disturbed)?">', html)) >= 1  # disturbed: run beside other load
    if catalog.nearest_cpu_entry() is None:
        assert "Cost not measured" in html and "estimated" in html  # no price here; codecarbon's estimate
    else:
        assert "Price assumed for some runs" in html and "USD per hour" in html  # human headers
    assert '<section id="quality">' in html and "held-out loss (nats/token)" in html
    # every command in the report measures exactly the run it stands for
    commands = set(re.findall(r"<code>(python -m harness [^<]*)</code>", html))
    assert len(commands) == 4
    keys = {_key_of_command(c.replace("&#x27;", "'")) for c in commands}
    assert keys == {r["key"] for r in runs.values()}

    # rebuilt on demand, into the same place
    index.unlink()
    proc = run_cli("report", str(root / "rep"), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "report: reports/rep/index.html" and index.is_file()
