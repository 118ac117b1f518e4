"""One tiny run through the real CLI with repeats=auto: how it stopped, and MBU beside MFU, in result.json."""

import pytest

from harness import accounting, adaptive, metrics, scenarios
from tests.conftest import load_results


def test_auto_repeats_and_mbu_are_in_the_result(harness):
    proc, root = harness("sweep=auto", "model.weights=random", "repeats=auto", "repeats_max=7", "repeats_target=0.5")
    assert proc.returncode == 0, proc.stderr
    (r,) = load_results(root / "auto")
    assert r["status"] == "ok", r["reason"]
    stopped, reps = r["adaptive_repeats"], r["repeats"]
    assert stopped["repeats"] == len(reps) and 6 <= len(reps) <= 7
    assert stopped["metric"] == "decode_tok_per_s" and stopped["target"] == 0.5 and stopped["max_repeats"] == 7
    # the recorded half-width is the rule's own figure over the recorded repeats
    assert stopped["half_width"] == pytest.approx(adaptive.half_width([x["decode_tok_per_s"] for x in reps]))
    assert stopped["reason"] == ("target reached" if stopped["half_width"] <= 0.5 else "max repeats")
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
