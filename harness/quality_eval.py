"""The statistics of the quality axis: per-window sums → figures with seeded bootstrap intervals → a verdict.

Evaluation windows are the resampling unit (tokens inside one window are not independent). The run and its
fp32 reference are scored on the same windows, so their ratio is a paired statistic: each bootstrap resample
draws one set of windows for both (the interval of a paired ratio is much tighter than two separate ones).

Ratios held against `quality.floor` (MLPerf: >= 99 % of the fp32 reference's task metric; 99.9 % in its
high-accuracy mode), 1.0 = as good as the reference, < 1 = worse:
- accuracy ratio = next-token top-1 accuracy of the run / that of the reference;
- perplexity ratio = perplexity of the reference / that of the run = exp(loss_ref - loss_run).
Verdict per ratio: `pass` when the interval's lower bound >= floor, `fail` when its upper bound < floor,
`inconclusive` otherwise. The run's verdict is the worst of the two (fail > inconclusive > pass).

A reference that scores 0 makes the accuracy ratio undefined (0 / 0) or unbounded (x / 0). Over all windows,
the ratio and its lower bound are then None, and its verdict `inconclusive`. Where only some resamples drew
windows in which the reference scored 0 (over 2.5 % of them), the upper bound is None (unbounded above: the
ratio cannot `fail`). Resamples where the ratio is 0 / 0 carry no information about it and are left out of its
interval. Result files hold only finite numbers (JSON has no infinity), hence None.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

CONFIDENCE = 0.95
VERDICT_ORDER = ("pass", "inconclusive", "fail")


@dataclass(frozen=True)
class Windows:
    """Per-window sums over the same held-out windows: the run's, and (optionally) its reference's."""

    tokens: np.ndarray  # predicted tokens per window
    nll: np.ndarray  # summed cross-entropy, nats
    correct: np.ndarray  # top-1 hits
    ref_nll: np.ndarray | None = None
    ref_correct: np.ndarray | None = None
    agree: np.ndarray | None = None  # run argmax == reference argmax
    kl: np.ndarray | None = None  # summed KL(ref || run), nats


def _stats(w: Windows, idx: np.ndarray) -> dict[str, np.ndarray]:
    """Figures over the windows `idx` (shape (B, n) for B resamples, or (n,)): ratios of sums."""
    n = w.tokens[idx].sum(-1)
    out = {"loss_nats": w.nll[idx].sum(-1) / n, "accuracy": w.correct[idx].sum(-1) / n}
    out["perplexity"] = np.exp(out["loss_nats"])
    if w.ref_nll is not None:
        ref_loss = w.ref_nll[idx].sum(-1) / n
        ref_acc = w.ref_correct[idx].sum(-1) / n
        with np.errstate(divide="ignore", invalid="ignore"):
            out["accuracy_ratio"] = out["accuracy"] / ref_acc
        out["perplexity_ratio"] = np.exp(ref_loss - out["loss_nats"])
        out["next_token_agreement"] = w.agree[idx].sum(-1) / n
        out["kl_divergence_nats_mean"] = w.kl[idx].sum(-1) / n
    return out


def figures(w: Windows, resamples: int, seed: int = 0) -> dict[str, float]:
    """Each figure with `<name>_lo` / `<name>_hi`: the seeded percentile-bootstrap 95 % interval over windows."""
    count = len(w.tokens)
    point = _stats(w, np.arange(count))
    rng = np.random.default_rng(seed)
    boot = _stats(w, rng.integers(0, count, size=(resamples, count)))
    alpha = (1 - CONFIDENCE) / 2
    out: dict[str, float] = {}
    for name, value in point.items():
        lo, hi = _interval(boot[name], alpha) if count > 1 else (value, value)
        out[name], out[f"{name}_lo"], out[f"{name}_hi"] = _finite(value), _finite(lo), _finite(hi)
    return out


def _interval(values: np.ndarray, alpha: float) -> tuple[float, float]:
    """The percentile interval of the resampled figures, 0 / 0 resamples (NaN) left out; +inf where the
    quantile falls among infinite resamples (numpy interpolates inf - inf to NaN); NaN with none defined."""
    defined = values[~np.isnan(values)]
    if not defined.size:
        return math.nan, math.nan
    with np.errstate(invalid="ignore"):
        bounds = np.quantile(defined, [alpha, 1 - alpha])
    return tuple(float(b) if not math.isnan(b) else math.inf for b in bounds)  # type: ignore[return-value]


def _finite(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


def verdict(lo: float | None, hi: float | None, floor: float) -> str:
    """pass / fail / inconclusive of a ratio's interval against the floor; lo None: the ratio is undefined
    (inconclusive), hi None: unbounded above (it cannot fail)."""
    if lo is None:
        return "inconclusive"
    if lo >= floor:
        return "pass"
    if hi is not None and hi < floor:
        return "fail"
    return "inconclusive"


def worst(verdicts: list[str]) -> str:
    return max(verdicts, key=VERDICT_ORDER.index)


def tokens_to_decide(point: float | None, lo: float | None, hi: float | None, floor: float, tokens: int) -> int | None:
    """An estimate of how many held-out tokens in all would make an inconclusive interval decide, assuming its
    half-width shrinks as 1/sqrt(tokens) and the point estimate stays; None when the point sits on the floor
    or the interval is unbounded or undefined."""
    if point is None or lo is None or hi is None:
        return None
    gap = abs(point - floor)
    half = (hi - lo) / 2
    if gap == 0 or not math.isfinite(half):
        return None
    return int(math.ceil(tokens * (half / gap) ** 2))


def judge(fig: dict[str, float], floor: float, tokens: int) -> dict[str, object]:
    """The verdict fields of the quality section (needs the ratio figures)."""
    per = {m: verdict(fig[f"{m}_ratio_lo"], fig[f"{m}_ratio_hi"], floor) for m in ("accuracy", "perplexity")}
    out: dict[str, object] = {"verdict": worst(list(per.values())), "verdict_accuracy": per["accuracy"]}
    out["verdict_perplexity"] = per["perplexity"]
    needed = [
        tokens_to_decide(fig[f"{m}_ratio"], fig[f"{m}_ratio_lo"], fig[f"{m}_ratio_hi"], floor, tokens)
        for m, v in per.items()
        if v == "inconclusive"
    ]
    if out["verdict"] == "inconclusive":
        known = [n for n in needed if n is not None]
        out["tokens_to_decide_estimate"] = max(known) if len(known) == len(needed) else None
        out["tokens_to_decide_note"] = (
            "estimate: the interval's half-width assumed to shrink as 1/sqrt(tokens); set quality.eval_tokens"
        )
    return out
