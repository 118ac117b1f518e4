"""The serving section of the report and its Pareto objectives, from real result records (synthetic figures)."""

from __future__ import annotations

import copy

from synthetic import ENV, config, dist

from harness import results
from harness.report import aggregate, sections, serving_plots
from harness.report.build import build


def _serving(tmp_path, rate, req_s, ttft_p99, capacity=None, search="none"):
    cfg = config(workload={**config()["workload"], "name": "serving"})
    cfg["serving"] = copy.deepcopy(cfg["serving"])
    cfg["serving"].update(rate=rate, search=search)
    cfg["serving"]["slo"] = {"ttft_ms": 300.0, "tpot_ms": None, "e2el_ms": None}
    metrics = {
        "ttft_s": dist(ttft_p99 / 3, ttft_p99),
        "tpot_s": dist(0.01, 0.02),
        "request_throughput_req_per_s": req_s,
        "goodput_req_per_s": req_s * 0.9,
        "usd_per_1m_output_tokens": 2.0 / req_s,
        "capacity_req_per_s": capacity,
        "slo": cfg["serving"]["slo"],
    }
    record = results.make_result(cfg, "ok", None, ENV, metrics=metrics)
    results.write_atomic(tmp_path / "res" / "sw" / results.run_slug(cfg) / results.RESULT_FILE, record)


def test_latency_vs_throughput_with_slo_and_capacity(tmp_path):
    _serving(tmp_path, 1.0, 0.98, 0.05)
    _serving(tmp_path, 4.0, 3.7, 0.12)
    _serving(tmp_path, 16.0, 6.1, 0.90)
    _serving(tmp_path, 1.0, 3.9, 0.25, capacity=4.0, search="max_rate")
    frame = aggregate.load_frame([tmp_path / "res"])
    assert {"rate", "engine", "ttft_s_p99", "slo_ttft_ms", "capacity_req_per_s"} <= set(frame.columns)
    assert serving_plots.figure(frame).startswith("<?xml")
    index = build([tmp_path / "res"], out_dir=tmp_path / "rep")
    page = index.read_text()
    assert "Serving: latency vs throughput" in page and "capacity 4 req/s" in page
    assert "goodput" in page and "p99 TTFT" in page  # the serving objectives are on the front's axes
    # each run is named by its load, so the three rates of one configuration are three distinct rows
    names = {sections.config_label(row) for _, row in frame.iterrows()}
    loads = ("poisson rate=1", "poisson rate=4", "poisson rate=16", "max_rate search")
    assert names == {f"tiny fp32 transformers {load} gpus=1" for load in loads}
    assert "tiny fp32 transformers poisson rate=16 gpus=1" in page and "tiny fp32 bs=1" not in page


def test_no_serving_runs_no_section(tmp_path):
    frame = aggregate.load_frame([tmp_path])  # empty: nothing there
    assert serving_plots.section(frame) == ""
