"""Known answers for the quality statistics: figures of per-window sums, paired bootstrap intervals, verdicts
and the tokens-to-decide estimate (harness/quality_eval.py)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from harness import quality_eval as qe


def _w(nll, correct, ref_nll=None, ref_correct=None, tokens=10.0):
    n = len(nll)
    ref_nll = nll if ref_nll is None else ref_nll
    ref_correct = correct if ref_correct is None else ref_correct
    arr = lambda x: np.asarray(x, dtype=float)  # noqa: E731
    return qe.Windows(
        arr([tokens] * n), arr(nll), arr(correct), arr(ref_nll), arr(ref_correct), arr(correct), arr([0] * n)
    )


def test_figures_are_ratios_of_sums_with_the_bootstrap_range_of_two_windows():
    # two windows of 10 tokens: losses 1 and 3 nats/token, 5 and 3 hits
    f = qe.figures(_w([10.0, 30.0], [5.0, 3.0]), resamples=1000, seed=0)
    assert f["loss_nats"] == 2.0 and f["accuracy"] == 0.4 and f["perplexity"] == pytest.approx(math.exp(2.0))
    # resamples are {0,0}, {0,1}, {1,1} with P 1/4, 1/2, 1/4: the 2.5 % and 97.5 % quantiles are the extremes
    assert (f["loss_nats_lo"], f["loss_nats_hi"]) == (1.0, 3.0)
    assert (f["accuracy_lo"], f["accuracy_hi"]) == (0.3, 0.5)


def test_the_ratio_is_paired_so_a_constant_ratio_has_no_spread():
    # the run hits half as often as the reference in every window: 0.5 in every resample, however noisy
    f = qe.figures(_w([10, 30, 20], [2, 4, 1], ref_nll=[10, 30, 20], ref_correct=[4, 8, 2]), 500, seed=1)
    assert f["accuracy_ratio"] == f["accuracy_ratio_lo"] == f["accuracy_ratio_hi"] == 0.5
    assert f["perplexity_ratio"] == f["perplexity_ratio_lo"] == 1.0  # same loss as the reference


def test_perplexity_ratio_is_reference_over_run():
    # run loss 2.1, reference loss 2.0 (nats/token): ratio = exp(2.0 - 2.1) < 1 (worse than the reference)
    f = qe.figures(_w([21.0, 21.0], [5, 5], ref_nll=[20.0, 20.0], ref_correct=[5, 5]), 200)
    assert f["perplexity_ratio"] == pytest.approx(math.exp(-0.1))


def test_same_seed_same_interval_other_seed_other_resamples():
    w = _w(list(np.linspace(5, 40, 17)), list(np.arange(17) % 5))
    assert qe.figures(w, 300, seed=3) == qe.figures(w, 300, seed=3)
    assert qe.figures(w, 300, seed=3)["loss_nats_lo"] != qe.figures(w, 300, seed=4)["loss_nats_lo"]


@pytest.mark.parametrize(
    "lo, hi, verdict",
    [(0.995, 1.01, "pass"), (0.99, 1.0, "pass"), (0.97, 0.989, "fail"), (0.985, 0.995, "inconclusive")],
)
def test_verdict_from_the_interval(lo, hi, verdict):
    assert qe.verdict(lo, hi, 0.99) == verdict


def test_the_worst_verdict_decides():
    assert qe.worst(["pass", "inconclusive"]) == "inconclusive"
    assert qe.worst(["inconclusive", "fail"]) == "fail" and qe.worst(["pass", "pass"]) == "pass"


def test_tokens_to_decide_scales_with_the_square_of_the_width_over_the_gap():
    # half-width 0.01, point 0.005 above the floor: (0.01 / 0.005)^2 = 4 times the tokens
    assert qe.tokens_to_decide(0.995, 0.985, 1.005, 0.99, 4096) == 16384
    assert qe.tokens_to_decide(0.99, 0.98, 1.0, 0.99, 4096) is None  # on the floor: no number of tokens decides


def test_judge_reports_both_ratios_and_the_estimate_when_inconclusive():
    fig = {
        "accuracy_ratio": 0.995,
        "accuracy_ratio_lo": 0.985,
        "accuracy_ratio_hi": 1.005,
        "perplexity_ratio": 1.0,
        "perplexity_ratio_lo": 0.999,
        "perplexity_ratio_hi": 1.001,
    }
    out = qe.judge(fig, 0.99, 4096)
    assert (out["verdict"], out["verdict_accuracy"], out["verdict_perplexity"]) == (
        "inconclusive",
        "inconclusive",
        "pass",
    )
    assert out["tokens_to_decide_estimate"] == 16384 and "estimate" in out["tokens_to_decide_note"]
    assert "tokens_to_decide_estimate" not in qe.judge({**fig, "accuracy_ratio_lo": 0.992}, 0.99, 4096)
    assert qe.judge({**fig, "perplexity_ratio_lo": 0.97, "perplexity_ratio_hi": 0.98}, 0.99, 4096)["verdict"] == "fail"


def _zero_reference(ref_correct):
    """Windows of 100 tokens where the run gets 1 right in each and the reference `ref_correct[i]`."""
    n = len(ref_correct)
    full = np.full(n, 100.0)
    return qe.Windows(full, full * 3, np.ones(n), full * 3, np.asarray(ref_correct, float), full * 0.9, np.ones(n))


def test_a_reference_that_scored_zero_somewhere_leaves_the_ratio_unbounded_above_not_nan():
    import json
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # numpy's inf - inf interpolation warned and gave NaN
        fig = qe.figures(_zero_reference([0.0] * 9 + [1.0]), 1000)
    # point: 10 right / 1 right; P(a resample has no window where the reference scored) = 0.9 ** 10 = 35 %
    assert fig["accuracy_ratio"] == 10.0 and fig["accuracy_ratio_hi"] is None
    assert 1.0 <= fig["accuracy_ratio_lo"] <= 10.0
    json.dumps(fig, allow_nan=False)  # what results.write_atomic demands
    assert qe.judge(fig, 0.99, 1000)["verdict_accuracy"] == "pass"  # lower bound above the floor
    assert qe.verdict(0.5, None, 0.99) == "inconclusive"  # unbounded above: it cannot fail


def test_a_reference_that_never_scored_makes_the_ratio_undefined_and_inconclusive():
    fig = qe.figures(_zero_reference([0.0] * 10), 1000)
    assert fig["accuracy_ratio"] is None and fig["accuracy_ratio_lo"] is None and fig["accuracy_ratio_hi"] is None
    assert fig["perplexity_ratio"] == pytest.approx(1.0)  # the other ratio stands
    out = qe.judge(fig, 0.99, 1000)
    assert out["verdict_accuracy"] == "inconclusive" and out["tokens_to_decide_estimate"] is None
    both_zero = qe.figures(qe.Windows(*(np.zeros(4) + v for v in (100, 300, 0, 300, 0, 90, 1))), 100)
    assert both_zero["accuracy_ratio"] is None  # 0 / 0


def test_relative_quality_of_an_undefined_accuracy_ratio_is_the_perplexity_ratio():
    from harness import quality

    assert (
        quality.relative_quality({"accuracy_ratio": None, "perplexity_ratio": 0.97, "next_token_agreement": 0.5})
        == 0.97
    )
