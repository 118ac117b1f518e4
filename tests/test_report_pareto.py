"""Pareto fronts against a brute-force reading of the definition: random sets, ties, min/max, NaN."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from harness.report.pareto import Objective, front, knee_index, pareto_mask, parse_objective, resolve


def brute_force(values: np.ndarray, senses: list[str]) -> list[bool]:
    """Straight from the definition: i is on the front unless some j is >= as good everywhere and better once."""

    def better_or_equal(a, b, s):
        return a <= b if s == "min" else a >= b

    def strictly_better(a, b, s):
        return a < b if s == "min" else a > b

    out = []
    for i, p in enumerate(values):
        if any(np.isnan(p)):
            out.append(False)
            continue
        dominated = False
        for j, q in enumerate(values):
            if i == j or any(np.isnan(q)):
                continue
            if all(better_or_equal(q[k], p[k], s) for k, s in enumerate(senses)) and any(
                strictly_better(q[k], p[k], s) for k, s in enumerate(senses)
            ):
                dominated = True
                break
        out.append(not dominated)
    return out


@pytest.mark.parametrize("seed", range(40))
def test_random_sets_match_brute_force(seed):
    rng = np.random.default_rng(seed)
    n, k = int(rng.integers(1, 40)), int(rng.integers(1, 5))
    # small integer grids make ties and exactly equal points common
    values = rng.integers(0, 4, size=(n, k)).astype(float)
    values[rng.random((n, k)) < 0.08] = np.nan  # failed runs
    senses = [str(s) for s in rng.choice(["min", "max"], size=k)]
    assert pareto_mask(values, senses).tolist() == brute_force(values, senses)


def test_equal_points_are_both_on_the_front():
    values = np.array([[1.0, 5.0], [1.0, 5.0], [2.0, 6.0]])
    assert pareto_mask(values, ["min", "min"]).tolist() == [True, True, False]


def test_a_tie_on_one_objective_is_broken_by_the_other():
    values = np.array([[1.0, 5.0], [1.0, 4.0]])
    assert pareto_mask(values, ["min", "min"]).tolist() == [False, True]
    assert pareto_mask(values, ["min", "max"]).tolist() == [True, False]


def test_mixed_min_and_max():
    # throughput (max) vs latency (min): 3 trades off, 2 is beaten by 3 on both
    values = np.array([[100.0, 1.0], [200.0, 2.0], [150.0, 3.0], [300.0, 2.5]])
    assert pareto_mask(values, ["max", "min"]).tolist() == [True, True, False, True]


def test_nan_rows_are_never_on_the_front_and_do_not_dominate():
    values = np.array([[np.nan, 0.0], [5.0, 5.0], [np.nan, np.nan]])
    assert pareto_mask(values, ["min", "min"]).tolist() == [False, True, False]


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match="do not match 3 objectives"):
        pareto_mask(np.zeros((2, 2)), ["min"] * 3)


def test_knee_is_the_balanced_point():
    front_pts = np.array([[1.0, 10.0], [4.0, 4.0], [10.0, 1.0]])
    assert knee_index(front_pts, ["min", "min"]) == 1
    assert knee_index(np.array([[3.0, 3.0]]), ["min", "max"]) == 0
    assert knee_index(np.empty((0, 2)), ["min", "min"]) is None


def test_parse_objective_and_its_messages():
    o = parse_objective("decode_tok_per_s:max")
    assert o.columns == ("decode_tok_per_s",) and o.sense == "max" and o.unit == "tokens/s"
    assert parse_objective("peak_memory_bytes:min").unit == "bytes"
    with pytest.raises(ValueError, match="the sense must be min or max, not 'up'"):
        parse_objective("decode_tok_per_s:up")
    with pytest.raises(ValueError, match="write COLUMN:min or COLUMN:max"):
        parse_objective("decode_tok_per_s")
    with pytest.raises(ValueError, match="sense='best' is not valid"):
        Objective("x", ("x",), "best")


def _frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "status": ["ok", "ok", "ok", "oom", "ok"],
            "tok": [100.0, 200.0, 400.0, None, 50.0],
            "mem": [1.0, 2.0, 1.0, None, 0.5],
            "cost_usd_per_1m_tokens_decode": [None] * 5,
        }
    )


OBJS = [
    Objective("throughput", ("tok",), "max"),
    Objective("memory", ("mem",), "min"),
    Objective("cost", ("cost_usd_per_1m_tokens_decode",), "min", "USD"),
]


def test_all_null_objective_is_skipped_with_a_reason():
    active, skipped = resolve(_frame(), OBJS)
    assert [c for _, c in active] == ["tok", "mem"]
    ((obj, why),) = skipped
    assert obj.label == "cost" and "cost not measured" in why and "not invented" in why


def test_a_point_below_the_quality_floor_is_off_the_front():
    frame = _frame()
    fr = front(frame, OBJS)
    assert fr.on_front.tolist() == [False, False, True, False, True]
    # run 2 dominates everything but fails the quality floor: it leaves the front, run 1 and 0 come back
    quality_ok = pd.Series([True, True, False, True, True])
    fr = front(frame, OBJS, quality_ok)
    assert fr.on_front.tolist() == [True, True, False, False, True]
    assert not fr.eligible[2] and not fr.eligible[3]
    assert fr.best["throughput"] == 1 and fr.best["memory"] == 4
    # the front is runs 0 (100 tok/s, 1.0), 1 (200, 2.0), 4 (50, 0.5); scaled over it to [0, 1] their
    # distances to the ideal point are 0.75, 1.0 and 1.0: run 0 is the knee
    assert fr.knee == 0


def test_best_prefers_the_front_among_equal_values():
    frame = pd.DataFrame({"status": ["ok", "ok"], "tok": [100.0, 100.0], "mem": [2.0, 1.0]})
    fr = front(frame, OBJS[:2])
    assert fr.best["throughput"] == 1  # equal throughput, but run 1 uses less memory


def test_knee_scales_each_objective_to_the_front_before_measuring_distance():
    # memory in bytes dwarfs latency in seconds: unscaled, the point with least memory (2) would win;
    # scaled to [0, 1]: 0 -> (0, 1), 1 -> (0.111, 0.333), 2 -> (1, 0): point 1 is the compromise
    pts = np.array([[1.0, 1000.0], [2.0, 400.0], [10.0, 100.0]])
    assert knee_index(pts, ["min", "min"]) == 1
    # the same trade-off with the first objective maximized (throughput 10 best, 1 worst)
    assert knee_index(np.array([[10.0, 1000.0], [9.0, 400.0], [1.0, 100.0]]), ["max", "min"]) == 1
    # a constant objective (span 0) adds nothing: the other one decides; ties go to the first
    assert knee_index(np.array([[5.0, 3.0], [5.0, 1.0], [5.0, 2.0]]), ["min", "min"]) == 1
    assert knee_index(np.array([[0.0, 1.0], [1.0, 0.0]]), ["min", "min"]) == 0


def test_a_run_without_a_quality_figure_stays_eligible():
    from harness.report.build import annotate

    frame = pd.DataFrame(
        {
            "status": ["ok", "ok", "ok"],
            "tok": [100.0, 300.0, 200.0],
            "mem": [1.0, 1.0, 1.0],
            "quality_relative_quality": [0.995, None, 0.98],  # run 1: quality not measured; run 2: below
        }
    )
    annotated = annotate(frame, floor=0.99)
    assert annotated["quality_ok"].tolist() == [True, True, False]
    fr = front(annotated, OBJS[:2], annotated["quality_ok"])
    assert fr.on_front.tolist() == [False, True, False] and fr.eligible.tolist() == [True, True, False]
    assert fr.knee == 1 and fr.best["throughput"] == 1
    # exactly at the floor passes it
    assert annotate(frame.assign(quality_relative_quality=[0.99, 0.99, 0.99]), 0.99)["quality_ok"].all()
    # a frame without any quality column keeps every run
    assert annotate(frame.drop(columns="quality_relative_quality"), 0.99)["quality_ok"].all()


@pytest.mark.parametrize(
    "column, unit",
    [
        ("cost_training_usd", "USD"),
        ("cost_usd_per_1m_tokens_decode", "USD"),
        ("total_j", "J"),
        ("train_window_s", "s"),
        ("request_latency_s_p99", "s"),
        ("decode_tok_per_s", "tokens/s"),
        ("eval_loss", ""),
    ],
)
def test_an_objective_s_unit_comes_from_its_column_name(column, unit):
    assert parse_objective(f"{column}:min").unit == unit


def test_skipped_objectives_say_why_and_only_ok_runs_count():
    frame = pd.DataFrame({"status": ["ok", "oom"], "tok": [100.0, None], "mem": [None, 5.0]})
    objs = [Objective("throughput", ("tok",), "max"), Objective("memory", ("mem", "rss"), "min")]
    active, skipped = resolve(frame, objs)
    assert [c for _, c in active] == ["tok"]
    ((obj, why),) = skipped  # the oom run's memory figure does not make the objective active
    assert why == "no ok run has a value in mem / rss (not measured); skipped, not invented"
    # without a status column every run counts, and every run is eligible
    fr = front(frame.drop(columns="status"), objs)
    assert [c for _, c in fr.active] == ["tok", "mem"] and fr.eligible.tolist() == [False, False]


def test_quality_ok_for_part_of_the_runs_keeps_the_rest_eligible():
    frame = pd.DataFrame({"status": ["ok", "ok", "ok"], "tok": [1.0, 2.0, 3.0], "mem": [1.0, 2.0, 3.0]})
    quality_ok = pd.Series([False], index=[2])  # only run 2 has a quality verdict, and it fails
    fr = front(frame, OBJS[:2], quality_ok)
    assert fr.eligible.tolist() == [True, True, False] and fr.on_front.tolist() == [True, True, False]


def test_best_of_an_objective_whose_only_values_are_ineligible_is_absent():
    frame = pd.DataFrame({"status": ["ok", "ok"], "tok": [None, 5.0], "mem": [1.0, 2.0], "x": [3.0, 1.0]})
    objs = [
        Objective("throughput", ("tok",), "max"),
        Objective("memory", ("mem",), "min"),
        Objective("x", ("x",), "min"),
    ]
    fr = front(frame, objs, pd.Series([True, False]))
    assert "throughput" not in fr.best and fr.best == {"memory": 0, "x": 0}
    assert fr.on_front.tolist() == [False, False] and fr.knee is None


def test_a_one_dimensional_array_is_refused():
    with pytest.raises(ValueError, match="do not match 1 objectives"):
        pareto_mask(np.zeros(3), ["min"])


def test_parse_objective_splits_at_the_last_colon_and_names_itself():
    o = parse_objective("quality:relative:max")
    assert (o.label, o.columns, o.sense) == ("quality:relative", ("quality:relative",), "max")
    with pytest.raises(ValueError, match="write COLUMN:min or COLUMN:max"):
        parse_objective(":max")


def test_a_front_without_any_measured_objective_is_empty_but_says_who_was_eligible():
    frame = pd.DataFrame({"status": ["ok", "oom"], "x": [None, None]})
    fr = front(frame, [Objective("x", ("x",), "min")], pd.Series([True, True]))
    assert fr.active == [] and [o.label for o, _ in fr.skipped] == ["x"]
    assert fr.on_front.tolist() == [False, False] and fr.on_front.index.tolist() == [0, 1]
    assert fr.eligible.tolist() == [True, False]  # a quality pass does not make a failed run eligible
    assert fr.knee is None and fr.best == {}


def test_knee_distance_is_euclidean_over_the_scaled_objectives():
    # scaled to [0, 1] already: squares pick (0.8, 0.1) at 0.65 over (0.6, 0.6) at 0.72; cubes would not
    assert knee_index(np.array([[0.0, 1.0], [1.0, 0.0], [0.6, 0.6], [0.8, 0.1]]), ["min", "min"]) == 3
    # Euclidean picks (0.5, 0.5) at 0.71; the sum of the distances would pick (0.9, 0) at 0.9
    assert knee_index(np.array([[0.0, 1.0], [0.5, 0.5], [0.9, 0.0], [1.0, 0.0]]), ["min", "min"]) == 1
    # each objective is scaled by its span (hi - lo), however far from 0 it sits
    assert knee_index(np.array([[100.0, 10.0], [101.0, 0.0], [100.5, 4.0]]), ["min", "min"]) == 2


def test_front_keeps_the_group_s_own_index_and_reads_integer_and_text_columns():
    # a group of the report keeps the aggregated frame's index: labels, not positions
    frame = pd.DataFrame(
        {"status": ["ok", "ok", "ok"], "tok": [100, 300, 200], "mem": [2**30, 2**31, "n/a"]}, index=[5, 7, 9]
    )
    fr = front(frame, OBJS[:2], pd.Series([True, False, True], index=[5, 7, 9]))
    assert fr.on_front.index.tolist() == [5, 7, 9] and fr.on_front.tolist() == [True, False, False]
    assert fr.eligible.tolist() == [True, False, False]  # 7 fails quality, 9 has no memory figure
    # the best throughput is 9: a missing memory figure keeps it off the front, not out of that ranking
    assert fr.knee == 5 and fr.best == {"throughput": 9, "memory": 5}
    no_status = front(frame.drop(columns="status").iloc[:2], OBJS[:2])
    assert no_status.eligible.tolist() == [True, True] and no_status.on_front.tolist() == [True, True]


def test_a_missing_figure_given_as_none_leaves_its_row_off_the_front():
    # plain lists from a caller: None is a missing figure, as NaN is (not a TypeError from None * sign)
    assert pareto_mask([[1.0, None], [2.0, 3.0], [3.0, 4.0]], ["min", "min"]).tolist() == [False, True, False]
