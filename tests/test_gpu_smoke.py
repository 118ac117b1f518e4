"""benchmarks/gpu_smoke.sh and its checks: what can be exercised without a GPU (the script itself needs one)."""

import importlib.util
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


def test_run_verdicts_read_real_result_records(tmp_path):
    good = result("bf16")
    good["metrics"]["mfu_decode"] = 0.31
    good["energy"] = {"components": [{"covers": "gpu-board", "method": "nvml-counter"}]}
    sampled = result("fp16")
    sampled["energy"] = {"components": [{"covers": "gpu-board", "method": "sampled-power"}]}
    broken = result("fp32", status="error", reason="RuntimeError: boom")
    root = write(tmp_path, "smoke", [good, sampled, broken])
    lines = smoke.verdict(str(root))
    assert sorted(v.split()[0] for v in lines) == ["FAIL", "FAIL", "PASS"]
    assert any("GPU energy by sampled-power" in v for v in lines) and any("boom" in v for v in lines)
    assert smoke.verdict(str(tmp_path / "empty"))[0].startswith("FAIL runs")
