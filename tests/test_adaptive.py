"""repeats=auto (harness.adaptive): the stopping rule on scripted samples, its wiring into the inference loop,
its validation, and the record it leaves in the result."""

from types import SimpleNamespace

import pytest
import torch

from harness import adaptive, scenarios
from harness.config import HarnessConfig, InferenceWorkload, ModelConfig, PrecisionConfig
from harness.errors import ConfigError
from harness.report.aggregate import flatten_result
from harness.scenarios import inference
from harness.validation import validate
from tests.conftest import run_cli

# with two outliers and n - 2 values of 100, the bootstrap median leaves 100 with probability
# P(more than half the draws are the low outlier): 6 % at n = 6 (> 2.5 %: the interval reaches 95 and 105,
# ±5 %), 1 % at n = 7 (< 2.5 %: the interval is [100, 100]). So it reaches ±2 % at exactly the 7th repeat.
REACHES_AT_7 = [90.0, 110.0, 100.0, 100.0, 100.0, 100.0, 100.0, 100.0, 100.0, 100.0]
NEVER = [80.0, 120.0] * 20  # the median of a resample swings between 80 and 120: never within ±2 %
RULE = adaptive.Rule(target=0.02, min_repeats=adaptive.MIN_REPEATS, max_repeats=30, max_s=1e9)


def test_half_width_by_hand():
    assert adaptive.half_width([90.0, 110.0, 100.0]) == pytest.approx(0.1)  # interval [90, 110] around 100
    assert adaptive.half_width([90.0, 110.0, 100, 100, 100, 100]) == pytest.approx(0.05)  # [95, 105]
    assert adaptive.half_width([100.0, 100.0, 100.0]) == 0.0
    assert adaptive.half_width([100.0]) is None and adaptive.half_width([None, 5.0]) is None


def _scripted(values, rule, step_s=0.0):
    """run_repeats over `values` as the repeats' figure, on a clock that advances `step_s` per repeat."""
    now, it = [0.0], iter(values)

    def one():
        now[0] += step_s
        return {"decode_tok_per_s": next(it)}

    return adaptive.run_repeats(one, adaptive.AUTO, rule, "decode_tok_per_s", clock=lambda: now[0])


def test_a_sequence_that_reaches_the_target_at_repeat_7_stops_at_7():
    reps, record = _scripted(REACHES_AT_7, RULE)
    assert len(reps) == 7 and record["repeats"] == 7
    assert record["reason"] == "target reached" and record["half_width"] == 0.0
    assert record["metric"] == "decode_tok_per_s" and record["target"] == 0.02


def test_the_minimum_is_measured_even_when_the_target_is_reached_earlier():
    flat = [100.0] * 10  # within ±2 % from the 2nd repeat on
    assert len(_scripted(flat, RULE)[0]) == 6
    reps, record = _scripted(REACHES_AT_7, adaptive.Rule(0.02, 9, 30, 1e9))
    assert len(reps) == 9 and record["reason"] == "target reached"


def test_a_sequence_that_never_reaches_it_stops_at_the_caps_with_their_reason():
    reps, record = _scripted(NEVER, adaptive.Rule(0.02, 3, 12, 1e9))
    assert len(reps) == 12 and record["reason"] == "max repeats" and record["half_width"] > 0.02
    # 1 s per repeat, a 4.5 s cap: the 5th repeat ends at 5 s, past the cap, so no 6th starts
    reps, record = _scripted(NEVER, adaptive.Rule(0.02, 3, 30, 4.5), step_s=1.0)
    assert len(reps) == 5 and record["reason"] == "time cap" and record["elapsed_s"] == 5.0
    # the minimum beats the time cap: a bootstrap needs its samples
    reps, record = _scripted(NEVER, adaptive.Rule(0.02, 4, 30, 0.5), step_s=1.0)
    assert len(reps) == 4 and record["reason"] == "time cap"


def test_an_integer_count_runs_exactly_that_many_and_records_nothing():
    calls = []
    reps, record = adaptive.run_repeats(lambda: calls.append(1) or {}, 5, None, "decode_tok_per_s")
    assert len(reps) == len(calls) == 5 and record is None
    assert adaptive.rule_from({"repeats": 5}) is None


class _ScriptedTimer:
    """A clock that moves only when the stand-in model says a step took so long."""

    method = "scripted"

    def __init__(self):
        self.t = 0.0

    def mark(self):
        return self.t

    def sync(self):
        pass

    def elapsed_s(self, a, b):
        return b - a


def test_the_inference_loop_stops_where_the_rule_says():
    # a stand-in model: each request takes the next scripted rate; each of its decode steps 1 / rate seconds
    rates, timer, now = iter(REACHES_AT_7), _ScriptedTimer(), {}
    logits = torch.zeros(1, 1, 8)

    def forward(ids, cache=None):
        if cache is None:
            now["rate"] = next(rates)
        timer.t += 0.001 if cache is None else 1.0 / now["rate"]
        return SimpleNamespace(logits=logits, cache=object())

    # one request per repeat (min_iters 1, no min time): each repeat's decode tok/s is its scripted rate
    policy = inference.Policy(0, 1, 0.0, 1, adaptive.AUTO, RULE, "decode_tok_per_s")
    out = inference.run(forward, torch.zeros(1, 4, dtype=torch.long), 3, policy, timer)
    got = [r["decode_tok_per_s"] for r in out["repeats"]]
    assert got == pytest.approx(REACHES_AT_7[:7])
    assert out["adaptive_repeats"]["repeats"] == 7 and out["adaptive_repeats"]["reason"] == "target reached"
    fixed = inference.run(forward, torch.zeros(1, 4, dtype=torch.long), 3, policy.__class__(0, 1, 0.0, 1, 2), timer)
    assert len(fixed["repeats"]) == 2 and fixed["adaptive_repeats"] is None


def _cfg(workload="inference", **top):
    cfg = HarnessConfig(model=ModelConfig(name="t"), precision=PrecisionConfig(name="fp32"), sweep="s")
    # the workload's own schema, as conf/workload/<name>.yaml composes it (a plugin's: over inference's node)
    schema = scenarios.spec(workload, strict=False).schema or InferenceWorkload
    cfg.workload = schema(name=workload)
    for k, v in top.items():
        setattr(cfg, k, v)
    return cfg


@pytest.mark.parametrize(
    "key, accepted, refused, rule",
    [
        ("repeats_target", 1e-6, 0.0, "must be between 0 and 1 (0.02 is ±2 %)"),
        ("repeats_target", 0.999, 1.0, "must be between 0 and 1 (0.02 is ±2 %)"),
        ("repeats_min", 6, 5, "must be >= 6"),
        ("repeats_max", 6, 5, "must be >= 6"),  # repeats_min is 6
        ("repeats_max_s", 0.001, 0.0, "must be > 0"),
        ("repeats", 1, 0, "must be >= 1"),
        ("repeats", "auto", "foo", "must be an integer >= 1 or auto"),
        ("repeats", 2, 2.5, "must be an integer >= 1 or auto"),
        ("repeats", 2, True, "must be an integer >= 1 or auto"),
    ],
)
def test_validation_at_the_edges(key, accepted, refused, rule):
    validate(_cfg(**({"repeats": "auto"} | {key: accepted})))
    with pytest.raises(ConfigError) as err:
        validate(_cfg(**({"repeats": "auto"} | {key: refused})))
    assert str(err.value) == f"{key}={refused} is not valid: {rule}"


def test_auto_is_refused_where_repeats_are_not_independent_windows():
    refused = {s.name: s.repeats_refused for s in scenarios.all_specs() if s.repeats_refused}
    assert set(refused) == {"training", "serving"}
    for name, why in refused.items():
        with pytest.raises(ConfigError) as err:
            validate(_cfg(name, repeats="auto"))
        assert str(err.value).startswith(f"repeats=auto is not valid: {why}; choose an integer >= 1")
        validate(_cfg(name, repeats=4))  # an integer is fine
    # the reasons agree with the scenarios' own figures, and the worker's classes answer as their Specs
    config = {"workload": {"decode_tokens": 32}}
    for name in ("inference", "training", "serving"):
        assert (scenarios.get(name).repeats_figure(config) is None) == (name in refused)
        assert scenarios.get(name).repeats_figure(config) == scenarios.spec(name).repeats_figure(config)
    assert scenarios.get("inference").repeats_figure({"workload": {"decode_tokens": 0}}) == "e2e_tok_per_s"


def test_plugin_scenario_without_a_figure_is_refused(monkeypatch):
    monkeypatch.setenv("HARNESS_PLUGINS", "harness_test_scenarios")
    monkeypatch.syspath_prepend(str(__import__("pathlib").Path(__file__).parent / "plugins"))
    with pytest.raises(ConfigError) as err:
        validate(_cfg("prefill_only", repeats="auto"))
    assert "workload=prefill_only declares no figure to watch" in str(err.value)


@pytest.mark.parametrize(
    "args, expected",
    [
        (["repeats=foo"], "repeats=foo is not valid: must be an integer >= 1 or auto"),
        (["repeats=0"], "repeats=0 is not valid: must be >= 1"),
        (["repeats=auto", "repeats_target=1"], "repeats_target=1.0 is not valid: must be between 0 and 1"),
        (["repeats_target=0.05"], "repeats_target=0.05 is not valid: is used only with repeats=auto"),
        (["repeats=auto", "workload=training"], "repeats=auto is not valid: training times its whole step budget"),
    ],
)
def test_bad_repeats_on_the_command_line_is_one_line_and_exit_2(tmp_path, args, expected):
    proc = run_cli(*args, cwd=tmp_path)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0]


def test_the_report_row_carries_how_it_stopped():
    from harness import results
    from tests.synthetic import ENV, config

    stopped = {"metric": "decode_tok_per_s", "repeats": 7, "half_width": 0.01, "reason": "target reached"}
    metrics = {"decode_tok_per_s": 100.0}
    record = results.make_result(config(repeats="auto"), "ok", None, ENV, metrics=metrics, adaptive_repeats=stopped)
    row = flatten_result(record, "s")
    assert row["adaptive_repeats_repeats"] == 7 and row["adaptive_repeats_reason"] == "target reached"
    assert row["adaptive_repeats_half_width"] == 0.01


def test_a_fixed_count_hashes_as_before_the_rule_existed():
    from harness import results
    from tests.synthetic import config

    cfg = config(repeats=3)
    before = {k: v for k, v in cfg.items() if k not in adaptive.KEYS}  # a config from before repeats=auto
    assert results.config_hash(cfg | {"repeats_target": 0.05}) == results.config_hash(before)
    auto = cfg | {"repeats": "auto", "repeats_target": 0.02}
    assert results.config_hash(auto) != results.config_hash(auto | {"repeats_target": 0.05})


def test_shortfall_says_how_a_run_fell_short_and_nothing_when_it_did_not():
    _, short = _scripted(NEVER, adaptive.Rule(0.02, 6, 12, 1e9))
    assert (
        adaptive.shortfall(short) == f"max repeats after 12 repeats: ±{100 * short['half_width']:.1f} % (target ±2 %)"
    )
    _, reached = _scripted(REACHES_AT_7, RULE)
    assert adaptive.shortfall(reached) is None and adaptive.shortfall(None) is None
    as_read = {"reason": "time cap", "repeats": 9.0, "half_width": None, "target": 0.05}  # a report frame's floats
    assert adaptive.shortfall(as_read) == "time cap after 9 repeats: no interval (target ±5 %)"
