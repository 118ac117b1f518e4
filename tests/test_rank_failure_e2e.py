"""A failing rank ends the run at once with its reason: a real two-rank gloo run (torchrun) on CPU."""

import json
import os
import subprocess
import sys

import pytest
from conftest import FAST

from harness.distributed import FAULT_ENV, LATE_WORK_ENV, STALL_ENV

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


def _two_ranks(tmp_path, env: dict, *overrides: str) -> dict:
    proc = subprocess.run(
        [sys.executable, "-m", "harness", "gpus=2", f"timeout_s={TIMEOUT_S}", f"results_dir={tmp_path}", *overrides],
        cwd=tmp_path,
        env=dict(os.environ, **env),
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S + 60,
    )
    assert proc.returncode == 0, proc.stderr
    (path,) = tmp_path.rglob("result.json")
    return json.loads(path.read_text())


TRAIN = ["workload=training", "workload.max_steps=4", "workload.eval_interval=4", "workload.eval_batches=1"]
TRAIN += ["workload.lr_warmup_steps=1", "batch_size=2", "seq_len=32", "repeats=1"]


@pytest.mark.alone  # CPU ranks: a core each
def test_teardown_with_work_in_flight_ends_instead_of_deadlocking(tmp_path):
    # DDP training (its Reducer holds the process group) and an all_gather still on gloo's worker thread when the
    # ranks tear down: with the group destroyed under the GIL by the Reducer's destructor, rank 0 deadlocked
    # (the hang seen in full test runs, made certain here); now the Reducer goes first and the group after it
    result = _two_ranks(tmp_path, {LATE_WORK_ENV: "1"}, *TRAIN)
    assert result["status"] == "ok", result["reason"]
    assert result["launcher"]["returncode"] == 0 and result["launcher"]["wall_s"] < TIMEOUT_S
    assert result["distributed"]["collective_timeout_s"] == TIMEOUT_S / 2  # dist.timeout_s, at most half


@pytest.mark.alone  # CPU ranks: a core each
def test_a_rank_left_waiting_ends_the_run_naming_the_rank_and_the_wait(tmp_path):
    result = _two_ranks(tmp_path, {STALL_ENV: "1"}, *FAST, "dist.timeout_s=5")  # rank 1 never comes to the gather
    assert result["status"] == "error", result["reason"]
    assert result["reason"].startswith("rank 0 of 2: RankWaitError: waited "), result["reason"]
    assert "at the gather of every rank's figures for the other ranks" in result["reason"]
    assert result["launcher"]["wall_s"] < TIMEOUT_S / 2
