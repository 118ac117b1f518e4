import math
import random

import numpy as np
import pytest

from harness.stats import percentile, summarize


def test_percentiles_match_numpy_linear_interpolation():
    rng = random.Random(7)
    for n in (1, 2, 3, 10, 101, 1000):
        xs = sorted(rng.lognormvariate(0, 1) for _ in range(n))
        for q in (0, 1, 50, 90, 99, 100):
            assert percentile(xs, q) == pytest.approx(float(np.percentile(xs, q)), rel=1e-12)


def test_summary_known_answers():
    s = summarize([4.0, 1.0, 3.0, 2.0])
    assert s == {
        "n": 4,
        "p50": 2.5,
        "p90": 3.7,
        "p99": pytest.approx(3.97),
        "mean": 2.5,
        "stdev": pytest.approx(1.2909944487),
        "min": 1.0,
        "max": 4.0,
    }


def test_single_sample_has_zero_spread_and_empty_has_none():
    assert summarize([2.0])["stdev"] == 0.0 and summarize([2.0])["p99"] == 2.0
    empty = summarize([])
    assert empty["n"] == 0 and empty["p50"] is None and empty["mean"] is None


def test_bad_percentile_inputs():
    with pytest.raises(ValueError):
        percentile([], 50)
    with pytest.raises(ValueError):
        percentile([1.0], 101)


def test_percentiles_known_answers_on_a_skewed_sample():
    xs = [1.0, 2.0, 4.0, 8.0, 100.0]
    assert percentile(xs, 0) == 1.0 and percentile(xs, 100) == 100.0 and percentile(xs, 50) == 4.0
    assert percentile(xs, 90) == pytest.approx(63.2)  # position 3.6: 8 + 0.6 x 92
    assert percentile(xs, 99) == pytest.approx(96.32)  # position 3.96
    assert percentile(xs, 30) == pytest.approx(2.4)  # position 1.2: 2 + 0.2 x 2
    assert percentile([5.0, 7.0], 50) == 6.0 and percentile([5.0], 99) == 5.0


def test_summary_is_of_the_sorted_samples_with_the_sample_stdev():
    s = summarize([100.0, 1.0, 8.0, 2.0, 4.0])
    assert (s["n"], s["min"], s["max"], s["p50"], s["mean"]) == (5, 1.0, 100.0, 4.0, 23.0)
    assert s["p90"] == pytest.approx(63.2) and s["p99"] == pytest.approx(96.32)
    assert s["stdev"] == pytest.approx(math.sqrt(7440 / 4))  # n - 1; the population stdev would be sqrt(1488)
    assert set(summarize([])) == set(s) and all(v is None for k, v in summarize([]).items() if k != "n")


def test_percentile_range_edges():
    assert percentile([1.0, 2.0], 0) == 1.0 and percentile([1.0, 2.0], 100) == 2.0
    for q in (-0.001, 100.001):
        with pytest.raises(ValueError, match="not within 0..100"):
            percentile([1.0, 2.0], q)
    with pytest.raises(ValueError, match="^percentile of no samples$"):
        percentile([], 50)


def test_two_samples_have_a_spread():
    s = summarize([1.0, 3.0])
    assert s["stdev"] == pytest.approx(math.sqrt(2)) and s["p50"] == 2.0 and s["p90"] == pytest.approx(2.8)
