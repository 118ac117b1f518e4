"""End to end, as a hostile but realistic user: kill, interrupt, corrupt, fill the disk and mistype, with
the real CLI in a subprocess, real signals and real files. Each check reads what the CLI wrote."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from conftest import FAST, REPO, load_results, run_cli

pytestmark = pytest.mark.e2e

# a sweep whose first run ends as `oom` under the watchdog (a tiny worker holds > 200 MB) and whose second
# is ok: two results, not one, because the memory limit is part of a run's identity
# feasibility.force: 2e8 is below the process's own measured baseline (~0.5 GB), which the memory model now
# counts, so the run would be predicted-oom and never launched; these tests need it launched and killed
SHARED = ["-m", "sweep=shared", "memory_limit_bytes=2e8,4e9", "feasibility.force=true", *FAST]


def _popen(args: list[str], cwd: Path) -> subprocess.Popen:
    """The CLI in its own process group, as a terminal starts it (a Ctrl-C reaches the whole group)."""
    return subprocess.Popen(
        [sys.executable, "-m", "harness", *args],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def _wait_for_worker(launcher: subprocess.Popen, deadline_s: float = 120) -> psutil.Process:
    """The worker process once it has started under `launcher`: the one in a session of its own, spawned
    (python -m harness.worker) or forked from the fork server (launcher.preload, the default)."""
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        assert launcher.poll() is None, launcher.communicate()
        for child in psutil.Process(launcher.pid).children(recursive=True):
            try:
                if os.getsid(child.pid) == child.pid:
                    return child
            except ProcessLookupError:
                pass
        time.sleep(0.1)
    raise AssertionError("no worker started")


def _gone(proc: psutil.Process, deadline_s: float = 30) -> bool:
    try:
        proc.wait(deadline_s)
    except psutil.TimeoutExpired:
        return False
    return True


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    """Two identical sweeps started at once into one folder: each run is measured by exactly one of them."""
    root = tmp_path_factory.mktemp("shared")
    args = [*SHARED, f"results_dir={root / 'results'}"]
    procs = [_popen(args, root) for _ in range(2)]
    outs = [p.communicate(timeout=400) for p in procs]
    for p, (_, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err
    return root, args, [o for o, _ in outs]


def _runs(root: Path) -> dict[str, Path]:
    """status -> run folder of the shared sweep."""
    return {json.loads(p.read_text())["status"]: p.parent for p in (root / "results" / "shared").rglob("result.json")}


# ---- 13, 14: identity and two sweeps at once ---------------------------------------------------------------


def test_memory_limit_is_identity_and_two_sweeps_share_a_folder(shared):
    root, _, outs = shared
    runs = _runs(root)
    assert set(runs) == {"oom", "ok"}  # two results, not one
    records = {s: json.loads((d / "result.json").read_text()) for s, d in runs.items()}
    assert records["oom"]["key_fields"]["memory_limit_bytes"] == 200_000_000
    assert records["ok"]["key_fields"]["memory_limit_bytes"] == 4_000_000_000
    assert records["oom"]["key"] != records["ok"]["key"]
    # each run measured once, by one of the two sweeps; the other waited for it, then skipped it
    assert sum(o.count(": running ...") for o in outs) == 2
    assert sum(o.count("already complete, skipped") for o in outs) == 2
    assert any("is in use by pid" in o for o in outs)
    for d in runs.values():  # result.json and run_spec.json of a run come from the same launch
        spec = json.loads((d / "run_spec.json").read_text())
        assert json.loads((d / "result.json").read_text())["launcher"]["launch_id"] == spec["launch_id"]
        assert not list(d.glob("result.*.json"))  # no staged file left behind


# ---- 4, 5: damaged results in resume and report --------------------------------------------------------------


def test_resume_names_a_damaged_result_and_measures_it_again(shared, tmp_path):
    root, args, _ = shared
    shutil.copytree(root / "results", tmp_path / "results")
    oom_dir = _runs(tmp_path)["oom"]
    ok_before = (_runs(tmp_path)["ok"] / "result.json").read_bytes()
    (oom_dir / "result.json").write_text('{"schema": "harness.result/1", "key": ')  # truncated
    proc = run_cli(*args[:-1], f"results_dir={tmp_path / 'results'}", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    warnings = [line for line in proc.stderr.splitlines() if "damaged result" in line]
    assert len(warnings) == 1 and str(oom_dir / "result.json") in warnings[0] and "truncated" in warnings[0]
    assert json.loads((oom_dir / "result.json").read_text())["status"] == "oom"  # measured again
    assert (_runs(tmp_path)["ok"] / "result.json").read_bytes() == ok_before  # byte-identical, skipped


def test_report_leaves_damaged_files_out_and_says_so(shared, tmp_path):
    root, _, _ = shared
    sweep = tmp_path / "shared"
    shutil.copytree(root / "results" / "shared", sweep)
    good = json.loads((_runs(root)["ok"] / "result.json").read_text())
    bad = sweep / "zz-damaged" / "result.json"
    bad.parent.mkdir()
    bad.write_text(json.dumps({**good, "metrics": {}}))  # ok without metrics
    proc = run_cli("report", str(sweep), "--out", str(tmp_path / "r"), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    (line,) = [x for x in proc.stderr.splitlines() if "damaged" in x]
    assert str(bad) in line and "'ok' without metrics" in line
    html = (tmp_path / "r" / "index.html").read_text()
    assert "Damaged result files (left out)" in html and str(bad) in html
    assert (tmp_path / "r" / "runs.csv").read_text().count("\n") == 3  # header + the two good runs


# ---- 1, 2, 3: killed workers, Ctrl-C, kill -9 of the whole group -----------------------------------------------


def test_sigkill_of_a_worker_is_killed_then_ctrl_c_then_resume(tmp_path):
    # random weights: with trained ones the first worker may be the checkpoint's training run (a fresh cache)
    args = ["sweep=sig", *FAST, "model.weights=random", "workload.min_time_s=2", f"results_dir={tmp_path / 'results'}"]
    # 3: a worker killed by SIGKILL without kernel OOM evidence is `killed`, with the signal in its reason
    launcher = _popen(args, tmp_path)
    _wait_for_worker(launcher).kill()
    out, err = launcher.communicate(timeout=120)
    assert launcher.returncode == 0, err
    (r,) = load_results(tmp_path / "results")
    assert r["status"] == "killed" and "SIGKILL" in r["reason"] and "no out-of-memory evidence" in r["reason"]
    # 2: killed is retried; a Ctrl-C (SIGINT to the group) stops it: one line, exit 130, no traceback
    launcher = _popen(args, tmp_path)
    worker = _wait_for_worker(launcher)
    os.killpg(launcher.pid, signal.SIGINT)
    out, err = launcher.communicate(timeout=60)
    assert launcher.returncode == 130, err
    assert "running ..." in out and "Traceback" not in err + out
    (line,) = err.strip().splitlines()
    assert line.startswith("harness: interrupted by SIGINT at [1/1] tiny fp32") and "run the same command again" in line
    assert _gone(worker)  # 1: no worker outlives the interrupted sweep
    (r,) = load_results(tmp_path / "results")
    assert r["status"] == "killed" and "interrupted by SIGINT" in r["reason"]
    # SIGTERM (a scheduler's stop) is the same, with exit code 143
    launcher = _popen(args, tmp_path)
    worker = _wait_for_worker(launcher)
    launcher.terminate()
    out, err = launcher.communicate(timeout=60)
    assert launcher.returncode == 143 and "Traceback" not in err, err
    assert err.strip().startswith("harness: interrupted by SIGTERM at [1/1]") and _gone(worker)
    # the interrupted run is retried by the same command, and completes
    proc = run_cli(*args, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    (r,) = load_results(tmp_path / "results")
    assert r["status"] == "ok" and "already complete" not in proc.stdout


def test_kill_9_of_the_process_group_leaves_no_worker_and_no_result(tmp_path):
    args = ["sweep=k9", *FAST, "model.weights=random", "workload.min_time_s=30", f"results_dir={tmp_path / 'results'}"]
    launcher = _popen(args, tmp_path)
    worker = _wait_for_worker(launcher)
    os.killpg(launcher.pid, signal.SIGKILL)  # the worker is in a session of its own: the kernel ends it
    launcher.communicate(timeout=60)
    assert _gone(worker)
    run_dir = next((tmp_path / "results" / "k9").iterdir())
    assert not (run_dir / "result.json").exists() and not list(run_dir.glob("result.*.json"))


# ---- 15: a full disk -------------------------------------------------------------------------------------------


def _mount_tmpfs(path: Path, size: str) -> bool:
    path.mkdir()
    if os.geteuid() != 0 or not shutil.which("mount"):
        return False
    return subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)]).returncode == 0


def _fill(path: Path) -> Path:
    filler = path / "filler"
    with open(filler, "wb", buffering=0) as f:  # unbuffered: nothing left to flush (and fail) at close
        try:
            while True:
                f.write(b"\0" * 65536)
                f.flush()
        except OSError:
            pass
    return filler


def test_full_disk_stops_in_one_line_keeps_results_and_resumes(shared, tmp_path):
    root, args, _ = shared
    disk = tmp_path / "disk"
    if not _mount_tmpfs(disk, "4m"):
        pytest.skip("needs root and tmpfs for a small disk; test_reliability_units covers ENOSPC at the writer")
    try:
        shutil.copytree(root / "results", disk / "results")
        runs = _runs(disk)
        ok_bytes = (runs["ok"] / "result.json").read_bytes()
        (runs["oom"] / "result.json").unlink()  # a run left to measure
        filler = _fill(disk)
        cmd = [*args[:-1], f"results_dir={disk / 'results'}"]
        proc = run_cli(*cmd, cwd=tmp_path)
        assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
        (line,) = proc.stderr.strip().splitlines()
        assert "No space left on device" in line and "free space and run the same command again" in line
        assert (runs["ok"] / "result.json").read_bytes() == ok_bytes  # nothing already written is lost
        filler.unlink()
        proc = run_cli(*cmd, cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
        assert {json.loads(p.read_text())["status"] for p in (disk / "results").rglob("result.json")} == {"ok", "oom"}
        assert (runs["ok"] / "result.json").read_bytes() == ok_bytes
    finally:
        subprocess.run(["umount", str(disk)])


# ---- 9, 10, 11, 12: bad input on the command line, refused before anything runs --------------------------------


def _bad_inputs(tmp_path: Path) -> list[tuple[list[str], str]]:
    (tmp_path / "empty.txt").write_bytes(b"")
    (tmp_path / "blob.txt").write_bytes(bytes(range(256)) * 4)
    (tmp_path / "a_file").write_text("x")
    train = ["workload=training", "data.source=text"]
    return [
        (["timeout_s=nan"], "timeout_s=nan is not valid: must be a finite number"),
        (["hardware.usd_per_hour=inf"], "hardware.usd_per_hour=inf is not valid: must be a finite number"),
        (["energy.pue=-inf"], "energy.pue=-inf is not valid: must be a finite number"),
        (["workload.min_time_s=nan"], "workload.min_time_s=nan is not valid"),
        (["+foo=1"], "+foo=1 is not valid: no such key"),
        (["workload.target_eval_loss=-1"], "is used only by workload=training; this run is workload=inference"),
        # data.* is inference's held-out quality text, so it is unused only with quality off
        (["quality.enabled=false", "data.source=synthetic"], "data.source=synthetic is not valid: is used only by"),
        (["sweep=../../x"], "sweep='../../x' is not valid: must be one folder name"),
        (["sweep="], "sweep='' is not valid"),
        (["sweep=a/b"], "sweep='a/b' is not valid"),
        (["sweep='<b>x</b>'"], "sweep='<b>x</b>' is not valid"),
        ([f"results_dir={tmp_path / 'a_file' / 'r'}"], "is not a writable folder"),
        # os.access says yes to root anywhere: only making the folder tells (was exit 1, "free space", mid-sweep)
        (["results_dir=/proc/harness-results"], "results_dir=/proc/harness-results is not valid: cannot be created"),
        (
            [*train, f"data.path={tmp_path / 'empty.txt'}"],
            f"data.path={tmp_path / 'empty.txt'} is not valid: the file is empty",
        ),
        ([*train, f"data.path={tmp_path / 'blob.txt'}"], "blob.txt is not valid: a binary file, not text"),
    ]


def test_bad_input_is_refused_in_one_line_before_anything_runs(tmp_path):
    for args, expected in _bad_inputs(tmp_path):
        out = [] if any(a.startswith("results_dir=") for a in args) else ["results_dir=out"]
        proc = run_cli(*args, *out, cwd=tmp_path, timeout=120)
        assert proc.returncode == 2, (args, proc.stderr)
        assert proc.stderr.count("\n") == 1 and expected in proc.stderr, (args, proc.stderr)
        assert not (tmp_path / "out").exists()


def test_a_folder_of_text_files_trains(harness, tmp_path):
    data = tmp_path / "texts"
    data.mkdir()
    from pydoc_data.topics import topics

    for i, k in enumerate(sorted(topics)[:60]):
        (data / f"doc{i:02d}.txt").write_text(topics[k])
    (data / "notes.bin").write_bytes(b"\0\1\2")  # not a text suffix: not read
    train = ["workload=training", "workload.max_steps=4", "workload.eval_interval=4", "workload.eval_batches=1"]
    train += ["workload.lr_warmup_steps=1", "workload.warmup_steps=1", "batch_size=2", "seq_len=32", "repeats=1"]
    proc, root = harness("sweep=folder", *train, "data.source=text", f"data.path={data}", fast=False)
    assert proc.returncode == 0, proc.stderr
    (r,) = load_results(root)
    assert r["status"] == "ok", r["reason"]
    lines = sum(len(f.read_text().splitlines()) for f in data.glob("*.txt"))  # `text`: one document per line
    assert r["data"]["train_documents"] + r["data"]["eval_documents"] == lines  # every .txt, nothing else


def test_readme_and_results_doc_name_every_status_and_exit_code():
    from harness import results

    for doc in (REPO / "README.md", REPO / "docs" / "results.md"):
        text = doc.read_text()
        for status in results.STATUSES:
            assert f"`{status}`" in text, (doc, status)
        for code in ("130", "143"):
            assert code in text, (doc, code)
