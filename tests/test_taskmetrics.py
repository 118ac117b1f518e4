"""Known answers for classification quality: accuracy, macro-F1, per-class figures and their intervals."""

from __future__ import annotations

import numpy as np
import pytest

from harness import taskmetrics

# 3 classes, 8 examples: class 0 tp 2 (pred 3, actual 3), class 1 tp 1 (pred 2, actual 3), class 2 tp 2 (pred 3,
# actual 2). Per-class F1 = 2tp/(pred+actual): 4/6, 2/5, 4/5 -> macro (2/3 + 2/5 + 4/5)/3 = 0.6222...
Y = [0, 0, 0, 1, 1, 1, 2, 2]
P = [0, 0, 1, 1, 2, 0, 2, 2]


def test_accuracy_and_macro_f1_known_answers():
    assert taskmetrics.accuracy(Y, P) == 5 / 8
    assert taskmetrics.macro_f1(Y, P, 3) == pytest.approx((2 / 3 + 2 / 5 + 4 / 5) / 3)
    assert taskmetrics.macro_f1([0, 1], [0, 1], 2) == 1.0 and taskmetrics.accuracy([0, 1], [1, 0]) == 0.0
    # a class that occurs nowhere (class 3 of 4) does not dilute the mean, as in scikit-learn
    assert taskmetrics.macro_f1(Y, P, 4) == taskmetrics.macro_f1(Y, P, 3)
    # a class never predicted counts with F1 0: labels [0,1], all predicted 0 -> F1 2/3 and 0 -> 1/3
    assert taskmetrics.macro_f1([0, 1], [0, 0], 2) == pytest.approx(1 / 3)


def test_per_class_precision_recall_f1():
    rows = taskmetrics.per_class(Y, P, ["a", "b", "c"])
    assert [r["label"] for r in rows] == ["a", "b", "c"]
    assert rows[0] == {"label": "a", "support": 3, "predicted": 3, "precision": 2 / 3, "recall": 2 / 3, "f1": 2 / 3}
    assert rows[1]["precision"] == 0.5 and rows[1]["recall"] == pytest.approx(1 / 3) and rows[1]["f1"] == 0.4
    assert rows[2]["precision"] == pytest.approx(2 / 3) and rows[2]["recall"] == 1.0
    none = taskmetrics.per_class([0, 0], [0, 0], ["a", "b"])[1]
    assert none["precision"] == 0.0 and none["recall"] is None and none["support"] == 0


def test_intervals_hold_the_point_are_seeded_and_match_a_plain_bootstrap():
    rng = np.random.default_rng(3)
    y = rng.integers(0, 3, 200)
    p = np.where(rng.random(200) < 0.7, y, rng.integers(0, 3, 200))
    f = taskmetrics.figures(y, p, 3, resamples=2000, seed=0)
    assert f["n"] == 200
    for name in ("accuracy", "macro_f1"):
        assert f[f"{name}_lo"] < f[name] < f[f"{name}_hi"]
    assert f == taskmetrics.figures(y, p, 3, resamples=2000, seed=0)  # same data, same seed: same interval
    # the accuracy interval against an independent computation of the same resamples
    idx = np.random.default_rng(0).integers(0, 200, size=(2000, 200))
    acc = (y[idx] == p[idx]).mean(-1)
    assert f["accuracy_lo"] == pytest.approx(np.quantile(acc, 0.025))
    assert f["accuracy_hi"] == pytest.approx(np.quantile(acc, 0.975))
    # normal approximation: half-width ~ 1.96 sqrt(a(1-a)/n)
    half = 1.96 * np.sqrt(f["accuracy"] * (1 - f["accuracy"]) / 200)
    assert (f["accuracy_hi"] - f["accuracy_lo"]) / 2 == pytest.approx(half, rel=0.15)


def test_perfect_predictions_have_a_degenerate_interval_and_one_example_has_its_point():
    f = taskmetrics.figures([0, 1, 2, 1], [0, 1, 2, 1], 3, resamples=500)
    assert (f["accuracy"], f["accuracy_lo"], f["accuracy_hi"]) == (1.0, 1.0, 1.0)
    assert (f["macro_f1"], f["macro_f1_lo"], f["macro_f1_hi"]) == (1.0, 1.0, 1.0)
    one = taskmetrics.figures([1], [0], 2, resamples=500)
    assert one["n"] == 1 and one["accuracy_lo"] == one["accuracy_hi"] == 0.0
    with pytest.raises(ValueError, match="no held-out examples"):
        taskmetrics.figures([], [], 2, resamples=10)


def test_a_classifier_runs_progress_line_shows_accuracy_not_decode_speed():
    from harness import summary

    m = {"eval_accuracy_initial": 0.2, "eval_accuracy": 0.35, "eval_macro_f1": 0.238, "samples_per_s": 41.5}
    r = {"metrics": m}
    assert summary.headline(r) == "accuracy 0.200 -> 0.350, macro-F1 0.238, 41.5 examples/s"
