"""Classification quality: accuracy and macro-F1 over held-out examples, each with n and a seeded bootstrap
95 % interval, and per-class precision / recall / F1.

The example is the resampling unit (examples are independent draws of the held-out split). Macro-F1 is the
unweighted mean of the per-class F1 over the classes present in the labels or the predictions of the
sample (scikit-learn's `f1_score(average="macro")`); a class with no true and no predicted example in a
resample does not count there. Precision of a class never predicted is 0 (scikit-learn's zero_division=0).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

CONFIDENCE = 0.95
INTERVAL_METHOD = "seeded percentile bootstrap over held-out examples, 95 %"


def _counts(labels: np.ndarray, preds: np.ndarray, classes: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(true positives, predicted, actual) per class, along the last axis; inputs (..., n)."""
    onehot_true = labels[..., None] == np.arange(classes)
    onehot_pred = preds[..., None] == np.arange(classes)
    tp = (onehot_true & onehot_pred).sum(-2)
    return tp, onehot_pred.sum(-2), onehot_true.sum(-2)


def _f1(tp: np.ndarray, predicted: np.ndarray, actual: np.ndarray) -> np.ndarray:
    """Per-class F1 = 2 tp / (predicted + actual); 0 where the class has neither (left out by `_macro`)."""
    denom = predicted + actual
    return np.divide(2 * tp, denom, out=np.zeros(denom.shape, dtype=float), where=denom > 0)


def _macro(tp: np.ndarray, predicted: np.ndarray, actual: np.ndarray) -> np.ndarray:
    present = (predicted + actual) > 0
    return _f1(tp, predicted, actual).sum(-1) / np.maximum(present.sum(-1), 1)


def accuracy(labels: Sequence[int], preds: Sequence[int]) -> float:
    """Share of examples whose predicted class is the label (0..1)."""
    y, p = np.asarray(labels), np.asarray(preds)
    return float((y == p).mean())


def macro_f1(labels: Sequence[int], preds: Sequence[int], classes: int) -> float:
    """Unweighted mean of per-class F1 over the classes that occur in labels or predictions (0..1)."""
    return float(_macro(*_counts(np.asarray(labels), np.asarray(preds), classes)))


def per_class(labels: Sequence[int], preds: Sequence[int], names: Sequence[str]) -> list[dict[str, Any]]:
    """Per class: support (held-out examples of it), predicted count, precision, recall, F1."""
    tp, predicted, actual = _counts(np.asarray(labels), np.asarray(preds), len(names))
    f1 = _f1(tp, predicted, actual)
    out = []
    for i, name in enumerate(names):
        out.append(
            {
                "label": name,
                "support": int(actual[i]),
                "predicted": int(predicted[i]),
                "precision": float(tp[i] / predicted[i]) if predicted[i] else 0.0,
                "recall": float(tp[i] / actual[i]) if actual[i] else None,
                "f1": float(f1[i]),
            }
        )
    return out


def _interval(values: np.ndarray) -> tuple[float, float]:
    alpha = (1 - CONFIDENCE) / 2
    return float(np.quantile(values, alpha)), float(np.quantile(values, 1 - alpha))


def figures(labels: Sequence[int], preds: Sequence[int], classes: int, resamples: int, seed: int = 0) -> dict:
    """accuracy and macro_f1, each with `_lo` / `_hi` (seeded percentile bootstrap 95 %), and n."""
    y, p = np.asarray(labels), np.asarray(preds)
    n = len(y)
    if n == 0:
        raise ValueError("no held-out examples to score")
    out: dict[str, Any] = {"n": n, "accuracy": accuracy(y, p), "macro_f1": macro_f1(y, p, classes)}
    if n == 1:
        lo_hi = {k: (out[k], out[k]) for k in ("accuracy", "macro_f1")}
    else:
        idx = np.random.default_rng(seed).integers(0, n, size=(resamples, n))
        boot_acc = (y[idx] == p[idx]).mean(-1)
        boot_f1 = _macro(*_counts(y[idx], p[idx], classes))
        lo_hi = {"accuracy": _interval(boot_acc), "macro_f1": _interval(boot_f1)}
    for name, (lo, hi) in lo_hi.items():
        out[f"{name}_lo"], out[f"{name}_hi"] = lo, hi
    return out


def paired_difference(labels: Sequence[int], preds_a: Sequence[int], preds_b: Sequence[int], resamples: int,
                      seed: int = 0) -> dict[str, Any]:  # fmt: skip
    """Accuracy of a minus accuracy of b over the same examples, with a paired bootstrap 95 % interval: each
    resample draws examples and scores both classifiers on the same draw (so shared hard examples cancel)."""
    y, a, b = np.asarray(labels), np.asarray(preds_a), np.asarray(preds_b)
    n = len(y)
    if n == 0:
        raise ValueError("no held-out examples to score")
    delta = (a == y).astype(float) - (b == y).astype(float)  # per example: +1, 0, -1
    out: dict[str, Any] = {"n": n, "accuracy": float(delta.mean())}
    idx = np.random.default_rng(seed).integers(0, n, size=(resamples, n))
    out["accuracy_lo"], out["accuracy_hi"] = _interval(delta[idx].mean(-1)) if n > 1 else (out["accuracy"],) * 2
    out["method"] = f"paired {INTERVAL_METHOD}, {resamples} resamples"
    return out


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den, NaN where den is 0 (a reference that scored nothing: the ratio is undefined there)."""
    return np.divide(num, den, out=np.full(np.shape(num), np.nan), where=np.asarray(den) > 0)


def paired_ratios(labels: Sequence[int], preds: Sequence[int], ref_preds: Sequence[int], classes: int,
                  resamples: int, seed: int = 0) -> dict[str, Any]:  # fmt: skip
    """This run's accuracy and macro-F1 as ratios to a reference's over the same examples (1.0 = as good), each
    with a paired bootstrap 95 % interval (both scored on every resample's draw), and the share of examples
    whose predicted class is the reference's (`agreement`). A ratio is None where the reference scored 0."""
    y, p, r = np.asarray(labels), np.asarray(preds), np.asarray(ref_preds)
    n = len(y)
    if n == 0:
        raise ValueError("no held-out examples to score")
    point = {
        "accuracy_ratio": _ratio(np.asarray((p == y).mean()), np.asarray((r == y).mean())),
        "macro_f1_ratio": _ratio(_macro(*_counts(y, p, classes)), _macro(*_counts(y, r, classes))),
    }
    out: dict[str, Any] = {"n": n, "agreement": float((p == r).mean())}
    idx = np.random.default_rng(seed).integers(0, n, size=(resamples, n))
    boot = {
        "accuracy_ratio": _ratio((p[idx] == y[idx]).mean(-1), (r[idx] == y[idx]).mean(-1)),
        "macro_f1_ratio": _ratio(_macro(*_counts(y[idx], p[idx], classes)), _macro(*_counts(y[idx], r[idx], classes))),
    }
    for name, value in point.items():
        defined = boot[name][~np.isnan(boot[name])]
        v = float(value)
        out[name] = None if np.isnan(v) else v
        lo, hi = _interval(defined) if n > 1 and defined.size else (out[name], out[name])
        out[f"{name}_lo"], out[f"{name}_hi"] = lo, hi
    out["method"] = f"paired {INTERVAL_METHOD}, {resamples} resamples"
    return out
