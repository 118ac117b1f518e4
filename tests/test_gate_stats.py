"""The gate's statistics on synthetic samples with known answers."""

import math

import numpy as np
import pytest

from harness.gate import stats
from harness.gate.stats import RatioEstimate, bootstrap_ratio, decide_counted, decide_timed, repeats_to_decide

MiB = 2**20


def _est(low, high, ratio=None, n=10):
    ratio = ratio if ratio is not None else math.sqrt(low * high)
    return RatioEstimate(ratio, low, high, 0.95, n, n, 1.0, ratio)


def test_constant_samples_give_the_exact_ratio_and_a_zero_width_interval():
    est = bootstrap_ratio([2.0] * 5, [2.5] * 7)
    assert (est.ratio, est.low, est.high) == (1.25, 1.25, 1.25)
    assert (est.n_baseline, est.n_candidate, est.baseline_value, est.candidate_value) == (5, 7, 2.0, 2.5)


def test_point_estimate_is_the_ratio_of_medians():
    est = bootstrap_ratio([1.0, 2.0, 3.0, 100.0, 4.0], [2.0, 4.0, 6.0, 8.0, 0.5])
    assert est.ratio == pytest.approx(4.0 / 3.0)
    assert est.low <= est.ratio <= est.high


def test_seeded_bootstrap_is_reproducible():
    rng = np.random.default_rng(3)
    a, b = rng.lognormal(0, 0.1, 10), rng.lognormal(0, 0.1, 10)
    one = bootstrap_ratio(a, b, rng=stats.seed_for(0, "key", "metric"))
    two = bootstrap_ratio(a, b, rng=stats.seed_for(0, "key", "metric"))
    other = bootstrap_ratio(a, b, rng=stats.seed_for(1, "key", "metric"))
    assert one == two
    assert (one.low, one.high) != (other.low, other.high)


@pytest.mark.parametrize(
    "low, high, better, verdict",
    [
        (1.06, 1.10, "lower", "regression"),  # all of it beyond +5 %
        (0.97, 1.04, "lower", "pass"),  # worse bound within +5 %
        (1.01, 1.08, "lower", "inconclusive"),  # straddles +5 %
        (0.80, 1.30, "lower", "inconclusive"),  # too wide to say anything
        (0.90, 0.94, "lower", "improvement"),  # all of it beyond -5 %
        (0.90, 0.96, "lower", "pass"),  # better, but not surely by 5 %
        (0.90, 0.94, "higher", "regression"),  # throughput down by more than 5 %
        (0.96, 1.02, "higher", "pass"),
        (0.93, 0.99, "higher", "inconclusive"),
        (1.06, 1.10, "higher", "improvement"),
    ],
)
def test_decision_rule(low, high, better, verdict):
    assert decide_timed(_est(low, high), 0.05, better) == verdict


def test_a_precisely_measured_small_change_is_a_pass_not_a_regression():
    # 1 % slower, measured to ±0.5 %: real, but inside a 5 % threshold
    assert decide_timed(_est(1.005, 1.015), 0.05, "lower") == "pass"
    assert decide_timed(_est(1.005, 1.015), 0.002, "lower") == "regression"


def test_repeats_hint_known_answer():
    # log half-width 0.1, estimate 0.05 (log) beyond the +5 % limit: (0.1 / 0.05)^2 = 4x the 10 repeats
    r = 1.05 * math.exp(0.05)
    assert repeats_to_decide(_est(r * math.exp(-0.1), r * math.exp(0.1), ratio=r), 0.05, "lower") == 40
    # an estimate right on the limit: no number of repeats decides
    assert repeats_to_decide(_est(1.0, 1.1025, ratio=1.05), 0.05, "lower") is None


@pytest.mark.parametrize(
    "base, cand, threshold, floor, verdict",
    [
        (1_000_000, 1_004_000, 0.005, 0, "pass"),  # +0.4 % parameters
        (1_000_000, 1_006_000, 0.005, 0, "regression"),  # +0.6 %
        (1_000_000, 994_000, 0.005, 0, "improvement"),
        (400 * MiB, 450 * MiB, 0.02, 64 * MiB, "pass"),  # 2 % is 8 MiB: the 64 MiB floor rules
        (400 * MiB, 470 * MiB, 0.02, 64 * MiB, "regression"),
        (10240 * MiB, 10390 * MiB, 0.02, 64 * MiB, "pass"),  # 2 % of 10 GiB is 205 MiB: the percentage rules
        (10240 * MiB, 10490 * MiB, 0.02, 64 * MiB, "regression"),
    ],
)
def test_counted_tolerance(base, cand, threshold, floor, verdict):
    assert decide_counted(base, cand, threshold, floor, "lower") == verdict


def test_a_vs_a_on_synthetic_noise_rarely_fails_and_a_25_percent_slowdown_is_caught():
    # lognormal noise of 3 % per repeat, 10 repeats a side: the verdict must separate the two cases
    rng = np.random.default_rng(11)
    aa, slow = [], []
    for i in range(100):
        base = rng.lognormal(0, 0.03, 10)
        same = rng.lognormal(0, 0.03, 10)
        slower = 1.25 * rng.lognormal(0, 0.03, 10)
        aa.append(decide_timed(bootstrap_ratio(base, same, rng=stats.seed_for(0, str(i))), 0.05, "lower"))
        slow.append(decide_timed(bootstrap_ratio(base, slower, rng=stats.seed_for(0, str(i))), 0.05, "lower"))
    # 3 % noise on a median of 10 leaves ~2 % uncertainty per side: some A/A pairs stay inconclusive
    assert aa.count("regression") == 0 and aa.count("improvement") == 0 and aa.count("pass") >= 80
    assert slow.count("regression") == 100


def test_runs_are_resampled_as_groups():
    # three runs whose repeats agree within a run but not between runs: the interval must show the
    # between-run spread; treating the 15 repeats as independent claims a narrower one
    runs = [[1.00, 1.01, 0.99, 1.00, 1.00], [1.10, 1.11, 1.09, 1.10, 1.10], [1.20, 1.21, 1.19, 1.20, 1.20]]
    grouped = bootstrap_ratio(runs, runs)
    flat = bootstrap_ratio(sum(runs, []), sum(runs, []))
    assert (grouped.low, grouped.high) == (pytest.approx(1.0 / 1.2), pytest.approx(1.2))  # any run's median vs any
    assert (flat.low, flat.high) == (pytest.approx(1.0 / 1.1), pytest.approx(1.1))


def test_resampling_repeats_keeps_every_run():
    # runs constant within themselves: resampling whole runs shows the spread between them, resampling only
    # the repeats of each kept run leaves nothing to vary (the interval is conditional on these runs)
    runs = [[1.0] * 5, [1.1] * 5, [1.2] * 5]
    by_run = bootstrap_ratio(runs, runs)
    by_repeat = bootstrap_ratio(runs, runs, resample="repeats")
    assert (by_run.low, by_run.high) == (pytest.approx(1.0 / 1.2), pytest.approx(1.2))
    assert (by_repeat.ratio, by_repeat.low, by_repeat.high) == (1.0, 1.0, 1.0)
    with pytest.raises(ValueError, match="resample='runs' is not one of processes, repeats"):
        bootstrap_ratio(runs, runs, resample="runs")


def test_the_minimum_of_one_fast_run_among_eight():
    # one run of eight met the host's fast state (1.0), the others the slow one (1.8), on both sides: a
    # resample of whole runs leaves the fast one out with probability (7/8)^8 = 0.34, so that interval spans
    # 1/1.8 .. 1.8; kept runs with their repeats resampled keep the fast figure: 1.0 exactly
    runs = [[1.0] * 16] + [[1.8] * 16] * 7
    by_run = bootstrap_ratio(runs, runs, quantile=0.0)
    by_repeat = bootstrap_ratio(runs, runs, quantile=0.0, resample="repeats")
    assert (by_run.ratio, by_run.low, by_run.high) == (1.0, pytest.approx(1 / 1.8), pytest.approx(1.8))
    assert (by_repeat.low, by_repeat.high) == (1.0, 1.0)
    # half of that run's repeats fast, spread a little: the interval reaches the next-fastest repeats only
    runs = [[1.0, 1.01, 1.02, 1.03] * 2 + [1.8] * 8] + [[1.8] * 16] * 7
    est = bootstrap_ratio(runs, runs, quantile=0.0, resample="repeats")
    assert 1 / 1.02 <= est.low < 1.0 < est.high <= 1.02
    # only 3 fast repeats of 16: a resample misses all three with probability (13/16)^16 = 0.036 > 2.5 %,
    # so the interval reaches the slow state: too little evidence of the fast one to pass on
    runs = [[1.0, 1.01, 1.02] + [1.8] * 13] + [[1.8] * 16] * 7
    est = bootstrap_ratio(runs, runs, quantile=0.0, resample="repeats")
    assert est.low < 1.02 / 1.8 and est.high == pytest.approx(1.8)


@pytest.mark.parametrize("bad", [[], [1.0, -1.0], [1.0, float("nan")], [0.0, 1.0]])
def test_bad_samples_are_refused(bad):
    with pytest.raises(ValueError):
        bootstrap_ratio(bad, [1.0, 2.0])


def test_a_quantile_instead_of_the_median():
    # the q-quantile ratio is exact for these samples; 0 is the minimum, 1 the maximum; others are refused
    base, cand = [1.0, 2.0, 3.0, 4.0, 5.0], [2.0, 4.0, 6.0, 8.0, 10.0]
    assert bootstrap_ratio(base, cand, quantile=0.25).ratio == pytest.approx(4.0 / 2.0)
    assert bootstrap_ratio(base, cand, quantile=0.25).baseline_value == 2.0
    minimum = bootstrap_ratio(base, cand, quantile=0.0)
    assert (minimum.baseline_value, minimum.candidate_value) == (1.0, 2.0)
    assert bootstrap_ratio(base, cand, quantile=1.0).baseline_value == 5.0
    with pytest.raises(ValueError):
        bootstrap_ratio(base, cand, quantile=1.5)


def test_a_low_quantile_shrugs_off_slowed_runs():
    # two of six runs slowed by a burst of load (30 %): the median's interval reaches beyond +10 %,
    # the lower quartile's stays inside
    rng = np.random.default_rng(5)
    runs = lambda: [list(rng.lognormal(0, 0.01, 4)) for _ in range(6)]
    base, cand = runs(), runs()
    cand[0] = [1.3 * x for x in cand[0]]
    cand[1] = [1.3 * x for x in cand[1]]
    median = bootstrap_ratio(base, cand, rng=np.random.default_rng(0))
    quartile = bootstrap_ratio(base, cand, rng=np.random.default_rng(0), quantile=0.25)
    assert median.high > 1.10 and quartile.high < 1.10


@pytest.mark.parametrize("q", [0.0, 0.1, 0.25, 0.5, 0.9, 1.0])
def test_row_quantiles_with_uneven_rows_match_numpy(q):
    # runs with different repeat counts are padded with NaN; the fast path must agree with np.nanquantile
    rng = np.random.default_rng(3)
    values = rng.lognormal(0, 1, (300, 12))
    counts = rng.integers(1, 13, 300)
    values[np.arange(12)[None, :] >= counts[:, None]] = np.nan
    values = rng.permuted(values, axis=1)  # NaN anywhere in a row
    assert np.allclose(stats._row_quantiles(values, q), np.nanquantile(values, q, axis=1), rtol=1e-12, atol=0)


@pytest.mark.parametrize(
    "low, high, better, verdict",
    [
        (1.0, 1.05, "lower", "pass"),  # the worse bound exactly on the +5 % limit: still within it
        (1.05, 1.2, "lower", "inconclusive"),  # the lower bound on the limit: not wholly beyond it
        (0.9, 0.95, "lower", "pass"),  # the better bound on the -5 % limit: not surely an improvement
        (0.95, 1.0, "higher", "pass"),
        (0.8, 0.95, "higher", "inconclusive"),
        (1.05, 1.2, "higher", "pass"),
    ],
)
def test_decision_rule_at_the_limits(low, high, better, verdict):
    assert decide_timed(_est(low, high), 0.05, better) == verdict


def test_decision_rule_with_a_10_percent_threshold():
    assert decide_timed(_est(1.06, 1.09), 0.10, "lower") == "pass"  # a 5 % regression would flag it
    assert decide_timed(_est(1.11, 1.2), 0.10, "lower") == "regression"
    assert decide_timed(_est(0.8, 0.89), 0.10, "lower") == "improvement"
    assert decide_timed(_est(0.8, 0.89), 0.10, "higher") == "regression"


def test_repeats_hint_counts_the_larger_side_and_a_zero_width_interval():
    r = 1.05 * math.exp(0.05)
    est = RatioEstimate(r, r * math.exp(-0.1), r * math.exp(0.1), 0.95, 10, 20, 1.0, r)
    assert repeats_to_decide(est, 0.05, "lower") == 80  # 20 x (0.1 / 0.05)^2
    # for a higher-is-better metric the worse limit is 0.95
    r = 0.95 * math.exp(-0.04)
    est = RatioEstimate(r, r * math.exp(-0.1), r * math.exp(0.1), 0.95, 10, 10, 1.0, r)
    assert repeats_to_decide(est, 0.05, "higher") == 63  # ceil(10 x (0.1 / 0.04)^2 = 62.5)
    assert repeats_to_decide(_est(1.2, 1.2, n=7), 0.05, "lower") == 7
    # beyond MAX_HINT_REPEATS: "more repeats will not decide"
    r = 1.05 * math.exp(0.001)
    est = RatioEstimate(r, r * math.exp(-0.1), r * math.exp(0.1), 0.95, 10, 10, 1.0, r)
    assert repeats_to_decide(est, 0.05, "lower") is None


def test_counted_tolerance_at_the_edge_and_for_higher_is_better():
    assert decide_counted(1000.0, 1050.0, 0.05, 0.0, "lower") == "pass"  # exactly the allowance
    assert decide_counted(1000.0, 1050.5, 0.05, 0.0, "lower") == "regression"
    assert decide_counted(1000.0, 949.5, 0.05, 0.0, "lower") == "improvement"
    assert decide_counted(1000.0, 949.5, 0.05, 0.0, "higher") == "regression"
    assert decide_counted(1000.0, 1050.5, 0.05, 0.0, "higher") == "improvement"
    assert decide_counted(-1000.0, -949.0, 0.05, 0.0, "lower") == "regression"  # |baseline| sets the allowance
    assert (
        decide_counted(0.0, 9.0, 0.05, 10.0, "lower") == "pass"
        and decide_counted(0.0, 11.0, 0.05, 10.0, "lower") == "regression"
    )


def test_a_quantile_of_uneven_groups_known_answer():
    # constant groups: every resample gives the pooled quantile exactly
    est = bootstrap_ratio([[2.0, 2.0, 2.0], [2.0]], [[3.0], [3.0, 3.0]], quantile=0.25)
    assert (est.ratio, est.low, est.high, est.n_baseline, est.n_candidate) == (1.5, 1.5, 1.5, 4, 3)
    est = bootstrap_ratio([1.0, 2.0, 3.0, 4.0, 5.0], [2.0, 4.0, 6.0, 8.0, 10.0], quantile=0.25)
    assert (est.baseline_value, est.candidate_value, est.ratio) == (2.0, 4.0, 2.0)
    with pytest.raises(ValueError, match="confidence=1"):
        bootstrap_ratio([1.0], [1.0], confidence=1)
    with pytest.raises(ValueError, match="quantile=1.5"):
        bootstrap_ratio([1.0], [1.0], quantile=1.5)
    with pytest.raises(ValueError, match="resample='runs'"):
        bootstrap_ratio([1.0], [1.0], resample="runs")


PINNED_FLAT = (0.9943547699663746, 1.2064801556958555)
PINNED_GROUPS = (0.9806298946711216, 1.204036546765802)


def test_the_default_bootstrap_is_seeded_and_its_interval_pinned():
    rng = np.random.default_rng(11)
    a, b = rng.lognormal(0, 0.1, 12), rng.lognormal(0.1, 0.1, 9)
    default = bootstrap_ratio(a, b)
    explicit = bootstrap_ratio(
        a, b, confidence=0.95, resamples=2000, rng=np.random.default_rng(0), quantile=0.5, resample="processes"
    )
    assert default == explicit and default.confidence == 0.95
    # pinned: a change in the resampling, the interval's quantiles or the seed moves these
    assert (default.low, default.high) == pytest.approx(PINNED_FLAT, rel=1e-12)
    uneven = bootstrap_ratio([a[:5], a[5:]], [b[:2], b[2:]], rng=np.random.default_rng(0))
    assert (uneven.low, uneven.high) == pytest.approx(PINNED_GROUPS, rel=1e-12)
    narrow = bootstrap_ratio(a, b, confidence=0.5)
    assert default.low < narrow.low < narrow.high < default.high


def test_seed_for_depends_on_every_label_and_its_order():
    draw = lambda *labels: stats.seed_for(0, *labels).random()
    assert draw("a", "b") == draw("a", "b")
    assert len({draw("a", "b"), draw("b", "a"), draw("ab"), draw("a", "c"), stats.seed_for(1, "a", "b").random()}) == 5


def test_integer_samples_in_groups_of_unequal_size_are_read_as_floats():
    # whole-number samples (counts, bytes) in runs of 3 and 5 repeats: the padding of the short group is NaN
    est = bootstrap_ratio([[10, 12, 11], [11, 10, 12, 11, 13]], [[20, 22, 21], [21, 20, 22, 21, 23]], resamples=500)
    assert est.ratio == pytest.approx(21 / 11) and est.low <= est.ratio <= est.high
    assert bootstrap_ratio([10, 12, 11], [20, 22, 21], resamples=200).ratio == pytest.approx(21 / 11)


@pytest.mark.parametrize(
    "base, cand, message",
    [
        ([], [1.0], "bootstrap_ratio needs at least one sample on each side"),
        ([[], []], [1.0], "bootstrap_ratio needs at least one sample on each side"),
        ([1.0, 0.0], [1.0], "bootstrap_ratio needs finite, positive samples"),
        ([1.0], [float("nan")], "bootstrap_ratio needs finite, positive samples"),
    ],
)
def test_samples_it_cannot_judge_are_refused_with_the_reason(base, cand, message):
    with pytest.raises(ValueError, match=f"^{message}$"):
        bootstrap_ratio(base, cand)


def test_the_resampled_quantile_is_the_median_unless_asked():
    groups = [np.array([1.0, 2.0, 3.0, 4.0, 100.0])]
    rng = lambda: np.random.default_rng(3)
    medians = stats.resampled_quantiles(groups, 400, rng(), resample=stats.REPEATS)
    assert np.array_equal(medians, stats.resampled_quantiles(groups, 400, rng(), q=0.5, resample=stats.REPEATS))
    assert np.median(medians) == 3.0 and medians.max() <= 100.0


@pytest.mark.parametrize(
    "candidate, verdict", [(75.0, "pass"), (125.0, "pass"), (74.0, "improvement"), (126.0, "regression")]
)
def test_a_counted_change_of_exactly_the_allowance_passes_either_way(candidate, verdict):
    assert decide_counted(100.0, candidate, 0.25, 0.0, "lower") == verdict
    mirrored = {"improvement": "regression", "regression": "improvement"}.get(verdict, verdict)
    assert decide_counted(100.0, candidate, 0.25, 0.0, "higher") == mirrored


def test_the_repeats_hint_may_be_exactly_the_largest_it_gives(monkeypatch):
    est = RatioEstimate(1.02, 0.97, 1.07, 0.95, n_baseline=5, n_candidate=5, baseline_value=1.0, candidate_value=1.02)
    needed = repeats_to_decide(est, 0.05, "lower")
    assert needed is not None and needed > 5
    monkeypatch.setattr(stats, "MAX_HINT_REPEATS", needed)
    assert repeats_to_decide(est, 0.05, "lower") == needed
    monkeypatch.setattr(stats, "MAX_HINT_REPEATS", needed - 1)
    assert repeats_to_decide(est, 0.05, "lower") is None


@pytest.mark.parametrize("confidence", [0.0, 1.0, -0.5, 1.5])
def test_a_confidence_outside_the_open_unit_interval_is_refused(confidence):
    with pytest.raises(ValueError, match="confidence"):
        bootstrap_ratio([1.0, 1.1, 1.2], [1.0, 1.1, 1.2], confidence=confidence)
