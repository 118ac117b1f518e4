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
