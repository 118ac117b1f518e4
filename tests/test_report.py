"""The report from synthetic result files: aggregation, the front, failures, escaping, cost, scaling, CLI."""

from __future__ import annotations

import re

import pandas as pd
import pytest
from synthetic import priced, result, write

from harness.report import Section, aggregate, build, cli


@pytest.fixture
def sweep(tmp_path):
    """fp32 (reference), bf16 (faster, passes), int8 (fastest, below the floor), and an oom."""
    records = [
        result("fp32", tok_s=100.0, p99_s=0.2, peak_bytes=300 * 2**20, agreement=1.0),
        result("bf16", tok_s=300.0, p99_s=0.1, peak_bytes=200 * 2**20, agreement=0.995),
        result("int8", tok_s=900.0, p99_s=0.05, peak_bytes=150 * 2**20, agreement=0.90),
        result("fp32", batch_size=64, status="oom", reason="memory_limit_bytes=1500000000 exceeded"),
    ]
    return write(tmp_path / "results", "prec", records)


def _rows(html: str) -> list[str]:
    """The rows of the full runs table (every column; the compact one above it names runs in one cell)."""
    full = re.search(r'<table class="runs".*?</table>', html, re.S).group(0)
    return re.findall(r'<tr class="([^"]*)">(.*?)</tr>', full)


def test_one_frame_with_flat_unit_columns(sweep):
    frame = aggregate.load_frame([sweep])
    assert len(frame) == 4 and set(frame["sweep"]) == {"prec"}
    for col in ("decode_tok_per_s", "request_latency_s_p99", "request_latency_s_n", "peak_memory_bytes"):
        assert col in frame
    assert frame.loc[frame["precision"] == "int8", "quality_next_token_agreement"].item() == 0.90
    assert frame["cost"].isna().all() and frame["energy"].isna().all()  # null sections stay visibly null
    fp32 = frame[(frame["precision"] == "fp32") & (frame["status"] == "ok")].iloc[0]
    assert fp32["command"] == "python -m harness model=tiny precision=fp32 batch_size=1 seq_len=128"


def test_report_has_the_front_failures_and_the_floor(sweep, tmp_path):
    index = build([sweep], reports_dir=tmp_path / "reports")
    assert index == tmp_path / "reports" / "prec" / "index.html"
    html = index.read_text()
    by_prec = {re.search(r">(fp32|bf16|int8)<", body).group(1): cls for cls, body in _rows(html) if ">ok<" in body}
    # bf16 beats fp32 everywhere; int8 beats both but is below the 0.99 floor: kept, marked, off the front
    assert by_prec == {"bf16": "front", "fp32": "", "int8": "failing"}
    assert "BELOW FLOOR" in html
    assert "memory_limit_bytes=1500000000 exceeded" in html  # the failed run's reason
    assert "python -m harness model=tiny precision=bf16 batch_size=1 seq_len=128" in html
    assert "cost not measured" in html and "Cost not measured" in html and "Energy not measured" in html
    assert "No scaling plot" in html
    assert html.count('class="plotly-graph-div"') == 1  # no cost, no held-out loss: throughput vs peak memory
    assert "Quality not measured or not meaningful here" in html and "<b>Cheapest: " not in html  # no price
    # nothing fetched from anywhere (plotly's own script has link text in it: the page's CSP forbids every fetch)
    markup = re.sub(r"<script>.*?</script>", "", html, flags=re.S)
    assert not re.search(r"""(src|href)=["']?(https?:|//)""", markup) and "default-src 'none'" in html
    csv = pd.read_csv(index.parent / "runs.csv")
    assert len(csv) == 4 and csv.loc[csv["precision"] == "bf16", "on_front"].item()
    assert not csv.loc[csv["precision"] == "int8", "quality_ok"].item()


def test_the_quality_floor_can_be_lowered(sweep, tmp_path):
    html = build([sweep], out_dir=tmp_path / "r", floor=0.8).read_text()
    by_prec = {re.search(r">(fp32|bf16|int8)<", body).group(1): cls for cls, body in _rows(html) if ">ok<" in body}
    assert by_prec["int8"] == "front" and "BELOW FLOOR" not in html


def test_hostile_strings_are_escaped(tmp_path):
    evil = "<script>alert(1)</script>"
    records = [
        result("fp32", model__name=evil, agreement=1.0),
        result("int8", status="error", reason=f'boom {evil} "quoted"', model__name=evil),
    ]
    records[0]["environment"]["cpu_model"] = evil
    index = build([write(tmp_path / "results", "evil", records)], out_dir=tmp_path / "r")
    html = index.read_text()
    assert evil not in html and "alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<script>alert" not in html  # in the charts' data too: plotly writes < as \u003c
    # in the charts' legend and hover text too: escaped for plotly's own markup, then JSON-escaped by plotly
    assert '"name":"&lt;script&gt;alert(1)&lt;' in html and "\\u003cscript\\u003ealert" not in html


def test_aggregation_across_sweeps(tmp_path):
    a = write(tmp_path / "results", "monday", [result("fp32", tok_s=100.0), result("bf16", tok_s=200.0)])
    b = write(tmp_path / "results", "tuesday", [result("fp32", tok_s=110.0), result("int8", tok_s=50.0)])
    frame = aggregate.load_frame([a, b])
    assert sorted(frame["sweep"]) == ["monday", "monday", "tuesday", "tuesday"]
    index = build([a, b], reports_dir=tmp_path / "reports")
    assert index.parent.name == "monday+tuesday"
    html = index.read_text()
    assert "4 runs from 2 sweep(s): monday, tuesday" in html
    # the results root works too: every sweep below it
    assert len(aggregate.load_frame([tmp_path / "results"])) == 4


def test_cost_and_energy_flow_through_when_present(tmp_path):
    fp32, bf16, int8 = priced(100.0), priced(200.0), priced(50.0, joules=12.0)
    records = [
        result("fp32", tok_s=100.0, cost=fp32[0]),
        result("bf16", tok_s=200.0, cost=bf16[0]),
        result("int8", tok_s=50.0, cost=int8[0], energy=int8[1]),
    ]
    index = build([write(tmp_path / "results", "costs", records)], out_dir=tmp_path / "r", floor=0.5)
    frame = pd.read_csv(index.parent / "runs.csv")
    usd_per_1m = 2.5 / 3600 / 1e-6  # USD per second over 1 M tokens per second
    expected = [usd_per_1m / 200, usd_per_1m / 100, usd_per_1m / 50]  # bf16, fp32, int8 (sorted by precision)
    assert frame["cost_usd_per_1m_tokens_decode"].tolist() == pytest.approx(expected)
    assert frame["energy_total_j"].tolist()[2] == 12.0 and frame["energy_total_j"].isna().tolist()[:2] == [True, True]
    html = index.read_text()
    assert "<th>USD/1M tok</th>" in html and "Cost not measured" not in html  # the registry's one name
    assert "<b>Cheapest: tiny bf16 bs=1 seq=128 gpus=1</b>" in html  # no held-out loss: cost and speed only
    assert "2026-11-01" in html and "test-cloud" in html and "estimated" in html
    assert "energy J" in html  # the runs table's energy column now has a writer: energy.total_j
    # with the same price the fastest run is also the cheapest: bf16 is on the front, int8 (slow, dear) is not
    assert frame.loc[frame["precision"] == "bf16", "on_front"].item()


def test_scaling_plot_appears_only_with_two_gpu_counts(tmp_path):
    unsupported = result("fp32", gpus=2, status="unsupported", reason="gpus=2: not implemented")
    one = write(tmp_path / "results", "one", [result("fp32", gpus=1), unsupported])
    assert "No scaling plot" in build([one], out_dir=tmp_path / "r1").read_text()
    runs = [result("fp32", gpus=g, tok_s=t) for g, t in ((1, 100.0), (2, 180.0), (4, 300.0))]
    two = write(tmp_path / "results", "two", runs)
    html = build([two], out_dir=tmp_path / "r2").read_text()
    assert "No scaling plot" not in html and 'alt="scaling efficiency against gpus"' in html
    from harness.report import plots

    table = plots.scaling_table(aggregate.load_frame([two]), ["model", "precision"])  # + workload, gpus
    assert table["efficiency"].round(3).tolist() == [1.0, 0.9, 0.75]


def test_extra_sections_go_in_their_marked_place(sweep, tmp_path):
    gate = Section("Regression gate", "<p>verdict: <b>pass</b></p>", anchor="gate")
    html = build([sweep], out_dir=tmp_path / "r", extra_sections=[gate]).read_text()
    begin, end = html.index("harness:extra-sections:begin"), html.index("harness:extra-sections:end")
    assert begin < html.index('<section id="gate"><h2>Regression gate</h2><p>verdict: <b>pass</b></p>') < end
    assert '<a href="#gate">Regression gate</a>' in html


def test_cli_prints_the_path_and_takes_objectives(sweep, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert cli.main([str(sweep), "--objective", "peak_memory_bytes:min"]) == 0
    out = capsys.readouterr().out.strip()
    assert out == "report: reports/prec/index.html"
    html = (tmp_path / "reports" / "prec" / "index.html").read_text()
    assert "Front (prec) over: peak_memory_bytes (min, column peak_memory_bytes)." in html


@pytest.mark.parametrize(
    "args, message",
    [
        (["--objective", "tok:up"], "the sense must be min or max"),
        (["--quality-floor", "1.5"], "--quality-floor 1.5 is not valid"),
        (["no/such/dir"], "no such folder: no/such/dir"),
    ],
)
def test_cli_bad_input_is_exit_2(sweep, tmp_path, capsys, args, message):
    argv = args if args[0].startswith("no/") else [str(sweep), *args]
    with pytest.raises(SystemExit) as exc:
        cli.main(argv)
    assert exc.value.code == 2 and message in capsys.readouterr().err


def test_cli_without_results_is_exit_1(tmp_path, capsys):
    assert cli.main([str(tmp_path)]) == 1
    assert "no result files" in capsys.readouterr().err


def test_only_failed_runs_and_results_without_quality(tmp_path):
    old = result("fp32", agreement=None)  # a result from before quality checks: quality null
    records = [old, result("int8", status="oom", reason="killed by SIGKILL")]
    html = build([write(tmp_path / "results", "old", records)], out_dir=tmp_path / "r").read_text()
    assert "not measured" in html and "killed by SIGKILL" in html
    oom_only = write(tmp_path / "results", "ooms", [result("int8", status="oom", reason="too big")])
    html = build([oom_only], out_dir=tmp_path / "r2").read_text()
    assert "No run can be recommended" in html and "no run has both figures" in html
    assert "no per-dollar answer" not in html  # an oom run has no cost for want of a run, not of a price
    assert "1 oom (tiny int8 bs=1 seq=128 gpus=1)" in html  # said where it applies


def test_training_results_get_training_objectives(tmp_path):
    run = result("bf16", workload__name="training", agreement=None)
    run["metrics"].update(eval_loss=2.5, train_window_s=30.0)  # the training workload's names
    html = build([write(tmp_path / "results", "train", [run])], out_dir=tmp_path / "r").read_text()
    assert '<h3 id="w-training">training</h3>' in html
    assert "final eval loss (min, column eval_loss), wall time (min, column train_window_s)" in html
    assert "Objective <b>cost to target</b> (min): no ok run has a value" in html


def test_a_run_folder_is_read_with_its_sweep_name(sweep):
    run_dir = next(p.parent for p in sweep.rglob("result.json"))
    assert aggregate.load_frame([run_dir])["sweep"].tolist() == ["prec"]


@pytest.mark.parametrize("pyarrow", [True, False])
def test_parquet_beside_the_csv_only_with_pyarrow(sweep, tmp_path, monkeypatch, pyarrow):
    if pyarrow:
        pytest.importorskip("pyarrow")
    monkeypatch.setattr(aggregate, "parquet_available", lambda: pyarrow)
    index = build([sweep], out_dir=tmp_path / "r")
    assert (index.parent / "runs.parquet").exists() is pyarrow
    assert ('href="runs.parquet"' in index.read_text()) is pyarrow
    if pyarrow:
        assert len(pd.read_parquet(index.parent / "runs.parquet")) == 4


def test_an_unbounded_ratio_interval_is_shown_as_such():
    from harness.report import quality_section

    frame = pd.DataFrame(
        {"quality_accuracy_ratio_lo": [1.2, None, 0.99], "quality_accuracy_ratio_hi": [None, None, 1.01]}
    )
    shown = quality_section.annotate(frame, 0.99)["quality_accuracy_ratio_interval"].tolist()
    assert shown == ["[1.2000, unbounded)", "–", "[0.9900, 1.0100]"]


def test_speculative_runs_pair_with_their_run_without_the_draft():
    import pandas as pd

    from harness.report import speculative

    key = "workload=inference model=small precision=fp32 batch_size=1 seq_len=16 decode_tokens=8 gpus=1 seed=0"
    base = {"status": "ok", "model": "small", "precision": "fp32", "batch_size": 1, "seq_len": 16, "gpus": 1,
            "workload": "inference", "created_at": "2026-01-01"}  # fmt: skip
    frame = pd.DataFrame([
        {**base, "key": key, "draft_model": None, "decode_tok_per_s": 40.0, "cost_usd_per_1m_tokens_generated": 2.0},
        {**base, "key": key.replace(" gpus=", " draft_model=tiny draft_tokens=4 gpus="), "draft_model": "tiny",
         "draft_tokens": 4, "decode_tok_per_s": 100.0, "cost_usd_per_1m_tokens_generated": 1.0,
         "acceptance_rate": 0.75, "mean_accepted_tokens": 3.0, "speculative_greedy_equal_equal": True},
        {**base, "key": key.replace("seq_len=16", "seq_len=32").replace(" gpus=", " draft_model=tiny draft_tokens=4 "
         "gpus="), "draft_model": "tiny", "draft_tokens": 4, "decode_tok_per_s": 9.0},  # no partner: left out
    ])  # fmt: skip
    p = speculative.pairs(frame)
    assert len(p) == 1 and p.iloc[0]["speedup"] == 2.5 and p.iloc[0]["cost_ratio"] == 0.5
    assert p.iloc[0]["draft"] == "tiny k=4" and "draft=tiny k=4" in p.iloc[0]["run"]
    html, on_page = speculative.section(frame)
    assert 'id="speculative-speedup"' in html and "2.5x" in html and on_page
    alone, _ = speculative.section(frame[frame["draft_model"].notna()])
    assert "No speed-up" in alone and "draft_model=null,tiny" in alone
    assert speculative.section(frame[frame["draft_model"].isna()]) == ("", False)
