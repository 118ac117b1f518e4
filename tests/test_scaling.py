"""Scaling efficiency: one implementation for scaling.json and the report, on real result records."""

from __future__ import annotations

import pytest
from synthetic import result, write

from harness import scaling
from harness.report import aggregate, plots
from harness.report.build import LINE_KEYS


def _runs():
    # e2e_tok_per_s (inference's whole-run rate) is `tok_s`; decode_tok_per_s is the same here
    out = [result("fp32", gpus=g, tok_s=t, seed=0) for g, t in ((1, 100.0), (2, 150.0))]
    out += [result("fp32", gpus=g, tok_s=t, seed=1) for g, t in ((1, 50.0), (2, 90.0))]
    out.append(result("bf16", gpus=2, tok_s=500.0))  # no gpus=1 run of this config: no figure
    return out


def test_each_seed_is_its_own_line_against_its_gpus_1_run():
    rows = scaling.efficiency(_runs())
    assert [(r["config"].split("seed=")[1].split()[0], r["gpus"], round(r["efficiency"], 3)) for r in rows] == [
        ("0", 2, 0.75),  # 150 / (2 x 100)
        ("1", 2, 0.9),  # 90 / (2 x 50)
    ]
    assert {r["metric"] for r in rows} == {"e2e_tok_per_s"}


def test_the_report_shows_the_same_figures_as_scaling_json(tmp_path):
    frame = aggregate.load_frame([write(tmp_path / "results", "s", _runs())])
    table = plots.scaling_table(frame, LINE_KEYS)
    at_two = table[table["gpus"] == 2]
    assert sorted(at_two["efficiency"].round(3)) == pytest.approx(
        sorted(r["efficiency"] for r in scaling.efficiency(_runs()))
    )
    assert set(table["column"]) == {"e2e_tok_per_s"}
