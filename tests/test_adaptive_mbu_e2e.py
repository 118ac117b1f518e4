"""One tiny run through the real CLI with repeats=auto: how it stopped, and MBU beside MFU, in result.json;
a run short of its target is said so in the summary and the report."""

import pytest

from harness import accounting, adaptive, metrics, scenarios
from tests.conftest import load_results, run_cli


def test_auto_repeats_and_mbu_are_in_the_result(harness, tmp_path):
    # a target no timing reaches (six equal rates): the rule stops at its cap, and says so
    proc, root = harness("sweep=auto", "model.weights=random", "repeats=auto", "repeats_max=6", "repeats_target=1e-6")
    assert proc.returncode == 0, proc.stderr
    (r,) = load_results(root / "auto")
    assert r["status"] == "ok", r["reason"]
    stopped, reps = r["adaptive_repeats"], r["repeats"]
    assert stopped["repeats"] == len(reps) == 6 and stopped["reason"] == "max repeats"
    assert stopped["metric"] == "decode_tok_per_s" and stopped["target"] == 1e-6 and stopped["max_repeats"] == 6
    # the recorded half-width is the rule's own figure over the recorded repeats
    assert stopped["half_width"] == pytest.approx(adaptive.half_width([x["decode_tok_per_s"] for x in reps]))
    why = f"max repeats after 6 repeats: ±{100 * stopped['half_width']:.1f} % (target ±0.0001 %)"
    assert "repeats=auto: 1 run(s) stopped short of their target" in proc.stdout and why in proc.stdout
    report = run_cli("report", str(root / "auto"), cwd=tmp_path)
    assert report.returncode == 0, report.stderr
    html = (tmp_path / "reports" / "auto" / "index.html").read_text()
    assert '<div class="note" id="adaptive"><b>1 repeats=auto run(s) short of their target</b>' in html
    assert why in html
    m = r["metrics"]
    assert m["bytes_per_decode_step"] == m["weight_bytes_per_decode_step"] + m["kv_cache_bytes_per_decode_step"]
    assert m["decode_steps_per_s"] == pytest.approx(m["decode_tok_per_s"])  # batch 1
    assert m["mbu_decode"] == pytest.approx(
        m["bytes_per_decode_step"] * m["decode_steps_per_s"] / m["peak_bandwidth_bytes_per_s"]
    )
    assert m["bandwidth_source"].startswith("measured on this machine") and m["calibration_bandwidth_bytes_per_s"] > 0
    written = set(m) | {k for rep in reps for k in rep}  # all declared and registered
    assert written <= set(metrics.names()) and written <= set(scenarios.get("inference").writes) | set(
        accounting.COMMON_METRICS
    )
    assert "MFU prefill" in proc.stdout and "MBU decode" in proc.stdout  # the summary shows both limits
