"""End to end: the real `python -m harness gate` in a subprocess, on synthetic and on real result files."""

from __future__ import annotations

import copy
import csv as csv_mod
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO, run_cli
from gate_helpers import ENV, make, read_json, write

pytestmark = pytest.mark.e2e
LABEL = "tiny fp32 bs=1 seq=128 gpus=1"


def gate(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return run_cli("gate", *map(str, args), cwd=cwd, timeout=120)


def sets(tmp_path, base, cand):
    return write(tmp_path / "base", *base), write(tmp_path / "cand", *cand)


def test_exit_0_pass_writes_verdicts_and_summary(tmp_path):
    base, cand = sets(tmp_path, [make(seed=1)], [make(seed=2)])
    proc = gate("--baseline", base, "--candidate", cand, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    verdicts = read_json(cand / "verdicts.json")
    assert verdicts["schema"] == "harness.verdicts/1" and verdicts["outcome"] == "pass" and verdicts["exit_code"] == 0
    assert verdicts["counts"]["pass"] == len(verdicts["checks"]) > 10
    assert (cand / "summary.md").read_text() == proc.stdout.rstrip("\n") + "\n"
    assert proc.stdout.startswith("## Regression gate: PASS (exit code 0)")
    assert proc.stderr.strip().splitlines()[-1].startswith("harness gate: PASS (exit code 0)")


def test_exit_1_regression_summary_is_sorted_and_says_how_to_reproduce(tmp_path):
    base, cand = sets(tmp_path, [make(seed=1), make("batch_size=4", seed=1)], [make(slowdown=1.3, seed=2)])
    out = tmp_path / "gate-out"
    proc = gate("--baseline", base, "--candidate", cand, "--out", out, cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr
    md = (out / "summary.md").read_text()
    rows = [line for line in md.splitlines() if line.startswith("| ") and not line.startswith("| verdict")]
    verdicts = [r.split(" | ")[0].removeprefix("| ") for r in rows]
    # regressions first, then the missing run, then the passing checks (folded)
    assert verdicts[: verdicts.index("missing")] == ["regression"] * verdicts.index("missing")
    assert verdicts.index("missing") < verdicts.index("pass")
    first = rows[0].split(" | ")
    assert first[1] == LABEL and first[5].count("[") == 1 and "ratio" in first[6]  # ratio [CI], threshold
    assert "### Reproduce the flagged runs" in md
    # one command per canonical key, with the label and the key beside it
    line = next(x for x in md.splitlines() if x.startswith(f"- {LABEL} (`workload=inference model=tiny"))
    assert "`): `python -m harness model=tiny precision=fp32 batch_size=1 seq_len=128" in line
    assert "batch_size=4" in md  # the missing run's command
    checks = read_json(out / "verdicts.json")["checks"]
    regressions = [c for c in checks if c["verdict"] == "regression"]
    assert checks[0]["verdict"] == "regression" and regressions
    for c in regressions:  # the whole interval beyond the threshold, on the metric's worse side
        if c["kind"] == "timed":
            worse = c["ci_low"] > 1 + c["threshold"] if c["better"] == "lower" else c["ci_high"] < 1 - c["threshold"]
            assert worse, c


@pytest.mark.parametrize(
    "args, message",
    [
        (["--bogus"], "harness gate: error: unrecognized arguments: --bogus"),
        (["--baseline", "base"], "harness gate: error: --candidate=None is not valid: required"),
        (["--candidate", "cand"], "harness gate: error: --baseline=None is not valid: required"),
        (["--baseline", "base", "--candidate", "nowhere"], "harness gate: error: --candidate nowhere: no such file"),
        (["--baseline", "empty", "--candidate", "cand"], "harness gate: error: --baseline empty: no result.json files"),
        (["--baseline", "other.json", "--candidate", "cand"], "--baseline other.json: schema 'x/1' is not valid"),
        (["--baseline", "base", "--candidate", "cand", "confidnce=0.9"], "did you mean confidence?"),
        (["--baseline", "base", "--candidate", "cand", "--config", "nope"], "--config=nope is not valid: choose one"),
    ],
)
def test_exit_2_usage_errors_are_one_line(tmp_path, args, message):
    sets(tmp_path, [make(seed=1)], [make(seed=2)])
    (tmp_path / "empty").mkdir()
    (tmp_path / "other.json").write_text(json.dumps({"schema": "x/1"}))
    proc = gate(*args, cwd=tmp_path)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], proc.stderr
    assert not (tmp_path / "cand" / "verdicts.json").exists()


def test_exit_3_inconclusive_and_the_flag_that_makes_it_a_warning(tmp_path):
    base, cand = sets(tmp_path, [make(repeats=2, seed=1)], [make(repeats=2, seed=2)])
    proc = gate("--baseline", base, "--candidate", cand, cwd=tmp_path)
    assert proc.returncode == 3, proc.stderr
    assert "fewer than min_repeats=3" in proc.stdout
    proc = gate("--baseline", base, "--candidate", cand, "--allow-inconclusive", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "INCONCLUSIVE (exit code 0)" in proc.stdout and "a warning" in proc.stderr
    proc = gate("--baseline", base, "--candidate", cand, "min_repeats=2", cwd=tmp_path)
    # decided by the figures now, not by the repeat count: 1 % noise against a 5 % threshold passes
    assert proc.returncode == 0, proc.stdout
    assert read_json(cand / "verdicts.json")["outcome"] == "pass"
    assert "min_repeats" not in proc.stdout.split("<details>")[0]


def test_exit_4_incomparable_environment(tmp_path):
    env = copy.deepcopy(ENV)
    env["device"] = {"type": "cuda", "name": "NVIDIA H100", "index": 0, "count": 1, "capability": [9, 0]}
    base, cand = sets(tmp_path, [make(seed=1)], [make(env=env, seed=2)])
    proc = gate("--baseline", base, "--candidate", cand, cwd=tmp_path)
    assert proc.returncode == 4, proc.stderr
    assert "| incomparable | tiny fp32 bs=1 seq=128 gpus=1 | environment |" in proc.stdout
    assert "device.type: cpu → cuda" in proc.stdout and "device.name: AMD EPYC → NVIDIA H100" in proc.stdout


def test_exit_4_missing_run(tmp_path):
    base, cand = sets(tmp_path, [make(seed=1), make("precision=bf16", seed=1)], [make(seed=2)])
    proc = gate("--baseline", base, "--candidate", cand, cwd=tmp_path)
    assert proc.returncode == 4, proc.stderr
    assert "| missing | tiny bf16 bs=1 seq=128 gpus=1 | run |" in proc.stdout


def test_threshold_override_on_the_command_line(tmp_path):
    base, cand = sets(tmp_path, [make(seed=1)], [make(slowdown=1.08, seed=2)])
    assert gate("--baseline", base, "--candidate", cand, cwd=tmp_path).returncode == 1
    yaml = tmp_path / "lenient.yaml"
    yaml.write_text(
        "metrics:\n"
        + "".join(
            f"  {m}: {{threshold: 0.15}}\n"
            for m in ("prefill_latency_s_p50", "ttft_s_p50", "decode_latency_s_p50", "request_latency_s_p50")
        )
    )
    throughputs = [f"metrics.{m}.threshold=0.15" for m in ("prefill", "decode", "e2e")]
    args = ["--baseline", base, "--candidate", cand, "--config", yaml]
    proc = gate(*args, *[t.replace(".threshold", "_tok_per_s.threshold") for t in throughputs], cwd=tmp_path)
    assert proc.returncode == 1 and "samples_per_s" in proc.stdout  # the one metric left at 5 %
    proc = gate(*args, *[t.replace(".threshold", "_tok_per_s.threshold") for t in throughputs],
                "metrics.samples_per_s.threshold=0.15", cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 0, proc.stdout
    assert "ratio ≤ 1.15" in proc.stdout


def test_save_baseline_then_gate_against_it(tmp_path):
    main = write(tmp_path / "main", make(seed=1), make("precision=bf16", seed=1))
    baseline = tmp_path / "results" / "baseline.json"
    proc = gate("--candidate", main, "--save-baseline", baseline, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert f"baseline: {baseline} (2 runs, commit 0123456789" in proc.stderr
    stored = read_json(baseline)
    assert stored["schema"] == "harness.baseline/1" and len(stored["results"]) == 2
    assert stored["fingerprint"]["cpu_model"] == "AMD EPYC" and stored["fingerprint"]["packages.torch"] == "2.13.0+cpu"
    assert stored["git"] == {"commit": "0123456789abcdef", "dirty": False}

    pr = write(tmp_path / "pr", make(seed=2), make("precision=bf16", seed=2))
    proc = gate("--baseline", baseline, "--candidate", pr, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout
    assert f"against baseline `{baseline}` (2 runs" in proc.stdout


def test_a_baseline_from_two_machines_is_refused(tmp_path):
    env = copy.deepcopy(ENV)
    env["cpu_model"] = "Intel Xeon"
    mixed = write(tmp_path / "mixed", make(seed=1), make("precision=bf16", env=env, seed=1))
    proc = gate("--candidate", mixed, "--save-baseline", tmp_path / "b.json", cwd=tmp_path)
    assert proc.returncode == 2 and "several environments" in proc.stderr
    assert not (tmp_path / "b.json").exists()


def _pytest_benchmark() -> str:
    exe = Path(sys.executable).with_name("pytest-benchmark")
    return str(exe) if exe.exists() else shutil.which("pytest-benchmark")


def test_export_reads_in_the_real_pytest_benchmark_compare(tmp_path):
    base, cand = sets(tmp_path, [make(seed=1), make("precision=bf16", status="oom")], [make(slowdown=1.2, seed=2)])
    for name, src in (("0001_base.json", base), ("0002_cand.json", cand)):
        proc = gate("--candidate", src, "--export-pytest-benchmark", tmp_path / name, cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
    exported = read_json(tmp_path / "0001_base.json")
    assert len(exported["benchmarks"]) == 4 and len(exported["harness"]["skipped"]) == 1  # the oom run: no data
    csv = tmp_path / "cmp"
    proc = subprocess.run(
        [_pytest_benchmark(), "compare", "--group-by=group", f"--csv={csv}", "0001_base.json", "0002_cand.json"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert "request_latency_s" in proc.stdout and "decode_latency_s" in proc.stdout
    (table,) = tmp_path.glob("cmp*.csv")
    rows = list(csv_mod.DictReader(table.read_text().splitlines()))
    assert len(rows) == 8  # 4 latencies x 2 files
    base_row, cand_row = [r for r in rows if r["name"].startswith("harness::request_latency_s_p50[")]
    assert float(cand_row["median"]) / float(base_row["median"]) == pytest.approx(1.2, rel=0.03)
    assert int(base_row["rounds"]) == 10


def test_two_real_sweeps(harness, tmp_path):
    """Two tiny sweeps made with the CLI: matched by key, counted figures equal, a dropped run is missing."""
    proc, root = harness("-m", "sweep=base", "precision=fp32,bf16")
    assert proc.returncode == 0, proc.stderr
    proc, _ = harness("sweep=cand", "precision=fp32")
    assert proc.returncode == 0, proc.stderr
    proc = gate("--baseline", root / "base", "--candidate", root / "cand", cwd=tmp_path)
    assert proc.returncode == 4, proc.stdout + proc.stderr  # bf16 is missing from the candidate
    checks = read_json(root / "cand" / "verdicts.json")["checks"]
    fp32 = {c["metric"]: c for c in checks if c["label"] == "tiny fp32 bs=1 seq=16 gpus=1"}
    assert {fp32[m]["verdict"] for m in ("status", "params", "flops_per_token_decode", "matmul_params")} == {"pass"}
    assert fp32["params"]["baseline"] == fp32["params"]["candidate"] == 1_115_264
    # FAST sweeps keep 2 repeats: below min_repeats, so the timed figures are honestly inconclusive
    timed = [c for c in checks if c["kind"] == "timed"]
    # a machine with a price (catalog entry or the nearest one assumed) also gates each repeat's cost
    (fp32_file,) = [p for p in (root / "cand").rglob("result.json")]
    priced = read_json(fp32_file)["cost"] is not None
    assert ("usd_per_1m_tokens_generated" in {c["metric"] for c in timed}) is priced
    assert len(timed) == 8 + priced and {c["verdict"] for c in timed} == {"inconclusive"}
    assert all(c["n_baseline"] == 2 and c["baseline"] > 0 for c in timed)
    missing = [c for c in checks if c["verdict"] == "missing"]
    assert [c["label"] for c in missing] == ["tiny bf16 bs=1 seq=16 gpus=1"]
    assert "precision=bf16" in missing[0]["reproduce"] and "seq_len=16" in missing[0]["reproduce"]
    # the reproduce command is a valid command line for the harness
    from harness import app, cli

    app.register()
    args = missing[0]["reproduce"].split()[3:]
    assert cli.prevalidate(args) == 1
    # a report built from the candidate's folder carries the gate's verdict section
    from conftest import run_cli

    proc = run_cli("report", str(root / "cand"), "--out", str(tmp_path / "rep"), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    page = (tmp_path / "rep" / "index.html").read_text()
    assert "Regression gate (cand)" in page and "missing" in page and "inconclusive" in page


def test_readme_documents_every_exit_code():
    readme = (REPO / "README.md").read_text()
    section = readme.split("## Regression gate", 1)[1]
    for code, meaning in ((0, "pass"), (1, "regression"), (2, "usage"), (3, "inconclusive"), (4, "incomparable")):
        assert f"| {code} |" in section and meaning in section
