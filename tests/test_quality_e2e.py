"""End to end on harness-trained weights: the size × precision sweep a user runs to choose a model. Each
precision gets a held-out verdict on its merits, small beats tiny on held-out loss, and the report shows the
quality table and the served-volume projection (the checkpoints come from the session's cache)."""

from __future__ import annotations

import pytest
from conftest import REPO, load_results, run_cli

from harness import catalog

# the sweep trains small once for the session (tiny too, if no earlier test did): minutes on 2 cores
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1800)]


@pytest.fixture(scope="module")
def sweep(harness):
    # fp32 and int8 only (bf16 and fp16: tests/test_quality.py, in-process), to keep the test cheap
    proc, root = harness("-m", "sweep=q", "model=tiny,small", "precision=fp32,int8", timeout=1700)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc, root


@pytest.fixture(scope="module")
def harness(tmp_path_factory):
    from conftest import FAST

    tmp = tmp_path_factory.mktemp("quality-e2e")

    def _run(*args, timeout=240):
        flags = [a for a in args if a.startswith("-")]
        overrides = [a for a in args if not a.startswith("-")]
        proc = run_cli(*flags, *FAST, *overrides, f"results_dir={tmp / 'results'}", cwd=tmp, timeout=timeout)
        return proc, tmp / "results"

    return _run


def test_every_run_has_held_out_figures_and_a_verdict(sweep):
    proc, root = sweep
    runs = {(r["key_fields"]["model"], r["key_fields"]["precision"]): r for r in load_results(root / "q")}
    assert len(runs) == 4 and all(r["status"] == "ok" for r in runs.values()), [r["reason"] for r in runs.values()]
    for (model, prec), r in runs.items():
        q = r["quality"]
        assert r["weights"]["kind"] == "trained" and q["quality_meaningful"] is True
        assert q["eval_tokens"] >= 1024 and q["loss_nats_lo"] <= q["loss_nats"] <= q["loss_nats_hi"]
        assert q["verdict"] in ("pass", "fail", "inconclusive"), (model, prec, q["verdict"])
        assert r["weights"]["training"]["tokens"] > 0 and r["weights"]["training"]["wall_s"] > 0
    for model in ("tiny", "small"):
        assert runs[model, "fp32"]["quality"]["verdict"] == "pass"  # its own reference
        # trained weights: far below the 5.55 nats of a uniform guess over 256 bytes
        assert runs[model, "fp32"]["quality"]["loss_nats"] < 4.0
    assert runs["small", "fp32"]["quality"]["loss_nats"] < runs["tiny", "fp32"]["quality"]["loss_nats"]
    assert "held-out loss" in proc.stdout and "quality" in proc.stdout  # the terminal summary


def test_the_report_shows_quality_and_the_projection(sweep, tmp_path):
    _, root = sweep
    out = tmp_path / "report"
    proc = run_cli("report", str(root / "q"), "--out", str(out), "--served-tokens", "1e9", cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    page = (out / "index.html").read_text()
    assert '<section id="quality">' in page and "held-out loss (nats/token)" in page
    assert "Cost to serve, with training amortised (projection)" in page
    assert "The answer" in page and "held-out loss" in page  # the answer first, on the held-out quality
    if catalog.nearest_cpu_entry() is not None:  # this machine's price is assumed from the nearest entry
        assert "total USD / 1M tokens (projection)" in page and "assumed: nearest catalog entry" in page
        assert "Best quality per dollar" in page
    else:
        assert "No ok run has a serving cost." in page and "no per-dollar answer" in page
