"""A failing rank ends the run at once with its reason: a real two-rank gloo run (torchrun) on CPU."""

import json
import os
import subprocess
import sys

import pytest
from conftest import FAST

from harness.distributed import FAULT_ENV

TIMEOUT_S = 300  # the launcher's limit: a hang would end as status "timeout" after it


@pytest.mark.alone  # CPU ranks: a core each
def test_a_failing_rank_ends_the_run_with_its_reason_not_a_timeout(tmp_path):
    env = dict(os.environ, **{FAULT_ENV: "1"})  # rank 1 raises after joining; rank 0 goes on to the gather
    proc = subprocess.run(
        [sys.executable, "-m", "harness", *FAST, "gpus=2", f"timeout_s={TIMEOUT_S}", f"results_dir={tmp_path}"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S + 60,
    )
    assert proc.returncode == 0, proc.stderr
    (path,) = tmp_path.rglob("result.json")
    result = json.loads(path.read_text())
    assert result["status"] == "error", result["reason"]
    assert result["reason"].startswith("rank 1 of 2: RuntimeError: injected fault on rank 1")
    assert result["launcher"]["returncode"] != 0  # torchrun ended the group because rank 1 exited non-zero
    assert result["launcher"]["wall_s"] < TIMEOUT_S  # ended by the failure, not by the launcher's timeout
