"""Match runs by canonical key and give each (run, metric) a verdict; the verdicts decide the exit code."""

from __future__ import annotations

import math
import statistics
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from typing import Any

from harness import reproduce, summary
from harness.gate import stats as gstats
from harness.gate.baseline import Side, fingerprint, lookup
from harness.gate.settings import GateSettings, MetricSpec

VERDICTS_SCHEMA = "harness.verdicts/1"
# most severe first: the order of the summary, and of the exit code's precedence
SEVERITY = ("regression", "incomparable", "missing", "inconclusive", "new", "improvement", "pass")
EXIT_CODES = {"pass": 0, "regression": 1, "usage": 2, "inconclusive": 3, "incomparable": 4, "missing": 4}
FLAGGED = ("regression", "incomparable", "missing", "inconclusive")  # rows that get a reproduce command


@dataclass
class Check:
    """One verdict: a run (by key) and what was judged (a metric, its status, its environment, or the run)."""

    key: str
    label: str
    metric: str  # a metric name, or "status", "environment", "run"
    kind: str  # timed | counted | status | environment | run
    verdict: str
    better: str | None = None
    baseline: float | str | None = None  # median of the baseline's samples (timed), value (counted), status
    candidate: float | str | None = None
    n_baseline: int | None = None
    n_candidate: int | None = None
    ratio: float | None = None  # candidate / baseline
    ci_low: float | None = None
    ci_high: float | None = None
    threshold: float | None = None  # fraction of the baseline
    floor: float | None = None  # counted: absolute allowance, in the metric's unit
    note: str = ""
    repeats_hint: int | None = None  # inconclusive: repeats per side likely to decide
    reproduce: str | None = None


def _side_status(runs: Sequence[dict[str, Any]]) -> tuple[str, str]:
    """(status, reason) of pooled runs: ok only if every one is ok, else the first failure."""
    for r in runs:
        if r["status"] != "ok":
            return r["status"], (r.get("reason") or "").splitlines()[0] if r.get("reason") else ""
    return "ok", ""


def _positive(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) and x > 0


def timed_samples(runs: Sequence[dict[str, Any]], metric: str) -> list[list[float]]:
    """The per-repeat figures of a metric, one group per run (each repeat is one sample); empty groups dropped."""
    groups = [[float(rep[metric]) for rep in r.get("repeats") or [] if _positive(rep.get(metric))] for r in runs]
    return [g for g in groups if g]


def counted_value(runs: Sequence[dict[str, Any]], metric: str) -> float | None:
    """A counted metric of pooled runs: their median (they should agree), None if not recorded."""
    values = [(r.get("metrics") or {}).get(metric) for r in runs]
    values = [float(v) for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]
    return statistics.median(values) if values else None


Groups = list[list[float]]


def _judge_timed(check: Check, base: Groups, cand: Groups, spec: MetricSpec, s: GateSettings) -> None:
    flat_b, flat_c = [x for g in base for x in g], [x for g in cand for x in g]
    check.n_baseline, check.n_candidate = len(flat_b), len(flat_c)
    check.baseline, check.candidate = statistics.median(flat_b), statistics.median(flat_c)
    if min(len(flat_b), len(flat_c)) < s.min_repeats:
        check.verdict = "inconclusive"
        check.note = f"{min(len(flat_b), len(flat_c))} repeats on one side, fewer than min_repeats={s.min_repeats}"
        check.repeats_hint = s.min_repeats
        return
    est = gstats.bootstrap_ratio(
        base,
        cand,
        confidence=s.confidence,
        resamples=s.resamples,
        rng=gstats.seed_for(s.seed, check.key, check.metric),
        quantile=s.quantile if spec.better == gstats.LOWER else 1 - s.quantile,
        resample=s.resample,
    )
    check.baseline, check.candidate = est.baseline_value, est.candidate_value
    check.ratio, check.ci_low, check.ci_high = est.ratio, est.low, est.high
    check.verdict = gstats.decide_timed(est, spec.threshold, spec.better)
    if check.verdict == "inconclusive":
        check.repeats_hint = gstats.repeats_to_decide(est, spec.threshold, spec.better)
        if check.repeats_hint is None:
            check.note = "the change is too close to the threshold for more repeats to decide"
        elif len(base) == len(cand) == 1:
            check.note = f"about repeats={check.repeats_hint} per side would likely decide"
        else:  # pooled runs: the spread between runs counts too, so more runs help more than longer ones
            check.note = f"about {check.repeats_hint} repeats per side in all (more runs) would likely decide"


def _judge_metric(check: Check, base_runs: list, cand_runs: list, spec: MetricSpec, s: GateSettings) -> bool:
    """Fill in the check; False when neither side measured the metric (no row then)."""
    if spec.kind == "timed":
        base, cand = timed_samples(base_runs, check.metric), timed_samples(cand_runs, check.metric)
        present = bool(base), bool(cand)
    else:
        b, c = counted_value(base_runs, check.metric), counted_value(cand_runs, check.metric)
        present = b is not None, c is not None
    if present == (False, False):
        return False
    if present != (True, True):
        check.verdict = "missing" if present[0] else "new"
        check.note = "measured in the baseline, not in the candidate" if present[0] else "not in the baseline"
        return True
    if spec.kind == "timed":
        _judge_timed(check, base, cand, spec, s)
    else:
        check.baseline, check.candidate, check.floor = b, c, spec.floor
        check.ratio = c / b if b else None
        check.verdict = gstats.decide_counted(b, c, spec.threshold, spec.floor, spec.better)
    return True


def _differences(base_env: Any, cand_env: Any, fields: Sequence[str]) -> list[str]:
    """'field: baseline → candidate' for each named environment field that differs."""
    return [
        f"{k}: {v} → {lookup(cand_env, k)}"
        for k, v in fingerprint(base_env, fields).items()
        if v != lookup(cand_env, k)
    ]


def _pair(key: str, base_runs: list, cand_runs: list, s: GateSettings) -> list[Check]:
    label = summary.label(cand_runs[0]["key_fields"])
    base_env, cand_env = base_runs[0].get("environment"), cand_runs[0].get("environment")
    strict = _differences(base_env, cand_env, s.environment.strict)
    if strict:
        return [Check(key, label, "environment", "environment", "incomparable", note="; ".join(strict))]
    checks: list[Check] = []
    noted = _differences(base_env, cand_env, s.environment.noted)
    if noted:
        checks.append(Check(key, label, "environment", "environment", "pass", note="noted: " + "; ".join(noted)))

    b_status, b_reason = _side_status(base_runs)
    c_status, c_reason = _side_status(cand_runs)
    status = Check(key, label, "status", "status", "pass", baseline=b_status, candidate=c_status)
    if b_status == "ok" and c_status == "killed":  # stopped from outside, not by the code: measure it again
        status.verdict, status.note = "inconclusive", f"the candidate run was killed, re-run it: {c_reason}"
    elif b_status == "ok" and c_status == "predicted-oom":  # skipped before launch: nothing was measured
        status.verdict = "inconclusive"
        status.note = f"the candidate run was not launched ({c_reason}); measure it with feasibility.force=true"
    elif b_status == "ok" and c_status != "ok":
        status.verdict, status.note = "regression", c_reason
    elif b_status != "ok" and c_status == "ok":
        status.verdict, status.note = "improvement", f"baseline: {b_reason}"
    elif b_status != c_status:
        status.verdict, status.note = "inconclusive", f"both failed, differently: {c_reason}"
    elif c_status != "ok":
        status.note = f"both {c_status}: {c_reason}"
    notes = [status.note] if status.note else []
    notes += [
        f"{len(rs)} {side} runs pooled"
        for side, rs in (("baseline", base_runs), ("candidate", cand_runs))
        if len(rs) > 1
    ]
    status.note = "; ".join(notes)
    checks.append(status)
    if b_status != "ok" or c_status != "ok":
        return checks

    key_fields = cand_runs[0]["key_fields"]
    for metric in s.metrics:
        spec = s.spec_for(metric, key_fields)
        if not spec.enabled:
            continue
        check = Check(key, label, metric, spec.kind, "pass", better=spec.better, threshold=spec.threshold)
        if _judge_metric(check, base_runs, cand_runs, spec, s):
            checks.append(check)
    return checks


def compare(baseline: Side, candidate: Side, settings: GateSettings) -> list[Check]:
    """Every verdict of candidate against baseline, most severe first."""
    checks: list[Check] = []
    for key in sorted(set(baseline.by_key) | set(candidate.by_key)):
        base_runs, cand_runs = baseline.by_key.get(key), candidate.by_key.get(key)
        if not cand_runs:
            label = summary.label(base_runs[0]["key_fields"])
            command = reproduce.for_result(base_runs[0], sweep="gate-repro") if base_runs[0].get("config") else None
            note = "in the baseline, not in the candidate"
            checks.append(Check(key, label, "run", "run", "missing", note=note, reproduce=command))
            continue
        if not base_runs:
            label = summary.label(cand_runs[0]["key_fields"])
            checks.append(Check(key, label, "run", "run", "new", note="not in the baseline"))
            continue
        pair = _pair(key, base_runs, cand_runs, settings)
        flagged = [c for c in pair if c.verdict in FLAGGED]
        if flagged and cand_runs[0].get("config"):
            command = reproduce.for_result(cand_runs[0], sweep="gate-repro")
            for c in flagged:
                c.reproduce = command
        checks.extend(pair)
    return ordered(checks)


def ordered(checks: Sequence[Check]) -> list[Check]:
    """Most severe first, then by label, key and metric (the summary's order)."""
    rank = {v: i for i, v in enumerate(SEVERITY)}
    return sorted(checks, key=lambda c: (rank[c.verdict], c.label, c.key, c.metric))


def outcome(checks: Sequence[Check], allow_inconclusive: bool = False) -> tuple[str, int]:
    """The overall verdict and exit code: regression (1) > incomparable/missing (4) > inconclusive (3) > pass (0)."""
    seen = {c.verdict for c in checks}
    for verdict in ("regression", "incomparable", "missing"):
        if verdict in seen:
            return verdict, EXIT_CODES[verdict]
    if "inconclusive" in seen:
        return "inconclusive", 0 if allow_inconclusive else EXIT_CODES["inconclusive"]
    return "pass", 0


# pragma: no mutate block  (the verdicts.json wording below: rendering, not verdicts; docs/testing.md)
def _statistic(q: float) -> str:
    if q == 0.5:
        return "ratio of medians (candidate / baseline) of the per-repeat figures"
    if q == 0:
        return "ratio of minima (candidate / baseline) of the per-repeat figures (maxima where higher is better)"
    return (
        f"ratio of {q:g}-quantiles (candidate / baseline) of the per-repeat figures "
        f"({1 - q:g}-quantiles where higher is better)"
    )


def _interval(resample: str) -> str:
    if resample == gstats.PROCESSES:
        return "percentile bootstrap, each side resampled on its own, runs first, then their repeats"
    return "percentile bootstrap, each side resampled on its own, repeats within each run (runs kept)"


def _side_info(side: Side) -> dict[str, Any]:
    first = side.all_results()[0] if side.n_results else {}
    env = first.get("environment") or {}
    return {
        "sources": side.sources,
        "runs": side.n_results,
        "keys": len(side.by_key),
        "git": env.get("git"),
        "harness_version": lookup(env, "packages.harness"),
        "created_at": first.get("created_at"),
    }


def report(
    checks: Sequence[Check], baseline: Side, candidate: Side, settings: GateSettings, allow_inconclusive: bool
) -> dict[str, Any]:
    """The verdicts.json record (`harness.verdicts/1`, documented in docs/gate.md)."""
    name, code = outcome(checks, allow_inconclusive)
    counts = Counter(c.verdict for c in checks)
    return {
        "schema": VERDICTS_SCHEMA,
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "outcome": name,
        "exit_code": code,
        "allow_inconclusive": allow_inconclusive,
        "counts": {v: counts.get(v, 0) for v in SEVERITY},
        "baseline": _side_info(baseline),
        "candidate": _side_info(candidate),
        "settings": {
            "statistic": _statistic(settings.quantile),
            "quantile": settings.quantile,
            "interval": _interval(settings.resample),
            "resample": settings.resample,
            "confidence": settings.confidence,
            "resamples": settings.resamples,
            "seed": settings.seed,
            "min_repeats": settings.min_repeats,
            "environment_strict": list(settings.environment.strict),
        },
        "checks": [asdict(c) for c in checks],
    }
