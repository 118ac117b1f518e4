"""End to end: `python -m harness gate` given damaged, empty or hostile inputs and outputs it cannot
write. Exit 1 means a regression and nothing else; every other failure is exit 2 in one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import run_cli
from gate_helpers import make, write

pytestmark = pytest.mark.e2e


def gate(*args, cwd: Path):
    return run_cli("gate", *map(str, args), cwd=cwd, timeout=120)


def _one_line_2(proc, *expected: str) -> None:
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith("harness gate: error: ") and "Traceback" not in proc.stderr
    for e in expected:
        assert e in line, line


@pytest.fixture(scope="module")
def sides(tmp_path_factory):
    root = tmp_path_factory.mktemp("sides")
    base, cand = write(root / "base", make(seed=1)), write(root / "cand", make(seed=2))
    good = make(seed=3)
    bad = {
        "baseline_no_results.json": {"schema": "harness.baseline/1"},
        "baseline_results_dict.json": {"schema": "harness.baseline/1", "results": {"a": 1}},
        "baseline_entry_no_key.json": {
            "schema": "harness.baseline/1",
            "results": [{k: v for k, v in good.items() if k != "key"}],
        },
        "baseline_empty.json": {"schema": "harness.baseline/1", "results": []},
    }
    for name, doc in bad.items():
        (root / name).write_text(json.dumps(doc))
    return root, base, cand


@pytest.mark.parametrize(
    "name, message",
    [
        ("baseline_no_results.json", "its 'results' is missing"),
        ("baseline_results_dict.json", "its 'results' is a dict, not a list"),
        ("baseline_entry_no_key.json", "results[0] is damaged (field 'key' is missing)"),
        ("baseline_empty.json", "'results' is empty: a baseline without runs cannot pass anything"),
    ],
)
def test_a_broken_baseline_file_is_exit_2(sides, name, message):
    root, _, cand = sides
    _one_line_2(gate("--baseline", root / name, "--candidate", cand, cwd=root), f"--baseline {root / name}", message)


def test_a_damaged_candidate_or_baseline_file_is_exit_2_naming_it(sides, tmp_path):
    root, base, cand = sides
    cand2 = write(tmp_path / "cand", make(seed=2))
    (path,) = cand2.rglob("result.json")
    path.write_text(path.read_text()[:200])  # truncated
    _one_line_2(gate("--baseline", base, "--candidate", cand2, cwd=tmp_path), f"--candidate {path}", "truncated")
    good = make(seed=4)
    (tmp_path / "nometrics.json").write_text(json.dumps({**good, "metrics": {}}))
    proc = gate("--baseline", tmp_path / "nometrics.json", "--candidate", cand, cwd=tmp_path)
    _one_line_2(proc, "nometrics.json", "'ok' without metrics")


def test_bad_settings_and_outputs_are_exit_2(sides, tmp_path):
    root, base, cand = sides
    (tmp_path / "garbage.yaml").write_text("confidence: [0.9\n  : {")
    (tmp_path / "interp.yaml").write_text("confidence: ${oc.env:HOME}\n")
    (tmp_path / "a_file").write_text("x")
    (tmp_path / "a_dir").mkdir()
    cases = [
        (["--config", tmp_path / "garbage.yaml"], "--config", "not readable YAML"),
        (["--config", tmp_path / "interp.yaml"], "holds an interpolation"),
        (["--out", tmp_path / "a_file" / "out"], "--out", "is not a writable folder"),
        (["--save-baseline", tmp_path / "a_file" / "b.json"], "--save-baseline", "is not a writable folder"),
        (["--save-baseline", tmp_path / "a_dir"], "--save-baseline", "is a folder"),
        (["--export-pytest-benchmark", tmp_path / "a_file" / "x.json"], "--export-pytest-benchmark"),
        (["metrics.decode_tok_per_sec.threshold=0.1"], "no such metric; did you mean decode_tok_per_s?"),
    ]
    for extra, *expected in cases:
        _one_line_2(gate("--baseline", base, "--candidate", cand, *extra, cwd=tmp_path), *expected)


def test_summary_md_escapes_values_copied_from_results(tmp_path):
    evil_model = "<img src=x onerror=alert(1)>*[x](http://e)*"
    base = make("model.name=" + "tiny", seed=1)
    cand = make(seed=2, status="error")
    for r in (base, cand):
        r["key_fields"]["model"] = evil_model
        r["key"] = r["key"].replace("model=tiny", "model=evil")
    cand["reason"] = "boom <script>alert(1)</script> | `x` [y](z)"
    b, c = write(tmp_path / "base", base), write(tmp_path / "cand", cand)
    proc = gate("--baseline", b, "--candidate", c, cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr  # ok -> error is a regression
    md = (c / "summary.md").read_text()
    assert "<img" not in md and "<script>" not in md
    assert "[x](http" not in md and "\\[x\\](http" in md  # no live link
    assert "&lt;img src=x onerror=alert(1)&gt;" in md and "&lt;script&gt;" in md and "\\[y\\](z)" in md
    assert "\\`x\\`" in md and "\\|" in md
