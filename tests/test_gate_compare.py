"""Matching by key, verdicts per run and metric, environments, overrides and the exit code (in process)."""

import copy

import pytest
from gate_helpers import ENV, make

from harness.errors import ConfigError
from harness.gate import compare, settings
from harness.gate.baseline import Side


def side(*records):
    s = Side(sources=["synthetic"])
    for r in records:
        s.by_key.setdefault(r["key"], []).append(r)
    return s


def run(base, cand, overrides=(), allow_inconclusive=False):
    s = settings.load(overrides=list(overrides))
    checks = compare.compare(side(*base), side(*cand), s)
    return checks, compare.outcome(checks, allow_inconclusive)


def by_metric(checks):
    return {(c.label, c.metric): c for c in checks}


def test_a_vs_a_passes_every_check():
    checks, outcome = run([make(seed=1)], [make(seed=2)])
    assert outcome == ("pass", 0)
    assert {c.verdict for c in checks} == {"pass"}
    metrics = {c.metric for c in checks}
    assert {"status", "params", "peak_rss_bytes", "decode_tok_per_s", "request_latency_s_p50"} <= metrics
    # measured on neither side: no row (codecarbon gives no per-repeat energy; no price; no training; no GPU)
    assert not metrics & {"j_per_token", "usd_per_1m_tokens_generated", "step_time_s_p50", "cuda_max_allocated_bytes"}


def test_per_repeat_energy_and_cost_are_gated_as_timed_metrics():
    def with_energy_and_cost(record, watts_factor):
        for rep in record["repeats"]:
            tok_s = rep["e2e_tok_per_s"]
            rep["j_per_token"] = 50.0 * watts_factor / tok_s  # 50 W for the baseline
            rep["usd_per_1m_tokens_generated"] = 3.6 / 3600 / tok_s * 1e6  # 3.6 USD/h
        return record

    base = with_energy_and_cost(make(seed=1), 1.0)
    same = with_energy_and_cost(make(seed=2), 1.0)
    hotter = with_energy_and_cost(make(seed=2), 1.3)  # same speed, 30 % more power
    checks, outcome = run([base], [same])
    m = by_metric(checks)
    assert outcome == ("pass", 0)
    assert m[("tiny fp32 bs=1 seq=128 gpus=1", "j_per_token")].verdict == "pass"
    assert m[("tiny fp32 bs=1 seq=128 gpus=1", "usd_per_1m_tokens_generated")].verdict == "pass"
    checks, outcome = run([base], [hotter])
    m = by_metric(checks)
    assert outcome == ("regression", 1)
    energy = m[("tiny fp32 bs=1 seq=128 gpus=1", "j_per_token")]
    assert energy.verdict == "regression" and energy.threshold == 0.10 and energy.ratio == pytest.approx(1.3, rel=0.03)
    assert m[("tiny fp32 bs=1 seq=128 gpus=1", "usd_per_1m_tokens_generated")].verdict == "pass"  # speed unchanged


def test_a_slowdown_is_a_regression_in_latencies_and_throughputs():
    checks, outcome = run([make(seed=1)], [make(slowdown=1.25, seed=2)])
    assert outcome == ("regression", 1)
    m = by_metric(checks)
    for metric in ("decode_latency_s_p50", "request_latency_s_p50", "decode_tok_per_s", "e2e_tok_per_s"):
        c = m[("tiny fp32 bs=1 seq=128 gpus=1", metric)]
        assert c.verdict == "regression"
        assert c.ci_low <= c.ratio <= c.ci_high
        assert c.reproduce.startswith("python -m harness model=tiny precision=fp32")
    assert m[("tiny fp32 bs=1 seq=128 gpus=1", "request_latency_s_p50")].ratio == pytest.approx(1.25, rel=0.02)
    assert checks[0].verdict == "regression"  # most severe first
    assert m[("tiny fp32 bs=1 seq=128 gpus=1", "params")].verdict == "pass"


def test_a_speed_up_is_an_improvement_and_passes():
    checks, outcome = run([make(seed=1)], [make(slowdown=0.8, seed=2)])
    assert outcome == ("pass", 0)
    assert by_metric(checks)[("tiny fp32 bs=1 seq=128 gpus=1", "decode_tok_per_s")].verdict == "improvement"


def test_missing_and_new_runs():
    base = [make(seed=1), make("precision=bf16", seed=1)]
    cand = [make(seed=2), make("batch_size=4", seed=2)]
    checks, outcome = run(base, cand)
    assert outcome == ("missing", 4)
    runs = {c.label: c for c in checks if c.metric == "run"}
    assert runs["tiny bf16 bs=1 seq=128 gpus=1"].verdict == "missing"
    assert "precision=bf16" in runs["tiny bf16 bs=1 seq=128 gpus=1"].reproduce
    assert runs["tiny fp32 bs=4 seq=128 gpus=1"].verdict == "new"


def test_new_runs_alone_do_not_fail():
    checks, outcome = run([make(seed=1)], [make(seed=2), make("batch_size=4", seed=2)])
    assert outcome == ("pass", 0) and [c.verdict for c in checks].count("new") == 1


def test_incomparable_environment_is_said_and_not_compared():
    env = copy.deepcopy(ENV)
    env["packages"]["torch"] = "2.12.0+cpu"
    env["cpu_model"] = "Intel Xeon"
    checks, outcome = run([make(seed=1)], [make(slowdown=2.0, env=env, seed=2)])
    assert outcome == ("incomparable", 4)
    (c,) = checks  # nothing else is compared: no silent 2x "regression" across machines
    assert c.verdict == "incomparable" and c.metric == "environment"
    assert "cpu_model: AMD EPYC → Intel Xeon" in c.note and "packages.torch: 2.13.0+cpu → 2.12.0+cpu" in c.note


def test_a_noted_environment_difference_is_reported_but_compared():
    env = copy.deepcopy(ENV)
    env["torch_threads"] = 1
    checks, outcome = run([make(seed=1)], [make(slowdown=1.3, env=env, seed=2)])
    assert outcome == ("regression", 1)
    (note,) = [c for c in checks if c.metric == "environment"]
    assert note.verdict == "pass" and note.note == "noted: torch_threads: 2 → 1"


def test_strict_fields_are_a_setting():
    env = copy.deepcopy(ENV)
    env["packages"]["torch"] = "2.12.0+cpu"
    _, outcome = run([make(seed=1)], [make(env=env, seed=2)], ["environment.strict=[cpu_model]"])
    assert outcome == ("pass", 0)


@pytest.mark.parametrize(
    "base_status, cand_status, verdict, code",
    [
        ("ok", "oom", "regression", 1),
        ("ok", "error", "regression", 1),
        ("ok", "timeout", "regression", 1),
        ("oom", "ok", "improvement", 0),
        ("oom", "oom", "pass", 0),
        ("oom", "error", "inconclusive", 3),
    ],
)
def test_status_changes(base_status, cand_status, verdict, code):
    checks, outcome = run([make(status=base_status)], [make(status=cand_status)])
    (status,) = [c for c in checks if c.metric == "status"]
    assert (status.baseline, status.candidate, status.verdict) == (base_status, cand_status, verdict)
    assert outcome[1] == code
    if cand_status != "ok":
        assert f"injected {cand_status}" in status.note
        assert not [c for c in checks if c.kind == "timed"]  # a failed run has no figures to compare


def test_a_metric_the_candidate_stopped_recording_is_missing():
    checks, outcome = run([make(seed=1)], [make(seed=2, drop=("decode_tok_per_s", "peak_rss_bytes"))])
    assert outcome == ("missing", 4)
    missing = {c.metric for c in checks if c.verdict == "missing"}
    assert missing == {"decode_tok_per_s", "peak_rss_bytes"}


def test_too_few_repeats_is_inconclusive_with_a_hint():
    checks, outcome = run([make(repeats=2, seed=1)], [make(repeats=2, seed=2)])
    assert outcome == ("inconclusive", 3)
    c = by_metric(checks)[("tiny fp32 bs=1 seq=128 gpus=1", "decode_latency_s_p50")]
    assert c.verdict == "inconclusive" and c.repeats_hint == 3 and "min_repeats=3" in c.note


def test_noisy_inconclusive_says_how_many_repeats_would_decide():
    checks, outcome = run([make(noise=0.08, repeats=5, seed=1)], [make(noise=0.08, repeats=5, slowdown=1.05, seed=2)])
    assert outcome[0] == "inconclusive"
    hinted = [c for c in checks if c.verdict == "inconclusive"]
    assert all("repeats" in c.note for c in hinted)
    assert all(c.repeats_hint is None or c.repeats_hint > 5 for c in hinted)
    assert compare.outcome(checks, allow_inconclusive=True) == ("inconclusive", 0)


def test_threshold_overrides_per_metric_and_per_config():
    base = [make(seed=1), make("batch_size=4", seed=1)]
    cand = [make(slowdown=1.08, seed=2), make("batch_size=4", slowdown=1.08, seed=2)]
    wide = {f"metrics.{m}.threshold=0.15" for m in compare_metrics()}
    _, outcome = run(base, cand)
    assert outcome == ("regression", 1)  # 8 % slower, default threshold 5 %
    _, outcome = run(base, cand, sorted(wide))
    assert outcome == ("pass", 0)
    per_config = "per_config=[{match: {batch_size: 4}, metrics: {decode_tok_per_s: {threshold: 0.15}}}]"
    checks, _ = run(base, cand, [per_config])
    m = by_metric(checks)
    assert m[("tiny fp32 bs=4 seq=128 gpus=1", "decode_tok_per_s")].verdict == "pass"
    assert m[("tiny fp32 bs=4 seq=128 gpus=1", "decode_tok_per_s")].threshold == 0.15
    assert m[("tiny fp32 bs=1 seq=128 gpus=1", "decode_tok_per_s")].verdict == "regression"


def test_a_metric_can_be_switched_off():
    checks, _ = run([make(seed=1)], [make(seed=2)], ["metrics.ttft_s_p50.enabled=false"])
    assert "ttft_s_p50" not in {c.metric for c in checks}
    # the first metric switched off: every later one is still judged
    first = next(iter(settings.load().metrics))
    everything = {c.metric for c in run([make(seed=1)], [make(seed=2)])[0]}
    without = {c.metric for c in run([make(seed=1)], [make(seed=2)], [f"metrics.{first}.enabled=false"])[0]}
    assert without == everything - {first} and len(without) > 5


def compare_metrics():
    return [m for m, spec in settings.load().metrics.items() if spec.kind == "timed"]


def test_pooled_runs_are_counted():
    checks, outcome = run([make(seed=1), make(seed=3)], [make(seed=2), make(seed=4), make(seed=5)])
    assert outcome == ("pass", 0)
    c = by_metric(checks)[("tiny fp32 bs=1 seq=128 gpus=1", "decode_latency_s_p50")]
    assert (c.n_baseline, c.n_candidate) == (20, 30)
    status = by_metric(checks)[("tiny fp32 bs=1 seq=128 gpus=1", "status")]
    assert status.note == "2 baseline runs pooled; 3 candidate runs pooled"


def test_verdicts_are_reproducible():
    base, cand = [make(noise=0.05, seed=1)], [make(noise=0.05, slowdown=1.03, seed=2)]
    first, _ = run(base, cand)
    second, _ = run(base, cand)
    assert [(c.ci_low, c.ci_high, c.verdict) for c in first] == [(c.ci_low, c.ci_high, c.verdict) for c in second]


def test_outcome_precedence():
    C = compare.Check
    mk = lambda *vs: [C("k", "l", "m", "timed", v) for v in vs]
    assert compare.outcome(mk("pass", "inconclusive", "missing", "regression")) == ("regression", 1)
    assert compare.outcome(mk("pass", "inconclusive", "incomparable")) == ("incomparable", 4)
    assert compare.outcome(mk("pass", "inconclusive", "new", "improvement")) == ("inconclusive", 3)
    assert compare.outcome(mk("pass", "new", "improvement")) == ("pass", 0)
    assert compare.outcome([]) == ("pass", 0)


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["confidnce=0.9"], "confidnce=0.9 is not valid: no such key; did you mean confidence?"),
        (["confidence=1.5"], "confidence=1.5 is not valid: must be > 0 and < 1 (e.g. 0.95)"),
        (
            ["metrics.decode_tok_per_s.treshold=0.1"],
            "metrics.decode_tok_per_s.treshold=0.1 is not valid: no such key; did you mean threshold?",
        ),
        (
            ["metrics.decode_tok_per_s.kind=timd"],
            "metrics.decode_tok_per_s.kind=timd is not valid: choose one of timed, counted",
        ),
        (
            ["metrics.decode_tok_per_s.threshold=1.5"],
            "metrics.decode_tok_per_s.threshold=1.5 is not valid: must be >= 0 and < 1 (a fraction: 0.05 = 5 %)",
        ),
        (
            ["per_config=[{match: {model: tiny}, metrics: {decode_tok_per_sec: {threshold: 0.2}}}]"],
            "per_config.0.metrics.decode_tok_per_sec={'threshold': 0.2} is not valid: no such key; "
            "did you mean decode_tok_per_s?",
        ),
        (["resamples"], "override=resamples is not valid: expected key=value"),
        (["resample=runs"], "resample=runs is not valid: choose one of processes, repeats"),
    ],
)
def test_setting_errors_name_the_key(overrides, message):
    with pytest.raises(ConfigError) as err:
        settings.load(overrides=overrides)
    assert str(err.value).startswith(message)


def test_unknown_config_name_lists_the_choices():
    with pytest.raises(ConfigError) as err:
        settings.load("strikt")
    assert str(err.value) == "--config=strikt is not valid: choose one of default, noisy or give a .yaml file"


def test_the_quantile_setting_takes_the_fast_end_for_both_directions():
    import numpy as np

    base, cand = make(noise=0.05, seed=1), make(noise=0.05, seed=2)
    checks, _ = run([base], [cand], ["quantile=0.25"])
    m = by_metric(checks)
    lat = m[("tiny fp32 bs=1 seq=128 gpus=1", "decode_latency_s_p50")]
    tps = m[("tiny fp32 bs=1 seq=128 gpus=1", "decode_tok_per_s")]
    assert lat.baseline == pytest.approx(np.quantile([r["decode_latency_s_p50"] for r in base["repeats"]], 0.25))
    assert tps.baseline == pytest.approx(np.quantile([r["decode_tok_per_s"] for r in base["repeats"]], 0.75))
    with pytest.raises(ConfigError, match="quantile=1.5 is not valid"):
        settings.load(overrides=["quantile=1.5"])
    # 0: the minimum of the latencies and the maximum of the throughputs, said so in the settings
    checks, _ = run([base], [cand], ["quantile=0"])
    m = by_metric(checks)
    assert m[("tiny fp32 bs=1 seq=128 gpus=1", "decode_latency_s_p50")].baseline == pytest.approx(
        min(r["decode_latency_s_p50"] for r in base["repeats"])
    )
    assert m[("tiny fp32 bs=1 seq=128 gpus=1", "decode_tok_per_s")].baseline == pytest.approx(
        max(r["decode_tok_per_s"] for r in base["repeats"])
    )


def test_the_resample_setting_is_used_and_reported():
    # three runs a side, each steady within itself but 10 % apart from the others: resampling runs gives a
    # wide interval; resampling repeats within kept runs a narrow one; verdicts.json says which was used
    runs = lambda seed: [make(noise=0.001, seed=seed + i, slowdown=1 + 0.1 * i) for i in range(3)]
    base, cand = runs(0), runs(10)
    key = ("tiny fp32 bs=1 seq=128 gpus=1", "decode_latency_s_p50")
    wide = by_metric(run(base, cand)[0])[key]
    narrow = by_metric(run(base, cand, ["resample=repeats"])[0])[key]
    assert wide.ci_high - wide.ci_low > 0.1 > narrow.ci_high - narrow.ci_low
    assert wide.ratio == narrow.ratio
    s = settings.load(overrides=["resample=repeats"])
    rep = compare.report(compare.compare(side(*base), side(*cand), s), side(*base), side(*cand), s, False)
    assert rep["settings"]["resample"] == "repeats"
    assert "repeats within each run (runs kept)" in rep["settings"]["interval"]
    assert settings.load("noisy").resample == "repeats" and settings.load().resample == "processes"


@pytest.mark.parametrize("base_n, cand_n", [(10, 2), (2, 10)])
def test_min_repeats_takes_the_smaller_side(base_n, cand_n):
    checks, outcome = run([make(repeats=base_n, seed=1)], [make(repeats=cand_n, seed=2)])
    assert outcome == ("inconclusive", 3)
    c = by_metric(checks)[("tiny fp32 bs=1 seq=128 gpus=1", "decode_tok_per_s")]
    assert (c.n_baseline, c.n_candidate) == (base_n, cand_n)
    assert c.verdict == "inconclusive" and c.note == "2 repeats on one side, fewer than min_repeats=3"
    assert c.repeats_hint == 3 and c.ratio is None  # not judged on the figures


def test_exactly_min_repeats_is_judged_on_the_figures():
    checks, outcome = run([make(repeats=3, seed=1)], [make(repeats=3, seed=2, slowdown=1.5)])
    c = by_metric(checks)[("tiny fp32 bs=1 seq=128 gpus=1", "request_latency_s_p50")]
    assert c.verdict == "regression" and c.ratio == pytest.approx(1.5, rel=0.05) and outcome == ("regression", 1)


def test_outcome_precedence_in_every_pair():
    C = compare.Check
    mk = lambda *vs: [C("k", "l", "m", "timed", v) for v in vs]
    assert compare.outcome(mk("regression", "incomparable")) == ("regression", 1)
    assert compare.outcome(mk("incomparable", "missing")) == ("incomparable", 4)
    assert compare.outcome(mk("missing", "inconclusive")) == ("missing", 4)
    assert compare.outcome(mk("missing")) == ("missing", 4)
    assert compare.outcome(mk("inconclusive", "new", "pass")) == ("inconclusive", 3)
    assert compare.outcome(mk("new")) == ("pass", 0)
    # --allow-inconclusive forgives only inconclusive
    assert compare.outcome(mk("inconclusive"), allow_inconclusive=True) == ("inconclusive", 0)
    assert compare.outcome(mk("regression", "inconclusive"), allow_inconclusive=True) == ("regression", 1)
    assert compare.outcome(mk("missing", "inconclusive"), allow_inconclusive=True) == ("missing", 4)
    assert compare.outcome(mk("incomparable"), allow_inconclusive=True) == ("incomparable", 4)
    assert compare.EXIT_CODES == {
        "pass": 0,
        "regression": 1,
        "usage": 2,
        "inconclusive": 3,
        "incomparable": 4,
        "missing": 4,
    }


def test_checks_are_sorted_most_severe_first():
    checks, _ = run(
        [make(seed=1), make("batch_size=4", seed=1)],
        [make(seed=2, slowdown=1.3), make("seq_len=64", seed=2)],
    )
    order = [c.verdict for c in checks]
    rank = {v: i for i, v in enumerate(compare.SEVERITY)}
    assert order == sorted(order, key=rank.__getitem__) and order[0] == "regression"
    assert {"regression", "missing", "new"} <= set(order)


def test_the_repeats_hint_is_pinned_for_a_seeded_noisy_pair():
    # the bootstrap is seeded per run and metric: the hint is a reproducible number, and the note says it
    checks, _ = run([make(noise=0.08, repeats=5, seed=1)], [make(noise=0.08, repeats=5, slowdown=1.05, seed=2)])
    c = by_metric(checks)[("tiny fp32 bs=1 seq=128 gpus=1", "request_latency_s_p50")]
    assert (c.verdict, c.repeats_hint, c.note) == ("inconclusive", 29, "about repeats=29 per side would likely decide")
    hints = {c.metric: c.repeats_hint for c in checks if c.verdict == "inconclusive"}
    assert hints["samples_per_s"] == 37 and hints["decode_tok_per_s"] == 87


def test_only_positive_finite_numbers_are_timed_samples():
    runs = [
        {"repeats": [{"m": 1.5}, {"m": 0}, {"m": -1.0}, {"m": float("nan")}, {"m": float("inf")}, {"m": True}]},
        {"repeats": [{"m": "2"}, {}, {"m": 2}]},
        {"repeats": []},
        {"repeats": None},
        {},
    ]
    assert compare.timed_samples(runs, "m") == [[1.5], [2.0]]
    assert compare.timed_samples([{"repeats": [{"m": None}]}], "m") == []


def test_a_counted_metric_is_the_median_of_the_pooled_runs():
    runs = [{"metrics": {"p": 3}}, {"metrics": {"p": True}}, {"metrics": {"p": 1}}, {"metrics": None}, {}]
    assert compare.counted_value(runs, "p") == 2.0
    assert (
        compare.counted_value([{"metrics": {"p": 4.0}}, {"metrics": {"p": 8.0}}, {"metrics": {"p": 5.0}}], "p") == 5.0
    )
    assert compare.counted_value(runs, "q") is None


def test_the_notes_say_what_happened():
    label = "tiny fp32 bs=1 seq=128 gpus=1"
    checks, _ = run([make(seed=1)], [make(seed=2, drop=("peak_rss_bytes",))])
    assert by_metric(checks)[(label, "peak_rss_bytes")].note == "measured in the baseline, not in the candidate"
    checks, _ = run([make(seed=1, drop=("peak_rss_bytes",))], [make(seed=2)])
    new = by_metric(checks)[(label, "peak_rss_bytes")]
    assert (new.verdict, new.note) == ("new", "not in the baseline")
    status = lambda b, c: by_metric(run([make(status=b)], [make(status=c)])[0])[(label, "status")].note
    assert status("oom", "ok") == "baseline: injected oom"
    assert status("oom", "error") == "both failed, differently: injected error"
    assert status("oom", "oom") == "both oom: injected oom"
    assert status("ok", "timeout") == "injected timeout"
    checks, _ = run([make(seed=1), make("batch_size=4", seed=1)], [make(seed=2)])
    (missing,) = [c for c in checks if c.metric == "run"]
    assert missing.note == "in the baseline, not in the candidate" and missing.verdict == "missing"
    checks, _ = run([make(seed=1)], [make(seed=2), make("batch_size=4", seed=2)])
    (new_run,) = [c for c in checks if c.metric == "run"]
    assert (new_run.note, new_run.reproduce) == ("not in the baseline", None)


def test_a_counted_check_records_its_ratio_and_floor():
    checks, _ = run([make(seed=1)], [make(seed=2, metrics={"peak_rss_bytes": 400 * 2**20})])
    c = by_metric(checks)[("tiny fp32 bs=1 seq=128 gpus=1", "peak_rss_bytes")]
    assert (c.baseline, c.candidate) == (380 * 2**20, 400 * 2**20)
    assert c.ratio == pytest.approx(400 / 380, rel=1e-12) and c.floor == 64 * 2**20 and c.verdict == "pass"
    assert c.kind == "counted" and c.better == "lower"


def test_pooled_runs_say_more_runs_would_decide():
    base = [make(noise=0.08, repeats=5, seed=s) for s in (1, 3)]
    cand = [make(noise=0.08, repeats=5, slowdown=1.05, seed=s) for s in (2, 4)]
    checks, _ = run(base, cand)
    notes = {c.note for c in checks if c.verdict == "inconclusive" and c.repeats_hint}
    assert notes and all(n.endswith("repeats per side in all (more runs) would likely decide") for n in notes)
    hints = [c for c in checks if c.verdict == "inconclusive" and c.repeats_hint is None and c.kind == "timed"]
    assert all(c.note == "the change is too close to the threshold for more repeats to decide" for c in hints)


LABEL = "tiny fp32 bs=1 seq=128 gpus=1"


def test_the_checks_that_are_not_metrics_are_whole_records():
    base = make(seed=1)
    key = base["key"]
    env = copy.deepcopy(ENV)
    env["cpu_model"] = "Intel Xeon"
    (c,) = run([base], [make(env=env, seed=2)])[0]
    assert (c.key, c.label, c.metric, c.kind, c.verdict) == (key, LABEL, "environment", "environment", "incomparable")
    assert c.note == "cpu_model: AMD EPYC → Intel Xeon"  # one difference: no separator
    env = copy.deepcopy(ENV)
    env["torch_threads"], env["os"] = 1, "Linux-6.2"
    m = by_metric(run([base], [make(env=env, seed=2)])[0])
    noted = m[(LABEL, "environment")]
    assert (noted.key, noted.metric, noted.kind, noted.verdict) == (key, "environment", "environment", "pass")
    assert noted.note == "noted: torch_threads: 2 → 1; os: Linux-6.1.0-x86_64-with-glibc2.36 → Linux-6.2"
    status = m[(LABEL, "status")]
    assert (status.key, status.kind, status.verdict, status.baseline, status.candidate, status.note) == (
        key, "status", "pass", "ok", "ok", "",
    )  # fmt: skip
    checks = run([base, make("batch_size=4", seed=1)], [make(seed=2), make("precision=bf16", seed=2)])[0]
    missing, new = (next(c for c in checks if c.verdict == v) for v in ("missing", "new"))
    assert (missing.metric, missing.kind, missing.key) == ("run", "run", make("batch_size=4")["key"])
    assert missing.reproduce.endswith(" sweep=gate-repro") and "batch_size=4" in missing.reproduce
    assert (new.metric, new.kind, new.key, new.label) == (
        "run",
        "run",
        make("precision=bf16")["key"],
        LABEL.replace("fp32", "bf16"),
    )


def test_a_killed_candidate_is_measured_again_not_judged():
    killed = make(status="killed", seed=2)
    killed["reason"] = "SIGTERM from outside\nsecond line"
    checks, outcome = run([make(seed=1)], [killed])
    (status,) = [c for c in checks if c.metric == "status"]
    assert (status.verdict, status.note) == (
        "inconclusive",
        "the candidate run was killed, re-run it: SIGTERM from outside",
    )
    assert outcome == ("inconclusive", 3) and len(checks) == 1  # nothing else is compared
    # a failure without a reason still names the status
    failed = make(status="error", seed=2)
    failed["reason"] = None
    (status,) = [c for c in run([make(seed=1)], [failed])[0] if c.metric == "status"]
    assert (status.verdict, status.candidate, status.note) == ("regression", "error", "")
    # a killed baseline against an ok candidate is the baseline's failure, not the candidate's
    (status,) = [c for c in run([killed], [make(seed=1)])[0] if c.metric == "status"]
    assert (status.verdict, status.note) == ("improvement", "baseline: SIGTERM from outside")


def test_a_flagged_check_names_the_command_that_reproduces_the_candidate():
    checks, _ = run([make(seed=1)], [make(slowdown=1.25, seed=2)])
    flagged = [c for c in checks if c.verdict == "regression"]
    assert flagged and all(c.reproduce == flagged[0].reproduce for c in flagged)
    assert flagged[0].reproduce.endswith(" sweep=gate-repro")
    passed = [c for c in run([make(seed=1)], [make(seed=2)])[0]]
    assert all(c.reproduce is None for c in passed)


def test_each_check_has_its_own_seeded_interval_from_the_settings():
    base, cand = make(seed=1, noise=0.05), make(seed=2, noise=0.05)
    one = by_metric(run([base], [cand])[0])
    again = by_metric(run([base], [cand])[0])
    fewer = by_metric(run([base], [cand], overrides=["resamples=200"])[0])
    narrower = by_metric(run([base], [cand], overrides=["confidence=0.5"])[0])
    reseeded = by_metric(run([base], [cand], overrides=["seed=7"])[0])
    for metric in ("decode_tok_per_s", "request_latency_s_p50"):
        c = one[(LABEL, metric)]
        assert (c.ci_low, c.ci_high) == (again[(LABEL, metric)].ci_low, again[(LABEL, metric)].ci_high)
        for other in (fewer, reseeded):
            assert (c.ci_low, c.ci_high) != (other[(LABEL, metric)].ci_low, other[(LABEL, metric)].ci_high)
        n = narrower[(LABEL, metric)]
        assert c.ci_low < n.ci_low <= n.ci_high < c.ci_high
    # two metrics with the same samples get different resamples: each check draws from its own stream
    same = make(seed=1, noise=0.05)
    for rep in same["repeats"]:
        rep["ttft_s_p50"] = rep["prefill_latency_s_p50"]
    cand2 = make(seed=2, noise=0.05)
    for rep in cand2["repeats"]:
        rep["ttft_s_p50"] = rep["prefill_latency_s_p50"]
    m = by_metric(run([same], [cand2])[0])
    a, b = m[(LABEL, "ttft_s_p50")], m[(LABEL, "prefill_latency_s_p50")]
    assert a.ratio == b.ratio and (a.ci_low, a.ci_high) != (b.ci_low, b.ci_high)
    # and two runs with the same samples too
    b4, c4 = make("batch_size=4", seed=1, noise=0.05), make("batch_size=4", seed=2, noise=0.05)
    b4["repeats"], c4["repeats"] = copy.deepcopy(base["repeats"]), copy.deepcopy(cand["repeats"])
    m = by_metric(run([base, b4], [cand, c4])[0])
    a, b = m[(LABEL, "decode_tok_per_s")], m[(LABEL.replace("bs=1", "bs=4"), "decode_tok_per_s")]
    assert a.ratio == b.ratio and (a.ci_low, a.ci_high) != (b.ci_low, b.ci_high)


def test_a_counted_figure_judged_in_its_own_direction_and_a_zero_baseline_has_no_ratio():
    grown = by_metric(run([make(seed=1)], [make(seed=2, metrics={"peak_rss_bytes": 500 * 2**20})])[0])
    c = grown[(LABEL, "peak_rss_bytes")]
    assert (c.verdict, c.better) == ("regression", "lower")  # 380 -> 500 MiB: worse, beyond 10 % and 64 MiB
    shrunk = by_metric(run([make(seed=1, metrics={"peak_rss_bytes": 500 * 2**20})], [make(seed=2)])[0])
    assert shrunk[(LABEL, "peak_rss_bytes")].verdict == "improvement"
    zero = by_metric(
        run([make(seed=1, metrics={"peak_rss_bytes": 0})], [make(seed=2, metrics={"peak_rss_bytes": 0})])[0]
    )
    z = zero[(LABEL, "peak_rss_bytes")]
    assert (z.ratio, z.verdict, z.baseline, z.candidate) == (None, "pass", 0, 0)
