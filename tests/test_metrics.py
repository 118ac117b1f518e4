"""The metric registry is the one list: every writer's names are in it, every reader's names come from it."""

from __future__ import annotations

import re

import pytest
import synthetic
import yaml

from harness import accounting, metrics, results, scenarios, summary
from harness.config import CONF_DIR
from harness.gate import export
from harness.report import pareto, sections
from harness.scaling import THROUGHPUT

BUILT_IN = ("inference", "training", "serving", "classification", "distill", "classify")
KEY_AND_BOOKKEEPING = {"sweep", "workload", "model", "precision", "batch_size", "seq_len", "gpus", "status"}


def _written() -> set[str]:
    out = set(accounting.COMMON_METRICS)
    for name in BUILT_IN:
        out.update(scenarios.get(name).writes)
    return out


@pytest.mark.parametrize("name", BUILT_IN)
def test_every_metric_a_scenario_writes_is_registered(name):
    missing = set(scenarios.get(name).writes) - set(metrics.names())
    assert not missing, f"scenario {name} writes metrics the registry lacks: {sorted(missing)}"


def test_every_registered_metric_has_a_writer():
    orphans = set(metrics.names()) - _written()
    assert not orphans, f"registered metrics no scenario writes: {sorted(orphans)}"


def test_the_worker_adds_only_registered_metrics():
    assert set(accounting.COMMON_METRICS) <= set(metrics.names())
    assert set(accounting.RANK_FIGURES) <= set(metrics.names())


def test_readers_name_only_registered_columns():
    known = metrics.known_columns()
    columns = [c for c, _ in sections.RUN_COLUMNS if c not in KEY_AND_BOOKKEEPING]
    assert set(columns) <= known, sorted(set(columns) - known)
    for scenario, objectives in pareto.DEFAULT_OBJECTIVES.items():
        for obj in objectives:
            assert set(obj.columns) <= known, (scenario, obj.label, sorted(set(obj.columns) - known))
    assert set(export.LATENCIES) | set(export.EXTRA) <= set(metrics.names())
    assert set(THROUGHPUT.values()) <= set(metrics.names())
    for scenario in BUILT_IN:
        assert metrics.summary_columns(scenario), f"no summary columns for {scenario}"


def test_the_old_phantom_columns_are_gone():
    # energy_j, tok_per_s and usd_per_device_hour were read by the report but written by nobody
    read = {c for c, _ in sections.RUN_COLUMNS} | {c for o in pareto.DEFAULT_OBJECTIVES["inference"] for c in o.columns}
    assert not read & {"energy_j", "tok_per_s", "usd_per_device_hour", "cost_usd_per_1m_tokens"}


def test_gate_defaults_name_only_registry_metrics_and_agree_with_it():
    shipped = yaml.safe_load((CONF_DIR / "gate" / "default.yaml").read_text())["metrics"]
    registry = metrics.gate_defaults()
    assert set(shipped) <= set(metrics.names()), sorted(set(shipped) - set(metrics.names()))
    assert shipped == registry  # kind, better, threshold and floor: the file spells out the registry


def test_docs_results_md_carries_the_registry_table():
    text = (CONF_DIR.parent / "docs" / "results.md").read_text()
    block = re.search(r"<!-- metric-registry:begin -->\n(.*?)\n<!-- metric-registry:end -->", text, re.S)
    assert block, "docs/results.md lacks the metric-registry markers"
    assert block.group(1).strip() == metrics.markdown_table(), "regenerate: python -m harness.metrics"


def test_summary_table_shows_the_registry_labels_per_scenario():
    cfg = synthetic.config(seq_len=8)
    cfg["workload"] = {**cfg["workload"], "name": "training", "max_steps": 10, "target_eval_loss": 4.5}
    m = {
        "train_tok_per_s": 1234.4,
        "eval_loss_initial": 5.5,
        "eval_loss": 4.25,
        "step_time_s": synthetic.dist(0.002, 0.003),
    }
    m["target"] = {"target_eval_loss": 4.5, "reached": True}
    text = summary.table([results.make_result(cfg, "ok", None, synthetic.ENV, metrics=m)])
    assert "step p50 ms  train tok/s  eval loss start  eval loss end  target" in text
    assert "2.00" in text and "1234" in text and "5.500" in text and "4.250" in text and "yes" in text
