"""benchmarks/gpu_smoke.sh and its checks: what can be exercised without a GPU (the script itself needs one)."""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from synthetic import result, write

from harness import precision

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "benchmarks" / "gpu_smoke.sh"
_spec = importlib.util.spec_from_file_location("gpu_smoke", REPO / "benchmarks" / "gpu_smoke.py")
smoke = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(smoke)


def test_the_script_parses():
    subprocess.run(["bash", "-n", str(SCRIPT)], check=True)


def test_without_a_gpu_it_says_so_and_exits_2():
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="", PYTHON=sys.executable)  # no GPU, even on a GPU machine
    proc = subprocess.run(["bash", str(SCRIPT)], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 2 and "no CUDA GPU is visible to torch" in proc.stderr and proc.stdout == ""


@pytest.mark.parametrize(
    "counter, sampled, verdict",
    [(1050.0, 1000.0, "PASS"), (1100.0, 1000.0, "PASS"), (1150.0, 1000.0, "FAIL"), (850.0, 1000.0, "FAIL")],
)
def test_energy_agreement_within_ten_percent(counter, sampled, verdict):
    assert smoke.energy_verdict(counter, sampled).startswith(verdict + " energy")


def test_energy_without_a_reading_is_a_warning_not_a_pass():
    assert smoke.energy_verdict(None, 1000.0).startswith("WARN")


def _kernels(decode_path, reasons=()):
    k = {"path": decode_path, "m_rows": [1], "int8_linears": 1, "int8_matmuls": 0, "reasons": list(reasons)}
    return {"prefill": {**k, "path": precision.INT8_PATH}, "decode": k}


def test_int8_verdict_expects_a_fallback_at_batch_1_and_int8_at_32():
    reason = precision.int8_cuda_reason(1, 768, 768)
    assert smoke.int8_verdict(1, _kernels(precision.FLOAT_FALLBACK, [reason])).startswith("PASS int8-path-b1")
    assert smoke.int8_verdict(32, _kernels(precision.INT8_PATH)).startswith("PASS int8-path-b32")
    assert smoke.int8_verdict(32, _kernels(precision.FLOAT_FALLBACK)).startswith("FAIL")


CLOCKS = {
    "sm_mhz": {"start": 1980, "end": 1980, "min": 1965},
    "sm_max_mhz": 1980,
    "warmup": {"until": "steady"},
}


def _on_gpu(r, mode="preload", clocks=CLOCKS, disturbed=False, reason=None):
    """A record as a GPU run of the default launcher leaves it: its launcher, its clocks, its verdict."""
    r["launcher"] = {"mode": mode}
    gpus = [{"rank": 0, "device": "0 NVIDIA H200", "other_processes": 0, "clocks": clocks}] if clocks else []
    r["interference"] = {"gpus": gpus, "disturbed": disturbed, "reason": reason}
    return r


def test_run_verdicts_read_real_result_records(tmp_path):
    good = _on_gpu(result("bf16"))
    good["metrics"]["mfu_decode"] = 0.31
    good["energy"] = {"components": [{"covers": "gpu-board", "method": "nvml-counter"}]}
    sampled = _on_gpu(result("fp16"))
    sampled["energy"] = {"components": [{"covers": "gpu-board", "method": "sampled-power"}]}
    broken = result("fp32", status="error", reason="RuntimeError: boom")
    root = write(tmp_path, "smoke", [good, sampled, broken])
    lines = smoke.verdict(str(root))
    assert sorted(v.split()[0] for v in lines) == ["FAIL", "FAIL", "PASS"]
    assert any("GPU energy by sampled-power" in v for v in lines) and any("boom" in v for v in lines)
    assert smoke.verdict(str(tmp_path / "empty"))[0].startswith("FAIL runs")


def test_a_run_not_forked_or_without_clocks_fails_and_a_disturbed_one_warns():
    spawned = smoke.run_verdicts([_on_gpu(result("bf16"), mode="spawn")])[0]
    assert spawned.startswith("FAIL") and "launched by spawn, not by the fork server" in spawned
    touched = _on_gpu(result("bf16"))
    touched["warnings"] = ["launcher: the fork server initialised CUDA during its imports; the worker was spawned"]
    assert smoke.run_verdicts([touched])[0].startswith("FAIL")
    assert "no GPU clocks recorded" in smoke.run_verdicts([_on_gpu(result("bf16"), clocks=None)])[0]
    slow = smoke.run_verdicts([_on_gpu(result("bf16"), disturbed=True, reason="GPU 0 SM clock fell to 345 MHz")])[0]
    assert slow.startswith("WARN") and "345 MHz" in slow
    ok = smoke.run_verdicts([_on_gpu(result("bf16"))])[0]
    assert ok.startswith("PASS") and "SM 1965/1980/1980 of 1980 MHz (warm-up: steady)" in ok


def test_every_run_failing_the_same_way_stops_the_script_in_one_line(tmp_path):
    cuda = "RuntimeError: Cannot re-initialize CUDA in forked subprocess\ntraceback ..."
    same = [result(p, status="error", reason=cuda) for p in ("fp32", "fp16", "bf16")]
    assert smoke.same_failure(same) == (
        "FAIL all-runs: every run (3) failed the same way, stopping: error: "
        "RuntimeError: Cannot re-initialize CUDA in forked subprocess"
    )
    assert smoke.same_failure([*same, result("int8")]) is None  # one ran
    assert smoke.same_failure([*same, result("int8", status="oom", reason="out of memory")]) is None
    assert smoke.same_failure([]) is None
    root = write(tmp_path, "precisions", same)
    proc = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "gpu_smoke.py"), "stop-if-same", str(root)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 3 and proc.stdout.count("\n") == 1 and "failed the same way" in proc.stdout


def _overhead(tmp_path):
    spec = importlib.util.spec_from_file_location("gpu_overhead", REPO / "benchmarks" / "gpu_overhead.py")
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(REPO / "benchmarks"))
    spec.loader.exec_module(module)
    return module


def test_the_bare_ratio_runs_on_a_cpu_as_a_dry_run_and_its_verdicts_and_table_read_it(tmp_path):
    overhead = _overhead(tmp_path)
    out = tmp_path / "gpu_overhead.json"
    args = ["--device", "cpu", "--model", "tiny", "--precision", "fp32", "--batch-sizes", "1,2", "--rounds", "2"]
    args += ["--seconds", "0.05", "--seq-len", "8", "--decode-tokens", "2", "--out", str(out)]
    assert overhead.main(args) == 0
    summary = json.loads(out.read_text())
    assert set(summary["batches"]) == {"1", "2"}
    for b in summary["batches"].values():
        assert len(b["rounds"]) == 2 and set(b["compare"]) == {"prefill", "decode"}
        assert b["compare"]["decode"]["ratio_median"] > 0 and b["rounds"][0]["bare"]["clocks"]["sm_mhz_min"] is None
    lines = overhead.verdicts(summary)
    assert [x.split(":")[0].split()[1] for x in lines] == [
        "bare-ratio-prefill-b1", "bare-ratio-decode-b1", "bare-ratio-prefill-b2", "bare-ratio-decode-b2"
    ]  # fmt: skip
    rows = smoke.table([_on_gpu(result("bf16"))], summary)
    assert rows[2].startswith("| inference") and "1965/1980/1980" in rows[2]
    assert sum(r.startswith("| 1 | decode |") or r.startswith("| 2 | prefill |") for r in rows) == 2


def test_the_bare_ratio_verdict_holds_the_goal():
    figures = {"harness_tok_per_s_median": 94.0, "bare_tok_per_s_median": 100.0}
    side = {"clocks": {"sm_mhz_min": 1980, "sm_mhz_max": 1980, "mem_mhz_min": 3201}}
    summary = {"batches": {32: {"rounds": [{"harness": side, "bare": side}], "compare": {
        "prefill": {**figures, "ratio_median": 0.96}, "decode": {**figures, "ratio_median": 0.94}}}}}  # fmt: skip
    prefill, decode = _overhead(None).verdicts(summary)
    assert prefill.startswith("PASS bare-ratio-prefill-b32: harness/bare 0.960")
    assert decode.startswith("FAIL bare-ratio-decode-b32: harness/bare 0.940 (goal >= 0.95")
    assert "harness SM 1980-1980 MHz" in decode
