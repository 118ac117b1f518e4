"""`hydra/launcher=slurm` against a real Slurm: a two-node cluster started on this machine for the session
(tests/slurm_cluster.py), the sweep submitted through hydra-submitit-launcher as a user's would be.

Where the Slurm and munge programs are missing the tests skip, naming the packages; with HARNESS_SLURM_REQUIRED=1
(.ci/run sets it, after installing them) a missing program fails them instead, so CI can never skip silently.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import slurm_cluster
from conftest import FAST, load_results

from harness import results

# the sweep's jobs on the test cluster: no GPU, one core and a little memory each; array_parallelism=1 runs one
# job at a time, so the second waits, PENDING (JobArrayTaskLimit), while the first runs
SLURM = [
    "hydra/launcher=slurm",
    "hydra.launcher.partition=debug",
    "hydra.launcher.gpus_per_node=0",
    "hydra.launcher.cpus_per_task=1",
    "hydra.launcher.mem_gb=1",
    "hydra.launcher.timeout_min=20",
]
# seeded random weights: no checkpoint to train first (what is compared is the same either way)
RUN = [*FAST, "model.weights=random"]
PACKAGES = "apt-get install --no-install-recommends slurmctld slurmd slurm-client slurmdbd munge mariadb-server"

# What may differ between the result of one configuration run by the local launcher and by Slurm. Everything else
# in the result file must be equal.
NOT_COMPARED = {
    "created_at": "the time the file was written",
    "metrics": "measured figures: two runs of one configuration never time alike",
    "repeats": "measured figures",
    "timing": "measured figures (startup, model build, the timed windows)",
    "energy": "measured figures (an estimate from the timed window's length)",
    "cost": "derived from the measured time",
    "interference": "what else ran on the cores at the time",
    "warnings": "interference warnings depend on what else ran at the time",
    "launcher": "this launch's pid, log path, launch id and wall time",
    "overrides": "carry sweep= and results_dir=, which name the folder",
}


def _require_slurm() -> None:
    """Skip where Slurm is missing, naming what to install; fail instead where HARNESS_SLURM_REQUIRED=1 (CI)."""
    gone = slurm_cluster.missing()
    if gone:
        why = f"Slurm is not installed here (missing {', '.join(gone)}; {PACKAGES})"
        if os.environ.get(slurm_cluster.CLUSTER_ENV) == "1":
            pytest.fail(f"{why}, and {slurm_cluster.CLUSTER_ENV}=1 says this machine must run the Slurm tests")
        pytest.skip(why)


def test_a_missing_slurm_skips_and_fails_where_it_is_required(monkeypatch, tmp_path):
    monkeypatch.setattr(slurm_cluster, "_path", lambda: str(tmp_path))  # a PATH holding none of the programs
    monkeypatch.delenv(slurm_cluster.CLUSTER_ENV, raising=False)
    with pytest.raises(pytest.skip.Exception, match=r"Slurm is not installed here \(missing munged, .*apt-get"):
        _require_slurm()
    monkeypatch.setenv(slurm_cluster.CLUSTER_ENV, "1")
    with pytest.raises(pytest.fail.Exception, match="HARNESS_SLURM_REQUIRED=1 says this machine must run"):
        _require_slurm()


@pytest.fixture(scope="session")
def slurm(tmp_path_factory):
    """A two-node Slurm cluster (both nodes on this host), stopped at the end of the session."""
    _require_slurm()
    cluster = slurm_cluster.start(tmp_path_factory.mktemp("slurm"), n_nodes=2)
    yield cluster
    cluster.stop()


@pytest.fixture
def on_cluster(slurm, monkeypatch):
    """The CLI started by this test reaches the cluster (submitit calls sbatch, sacct and scancel)."""
    for name, value in slurm.env.items():
        monkeypatch.setenv(name, value)
    return slurm


def _comparable(result: dict) -> dict:
    out = {k: v for k, v in result.items() if k not in NOT_COMPARED}
    out["config"] = {k: v for k, v in result["config"].items() if k not in results.VOLATILE}
    return out


@pytest.mark.alone
@pytest.mark.timeout(1200)
def test_slurm_sweep_writes_what_the_local_launcher_writes_and_a_cancelled_run_is_retried(on_cluster, harness):
    # One Slurm sweep (and its resume) serves both checks, a Slurm sweep being the costliest part of this file: its
    # first job cancelled while it measures, the second held PENDING meanwhile (array_parallelism=1) and then run,
    # the same command again measuring the cancelled run; then every result equals the local launcher's.
    # A longer timed window (min_time_s) so that the cancel lands while the worker measures.
    args = ["model.weights=random", "workload.min_time_s=2", "precision=fp32,bf16"]
    proc, root = harness("-m", "sweep=local", *args, timeout=600)
    assert proc.returncode == 0, proc.stderr
    flags = ["-m", *SLURM, "hydra.launcher.array_parallelism=1"]
    cmd = [sys.executable, "-m", "harness", *flags, *FAST, *args, f"results_dir={root}", "sweep=slurm"]
    log = root.parent / "sweep.out"
    with open(log, "w") as out:
        sweep = subprocess.Popen(cmd, cwd=root.parent, stdout=out, stderr=subprocess.STDOUT, text=True)
    try:
        job = _first_job_measuring(log, root / "slurm", sweep)
        on_cluster.run("scancel", job)
        assert sweep.wait(timeout=600) == 0, log.read_text()
    finally:
        if sweep.poll() is None:
            sweep.kill()
            sweep.wait()
    text = log.read_text()
    by_precision = {r["key_fields"]["precision"]: r for r in load_results(root / "slurm")}
    killed = by_precision["fp32"]
    assert killed["status"] == "killed", (killed["status"], killed["reason"], text)
    assert "SIGTERM" in killed["reason"] and "resume retries it" in killed["reason"], killed["reason"]
    assert by_precision["bf16"]["status"] == "ok", by_precision["bf16"]["reason"]
    # the jobs ran under Slurm (their logs are submitit's, under .submitit/<job id>), and the terminal saw them
    # wait and run: array_parallelism=1 holds the second job PENDING while the first runs
    assert re.search(r"\[2/2\] tiny bf16 .*: job \d+_1 PENDING", text), text
    assert re.search(r"\[1/2\] tiny fp32 .*: job \d+_0 RUNNING on harness[01] \(log: .*\.submitit/", text), text
    assert re.search(r"\[1/2\] tiny fp32 .*: killed \(job \d+_0\): ", text), text
    assert re.search(r"\[2/2\] tiny bf16 .*: ok \(job \d+_1\), decode", text), text
    assert "2 results (1 ok, 1 killed)" in text, text
    array = job.split("_")[0]
    sacct = on_cluster.run("sacct", "-n", "-X", "-P", "-o", "JobID,State", "-j", array).stdout.split("\n")
    states = sorted(line.split(" by ")[0] for line in sacct if line)  # "CANCELLED by <uid>"
    assert states == [f"{array}_0|CANCELLED", f"{array}_1|COMPLETED"], sacct
    # the same command again: the killed run is measured again, the complete one skipped
    again = subprocess.run(cmd, cwd=root.parent, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "2 results (2 ok)" in again.stdout, again.stdout
    assert re.search(r"\[1/2\] tiny fp32 .*: ok \(job \d+_0\)", again.stdout), again.stdout
    local = {r["key"]: r for r in load_results(root / "local")}
    slurm = {r["key"]: r for r in load_results(root / "slurm")}
    assert sorted(local) == sorted(slurm) and len(local) == 2
    for key in local:
        assert slurm[key]["status"] == "ok", slurm[key]["reason"]
        assert _comparable(slurm[key]) == _comparable(local[key]), key


def _first_job_measuring(log: Path, sweep_dir: Path, sweep: subprocess.Popen) -> str:
    """The Slurm id of the sweep's first job, once its run's worker has started measuring."""
    deadline = time.monotonic() + 400
    while time.monotonic() < deadline:
        assert sweep.poll() is None, f"the sweep ended before its first run was cancelled:\n{log.read_text()}"
        found = re.search(r"\[1/2\] tiny fp32 .*: job (\d+_0) RUNNING", log.read_text())
        workers = list(sweep_dir.glob("*-fp32-*/worker.log"))
        if found and workers and workers[0].stat().st_size > 0:  # the worker has started
            return found.group(1)
        time.sleep(0.2)
    raise AssertionError(f"the first run never started measuring:\n{log.read_text()}")


# a few training steps: a run across two nodes (DDP over gloo, one CPU rank per node)
TRAIN = ["workload=training", "workload.max_steps=4", "workload.eval_interval=4", "workload.eval_batches=1"]
TRAIN += ["workload.lr_warmup_steps=1", "batch_size=2", "seq_len=32", "repeats=1", "model.weights=random"]


@pytest.mark.alone
@pytest.mark.timeout(900)
def test_multinode_run_spans_two_slurm_nodes(on_cluster, tmp_path):
    # what the README's cluster section tells a user to do: the same command on every node of one allocation
    # (srun), node_rank from Slurm, one rendezvous on the first node, one results folder (a shared file system: both
    # "nodes" share this machine's disk; node_rank is part of the config, so each node has its own run folder).
    # Node 0 starts once node 1's torchrun runs: under c10d, which ranks nodes by (host, pid), that put global rank
    # 0 on node 1 and node 0's launcher wrote a spurious `error` result (issue 30; tests/test_multinode_e2e.py)
    port = slurm_cluster._free_port()
    results_dir = tmp_path / "results"
    script = tmp_path / "multinode.sh"
    script.write_text(
        "#!/bin/bash\n"
        'if [ "$SLURM_NODEID" = 0 ]; then\n'
        f"  for i in $(seq 1000); do grep -qs '\"node_rank\": 1,' {results_dir}/mn/*/run_spec.json && break\n"
        "    sleep 0.2; done\n"
        "fi\n"
        f"exec {sys.executable} -m harness gpus=1 dist=multinode dist.node_rank=$SLURM_NODEID "
        f"dist.rdzv_endpoint=127.0.0.1:{port} sweep=mn results_dir={results_dir} " + " ".join(TRAIN) + "\n"
    )
    script.chmod(0o755)
    out = tmp_path / "job.out"
    sbatch = ["sbatch", "--wait", "-N", "2", "--ntasks-per-node=1", "--cpus-per-task=1", f"--output={out}"]
    proc = subprocess.run(
        [*sbatch, "--wrap", f"srun -l {script}"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=800,
        env={**os.environ, **on_cluster.env},
    )
    log = out.read_text(errors="replace") if out.exists() else ""
    assert proc.returncode == 0, proc.stdout + proc.stderr + log
    job_id = re.search(r"Submitted batch job (\d+)", proc.stdout).group(1)
    nodes = on_cluster.run("sacct", "-n", "-X", "-P", "-o", "State,NodeList", "-j", job_id).stdout.strip()
    assert nodes == "COMPLETED|harness[0-1]", nodes
    # one result for the run, ok, node 0's (the static rendezvous puts global rank 0 there): nothing else anywhere
    found = load_results(results_dir)
    assert [(r["status"], r["reason"]) for r in found] == [("ok", None)], [
        (r["status"], r["reason"]) for r in found
    ] + [log]
    (run,) = found
    assert run["config"]["dist"]["node_rank"] == 0 and run["config"]["dist"]["nnodes"] == 2
    assert run["distributed"]["world_size"] == 2 and run["distributed"]["backend"] == "gloo", run["distributed"]
    (node,) = [json.loads(p.read_text()) for p in results_dir.rglob("node.json")]  # node 1's own part
    assert node["status"] == "ok" and node["node_rank"] == 1 and node["key"] == run["key"], node
    assert "1: [1/1] tiny fp32 bs=2 seq=32 gpus=1: node 1 of 2: ok; the run's result is node 0's" in log, log


@pytest.mark.alone
def test_a_job_cancelled_before_its_run_started_is_recorded_killed(on_cluster, tmp_path):
    # submitted held (sbatch --hold), so it is still PENDING when cancelled: no run started, no result of its own;
    # the launcher writes the run's `killed` result, and the sweep ends as any other
    held = "+hydra.launcher.additional_parameters.hold=true"
    args = [*RUN, f"results_dir={tmp_path / 'results'}", "sweep=held", held]
    cmd = [sys.executable, "-m", "harness", "-m", *SLURM, *args, "precision=fp32"]
    log = tmp_path / "sweep.out"
    with open(log, "w") as out:
        sweep = subprocess.Popen(cmd, cwd=tmp_path, stdout=out, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 200
        found = None
        while found is None and time.monotonic() < deadline and sweep.poll() is None:
            found = re.search(r"\[1/1\] tiny fp32 .*: job (\d+) PENDING", log.read_text())  # one job: no array
            time.sleep(0.2)
        assert found, log.read_text()
        on_cluster.run("scancel", found.group(1))
        assert sweep.wait(timeout=200) == 0, log.read_text()
    finally:
        if sweep.poll() is None:
            sweep.kill()
            sweep.wait()
    text = log.read_text()
    (result,) = load_results(tmp_path / "results" / "held")
    assert result["status"] == "killed", (result["status"], result["reason"], text)
    assert f"job {found.group(1)} ended CANCELLED without a result" in result["reason"], result["reason"]
    assert "resume retries it" in result["reason"]
    assert "1 results (1 killed)" in text, text
