"""Unit tests with known answers for what keeps a sweep whole: the OOM classifier on fake kernel
readings, the parent-death signal, a full disk at the writer, argv and data-path checks, and the
refusal of pickled code and remote code when loading a local model."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from harness import app, cli, datafiles, launch, results

CONFIG = {"timeout_s": 5.0, "memory_limit_bytes": 1000}


def _fake_kernel(tmp_path, cgroup_line: str, events: str, vmstat: str):
    proc, fs = tmp_path / "proc", tmp_path / "cg"
    (proc / "self").mkdir(parents=True)
    (proc / "self" / "cgroup").write_text(cgroup_line + "\n")
    (proc / "vmstat").write_text(f"pgfault 7\n{vmstat}\nnr_free_pages 1\n")
    return proc, fs, events


def test_oom_counters_read_cgroup_v2_v1_and_vmstat(tmp_path):
    proc, fs, _ = _fake_kernel(tmp_path, "0::/user.slice/job", "", "oom_kill 4")
    (fs / "user.slice" / "job").mkdir(parents=True)
    (fs / "user.slice" / "job" / "memory.events").write_text("low 0\nhigh 0\nmax 3\noom 2\noom_kill 2\n")
    counters = launch.oom_counters(proc, fs)
    assert sorted(counters.values()) == [2, 4]  # oom_kill, not `oom` (2 as well) nor `max` (3)
    v1 = tmp_path / "v1"
    proc1, fs1, _ = _fake_kernel(v1, "4:memory:/job", "", "oom_kill 0")
    (fs1 / "memory" / "job").mkdir(parents=True)
    (fs1 / "memory" / "job" / "memory.oom_control").write_text("oom_kill_disable 0\nunder_oom 0\noom_kill 9\n")
    assert sorted(launch.oom_counters(proc1, fs1).values()) == [0, 9]


def test_sigkill_is_oom_only_with_kernel_evidence():
    before = {"cgroup oom_kill (x)": 2, "vmstat oom_kill (/proc/vmstat)": 10}
    assert launch.oom_evidence(before, dict(before)) is None
    moved = launch.oom_evidence(before, {**before, "cgroup oom_kill (x)": 3})
    assert moved == "cgroup oom_kill (x) 2->3"
    status, reason = launch._failure(-signal.SIGKILL, None, 0, CONFIG, moved)
    assert status == "oom" and "2->3" in reason
    status, reason = launch._failure(-signal.SIGKILL, None, 0, CONFIG, None)
    assert status == "killed" and "SIGKILL" in reason
    assert launch._failure(-signal.SIGTERM, None, 0, CONFIG, None)[0] == "killed"
    assert launch._failure(-signal.SIGSEGV, None, 0, CONFIG, None) == ("error", "the worker died from signal SIGSEGV")
    assert launch._failure(None, "SIGINT", 0, CONFIG, None)[0] == "killed"
    assert launch._failure(-signal.SIGKILL, "memory", 2000, CONFIG, None)[0] == "oom"  # the watchdog fired
    assert "killed" in results.STATUSES and "killed" not in results.COMPLETE_STATUSES


def test_a_child_dies_with_its_parent(tmp_path):
    """The middle process starts a child with the parent-death signal, then dies: the child must go too."""
    pid_file = tmp_path / "child.pid"
    middle = (
        "import os, subprocess, sys\n"
        "from harness import guard\n"
        "me = os.getpid()\n"
        "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(300)'],"
        " preexec_fn=lambda: guard.die_with_parent(me), start_new_session=True)\n"
        f"open({str(pid_file)!r}, 'w').write(str(p.pid))\n"
        "os._exit(0)\n"
    )
    subprocess.run([sys.executable, "-c", middle], check=True, timeout=60)
    child = int(pid_file.read_text())
    for _ in range(200):  # the kernel delivers SIGKILL at once; reaping by init may take a moment
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            return
        if open(f"/proc/{child}/stat").read().split()[2] == "Z":
            return
        time.sleep(0.05)
    os.kill(child, signal.SIGKILL)
    raise AssertionError("the child outlived its parent")


def test_a_full_disk_at_the_writer_loses_nothing(tmp_path, monkeypatch):
    path = tmp_path / "result.json"
    results.write_atomic(path, {"a": 1})

    def no_space(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", no_space)
    with pytest.raises(OSError) as exc:
        results.write_atomic(path, {"a": 2})
    assert json.loads(path.read_text()) == {"a": 1} and os.listdir(tmp_path) == ["result.json"]
    exc.value.filename = str(path)
    line = app.disk_full_message(exc.value, "[2/3] tiny fp32")
    assert line.count("\n") == 0 and "No space left on device" in line and str(path) in line
    assert "run the same command again to resume" in line
    # a worker that died on ENOSPC is told apart from another error by its traceback's errno
    assert app._worker_disk_full({"status": "error", "log_tail": ["OSError: [Errno 28] No space left on device"]})
    assert not app._worker_disk_full({"status": "error", "log_tail": ["ValueError: [Errno 2] x"]})


def test_memory_limit_in_e_notation_becomes_an_integer():
    assert cli.normalise_argv(["-m", "memory_limit_bytes=2e8,4e9", "seq_len=16"]) == [
        "-m",
        "memory_limit_bytes=200000000,4000000000",
        "seq_len=16",
    ]
    assert cli.normalise_argv(["memory_limit_bytes=2.5e-1"]) == ["memory_limit_bytes=2.5e-1"]  # left to refuse


def test_data_path_problems(tmp_path):
    (tmp_path / "empty.txt").write_bytes(b"")
    (tmp_path / "bin.txt").write_bytes(b"abc\0def")
    (tmp_path / "latin1.txt").write_bytes("caf\xe9 au lait".encode("latin-1"))
    (tmp_path / "ok.txt").write_text("hello")
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "a.txt").write_text("x")
    (tmp_path / "d" / "b.json").write_text("{}")
    (tmp_path / "none").mkdir()
    assert datafiles.problem("text", str(tmp_path / "empty.txt")) == "the file is empty"
    assert datafiles.problem("text", str(tmp_path / "bin.txt")) == "a binary file, not text"
    assert datafiles.problem("text", str(tmp_path / "latin1.txt")).startswith("not UTF-8 text (byte 3)")
    assert datafiles.problem("parquet", str(tmp_path / "ok.txt")) == "not a parquet file"
    assert datafiles.problem("text", str(tmp_path / "ok.txt")) is None
    assert datafiles.problem("text", str(tmp_path / "d")) is None
    assert [f.name for f in datafiles.files_of("text", str(tmp_path / "d"))] == ["a.txt"]
    assert "holds no" in datafiles.problem("json", str(tmp_path / "none"))
    assert "needs an existing" in datafiles.problem("text", str(tmp_path / "missing"))


class _Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _local_model(path, **config_extra):
    from transformers import AutoConfig

    cfg = AutoConfig.for_model("llama", vocab_size=256, hidden_size=16, intermediate_size=32,
                               num_hidden_layers=1, num_attention_heads=2)  # fmt: skip
    cfg.save_pretrained(path)
    if config_extra:
        doc = json.loads((path / "config.json").read_text())
        (path / "config.json").write_text(json.dumps({**doc, **config_extra}))


def test_pickled_code_and_remote_code_are_refused(tmp_path):
    import pickle

    import torch

    from harness import models

    marker = tmp_path / "pwned"
    _local_model(tmp_path / "m")
    (tmp_path / "m" / "pytorch_model.bin").write_bytes(pickle.dumps(_Payload(marker)))
    with pytest.raises(Exception):  # noqa: B017 - whatever transformers raises, the payload must not run
        models.build({"path": str(tmp_path / "m")}, torch.float32, "cpu", 0)
    assert not marker.exists()
    _local_model(tmp_path / "r", auto_map={"AutoModelForCausalLM": "evil.EvilModel"}, model_type="evil")
    (tmp_path / "r" / "evil.py").write_text(f"open({str(marker)!r}, 'w')\n")
    with pytest.raises(Exception):  # noqa: B017
        models.build({"path": str(tmp_path / "r")}, torch.float32, "cpu", 0)
    assert not marker.exists()


def test_unused_workload_keys_are_refused_for_every_shipped_workload_and_not_for_plugins():
    import pytest as _pytest

    from harness import cli
    from harness.errors import ConfigError

    for workload, key in (("serving", "workload.warmup_iters=1"), ("inference", "workload.lr=0.1")):
        with _pytest.raises(ConfigError, match=f"is used only by workload=.*; this run is workload={workload}"):
            cli._check_used([key], workload, quality_on=True)
    cli._check_used(["workload.lr=0.1"], "training", quality_on=True)  # its own key
    cli._check_used(["workload.warmup_iters=1"], "prefill_only", quality_on=True)  # a plugin: not known here
    cli._check_used(["data.source=text"], "inference", quality_on=True)  # quality's held-out text
    with _pytest.raises(ConfigError, match="is used only by workload=training"):
        cli._check_used(["data.source=text"], "inference", quality_on=False)
