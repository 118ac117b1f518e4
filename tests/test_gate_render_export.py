"""What the gate writes for people and tools: Markdown, the HTML fragment, reproduce commands, pytest-benchmark."""

import json
import random

import pytest
from gate_helpers import make
from pytest_benchmark.stats import Stats

from harness import cli, reproduce
from harness.errors import ConfigError
from harness.gate import compare, export, render, settings
from harness.gate.baseline import Side


def _report(base, cand, allow_inconclusive=False):
    b, c = Side(["b"]), Side(["c"])
    for r in base:
        b.by_key.setdefault(r["key"], []).append(r)
    for r in cand:
        c.by_key.setdefault(r["key"], []).append(r)
    s = settings.load()
    checks = compare.compare(b, c, s)
    # through JSON, as the report builder will read it
    return json.loads(json.dumps(compare.report(checks, b, c, s, allow_inconclusive)))


@pytest.fixture(scope="module")
def regression():
    return _report([make(seed=1), make("precision=bf16", seed=1)], [make(slowdown=1.3, seed=2)])


def test_markdown_lists_flagged_checks_first_then_commands_then_the_rest_folded(regression):
    md = render.markdown(regression)
    lines = md.splitlines()
    assert lines[0] == "## Regression gate: REGRESSION (exit code 1): 8 regression, 1 missing, 6 pass"
    header = "| verdict | config | metric | baseline | candidate | ratio [CI] | threshold | note |"
    assert lines.count(header) == 2  # flagged table, folded passing table
    flagged = md.split("### Reproduce")[0]
    assert "| pass |" not in flagged and flagged.index("| regression |") < flagged.index("| missing |")
    assert "<details><summary>6 passing checks</summary>" in md
    row = next(line for line in lines if "| request_latency_s_p50 |" in line)
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[0] == "regression" and cells[3].endswith(" ms") and cells[4].endswith(" ms")
    assert cells[5].startswith("1.") and cells[6] == "ratio ≤ 1.05" and cells[7] == "n=10/10"
    memory = next(line for line in lines if "| peak_rss_bytes |" in line)
    assert "380.0 MiB" in memory and "±max(2 %, 64.0 MiB)" in memory


def test_markdown_escapes_table_breakers():
    rep = _report([make(seed=1)], [make(status="error", seed=2)])
    rep["checks"][0]["note"] = "a | b\nc"
    md = render.markdown(rep)
    assert "a \\| b c" in md


def test_html_fragment_is_escaped_and_complete(regression):
    regression["checks"][0]["note"] = "<script>alert(1)</script>"
    frag = render.html_fragment(regression)
    assert frag.startswith('<section class="harness-gate" data-outcome="regression">')
    assert "<script>" not in frag and "&lt;script&gt;" in frag
    assert frag.count('<tr class="regression">') == 8 and frag.count('<tr class="pass">') == 6
    assert "<h3>Reproduce the flagged runs</h3>" in frag and frag.rstrip().endswith("</section>")


def test_read_verdicts_checks_the_schema(tmp_path, regression):
    good, bad = tmp_path / "v.json", tmp_path / "x.json"
    good.write_text(json.dumps(regression))
    bad.write_text(json.dumps({"schema": "harness.result/1"}))
    assert render.read_verdicts(good)["outcome"] == "regression"
    with pytest.raises(ValueError, match="not a harness.verdicts/1 file"):
        render.read_verdicts(bad)


@pytest.mark.parametrize(
    "overrides, expected",
    [
        ((), "python -m harness model=tiny precision=fp32 batch_size=1 seq_len=128 sweep=gate-repro"),
        (
            ("model=small", "model.hidden_size=192", "batch_size=4", "threads=1", "workload.min_time_s=0.2"),
            "python -m harness model=small precision=fp32 batch_size=4 seq_len=128 model.hidden_size=192 "
            "workload.min_time_s=0.2 threads=1 sweep=gate-repro",
        ),
    ],
)
def test_reproduce_command_rebuilds_the_config(overrides, expected):
    config = make(*overrides)["config"]
    cmd = reproduce.command(config, sweep="gate-repro")
    assert cmd == expected
    assert cli.prevalidate(cmd.split()[3:]) == 1  # the harness accepts it as it is


def test_reproduce_command_of_a_local_model_quotes_the_path():
    config = make()["config"]
    config["model"] = {**config["model"], "name": "local", "path": "/models/my model"}
    assert "'model.path=/models/my model'" in reproduce.command(config)


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 13, 20])
def test_exported_stats_match_pytest_benchmark(n):
    rng = random.Random(n)
    data = [rng.lognormvariate(-5, 0.3) for _ in range(n)]
    ours = export.stats(data)
    theirs = Stats()
    for x in data:
        theirs.update(x)
    for field in Stats.fields:
        expected = getattr(theirs, field)
        assert ours[field] == (expected if isinstance(expected, str) else pytest.approx(expected, rel=1e-12)), field
    assert ours["data"] == data


def test_export_document_shape():
    records = [make(seed=1), make("precision=bf16", status="oom")]
    doc = export.to_pytest_benchmark(records)
    assert set(doc) >= {"machine_info", "commit_info", "benchmarks", "datetime", "version"}
    assert doc["commit_info"]["id"] == "0123456789abcdef" and doc["machine_info"]["machine"] == "x86_64"
    names = sorted(b["name"].split("[")[0] for b in doc["benchmarks"])
    assert names == sorted(set(export.LATENCIES) - {"batch_latency_s_p50"})  # a classify run's, not inference's
    bench = next(b for b in doc["benchmarks"] if b["group"] == "request_latency_s")
    assert bench["stats"]["rounds"] == 10 and bench["params"]["precision"] == "fp32"
    assert bench["extra_info"]["params"] == 1_115_264 and bench["extra_info"]["status"] == "ok"
    assert doc["harness"]["skipped"] == [
        {"key": records[1]["key"], "status": "oom", "reason": "injected oom"},
    ]


def test_bad_gate_config_file(tmp_path):
    f = tmp_path / "g.yaml"
    f.write_text("metrics:\n  decode_tok_per_s: {kind: sampled}\n")
    with pytest.raises(ConfigError, match="metrics.decode_tok_per_s.kind=sampled is not valid: choose one of"):
        settings.load(str(f))


def test_reproduce_commands_are_keyed_by_the_canonical_key_not_the_label():
    # two runs that differ only in seed share a display label: each still gets its own command
    base = [make(seed=1), make("seed=1", seed=1)]
    cand = [make(slowdown=1.3, seed=2), make("seed=1", slowdown=1.3, seed=3)]
    rep = _report(base, cand)
    labels = {c["label"] for c in rep["checks"] if c["verdict"] == "regression"}
    assert len(labels) == 1
    section = render.markdown(rep).split("### Reproduce the flagged runs")[1].split("<details>")[0]
    commands = [line for line in section.splitlines() if line.startswith("- ")]
    keys = [c.split("(`")[1].split("`)")[0] for c in commands]
    assert len(commands) == 2 and sorted(k.split(" seed=")[1][0] for k in keys) == ["0", "1"]
    assert all(k in {c["key"] for c in rep["checks"]} for k in keys)
    frag = render.html_fragment(rep)
    assert frag.count("<li>") == 2


def test_reproduce_uses_the_runs_own_overrides_when_stored():
    record = make("precision=bf16", "batch_size=4")
    assert reproduce.for_result(record).startswith("python -m harness model=tiny precision=bf16")  # older file
    record["overrides"] = ["precision=bf16", "batch_size=4", "sweep=nightly", "hydra.job.chdir=false"]
    cmd = reproduce.for_result(record, sweep="gate-repro")
    assert cmd == "python -m harness model=tiny seq_len=128 precision=bf16 batch_size=4 sweep=gate-repro"
