"""Known answers: the report's recommendation across model sizes, interval ties, what is never recommended,
the cross-model front of the hero chart, and sweeps overlaid. Result files come from the real writers
(harness.results.make_result, harness.cost, harness.energy, harness.interference) with made-up figures."""

from __future__ import annotations

import json
import re

import pytest
from synthetic import disturb, held_out, priced, result, write

from harness.report import aggregate, answer, build
from harness.report.build import annotate

USD_PER_1M = 2.5 / 3600 * 1e6  # priced(): 2.5 USD/h, so USD/1M tok = USD_PER_1M / tok_s


def run(model: str, precision: str, loss: float, tok_s: float, verdict: str = "pass", **over):
    """An ok, priced inference run with held-out quality loss ± 0.05 nats."""
    c, e = priced(tok_s, joules=tok_s / 100)
    return result(precision, tok_s=tok_s, quality=held_out(loss, 0.3, 1.0, 0.005, verdict), cost=c, energy=e,
                  model__name=model, **over)  # fmt: skip


@pytest.fixture
def sweep(tmp_path):
    """tiny is cheap and worse; the three small runs tie on quality; the cheapest runs may not be recommended."""
    records = [
        run("tiny", "fp32", 3.12, 500.0),
        run("tiny", "bf16", 3.121, 400.0),  # dominated by tiny fp32
        run("small", "fp32", 2.932, 150.0),  # dominated by small bf16
        run("small", "bf16", 2.931, 200.0),
        run("small", "int8", 2.9298, 100.0),  # the lowest loss, by far less than the interval
        disturb(run("small", "bf16", 2.93, 1000.0, batch_size=4)),  # cheapest of all, but measured beside load
        run("tiny", "int8", 3.5, 2000.0, verdict="fail"),  # below the floor
        result("fp32", status="oom", reason="memory_limit_bytes exceeded", model__name="small", batch_size=64),
    ]
    return write(tmp_path / "results", "prec", records)


def _answer(sweep_dir) -> answer.Answer:
    frame = annotate(aggregate.load_frame([sweep_dir]), 0.99)
    return answer.answer(frame, "inference")


def test_overlapping_intervals_are_a_tie_and_the_cheapest_of_them_is_recommended(sweep):
    a = _answer(sweep)
    name = answer.config_label
    assert sorted(name(a.rows.loc[i]) for i in a.tied) == [
        "small bf16 bs=1 seq=128 gpus=1",
        "small fp32 bs=1 seq=128 gpus=1",
        "small int8 bs=1 seq=128 gpus=1",
    ]
    assert name(a.rows.loc[a.pick["cost"]]) == "small bf16 bs=1 seq=128 gpus=1"
    assert a.rows.loc[a.pick["cost"], "cost_usd_per_1m_tokens_generated"] == pytest.approx(USD_PER_1M / 200)
    text = " ".join(answer.sentences(a))
    assert "3 configurations tie for the best held-out loss (nats) (their intervals overlap)" in text
    assert "<b>Best quality per dollar: small bf16 bs=1 seq=128 gpus=1</b>" in text
    assert "held-out loss (nats) 2.931 [2.881, 2.981]" in text and "3.47 USD/1M tok" in text
    # the trade down the front, and the noise-level "best" named as a tie, not a win
    assert "The next cheaper point, tiny fp32 bs=1 seq=128 gpus=1, is 2.5× cheaper for +0.189" in text
    assert "small int8 bs=1 seq=128 gpus=1 has the best held-out loss (nats) by 0.0012" in text
    assert "a tie, not a win" in text and "at 2× the cost" in text
    assert "Reproduce: <code>python -m harness model=small precision=bf16 batch_size=1 seq_len=128" in text


def test_disturbed_failed_and_below_floor_runs_are_never_recommended_and_said_so(sweep):
    a = _answer(sweep)
    picked = {answer.config_label(a.rows.loc[i]) for i in a.pick.values()}
    assert not any("bs=4" in p or "int8" in p and "tiny" in p or "bs=64" in p for p in picked)
    text = " ".join(answer.sentences(a))
    assert "Not recommended: 1 below the quality floor (tiny int8 bs=1" in text
    assert "1 disturbed (measured beside other load) (small bf16 bs=4" in text and "1 oom (small fp32 bs=64" in text


def test_a_clear_winner_is_named_without_a_tie(tmp_path):
    records = [run("tiny", "fp32", 3.12, 500.0), run("small", "bf16", 2.93, 200.0)]
    a = _answer(write(tmp_path / "results", "clear", records))
    text = " ".join(answer.sentences(a))
    assert "tie" not in text and "<b>Best quality per dollar: small bf16" in text
    assert "tiny fp32 bs=1 seq=128 gpus=1, is 2.5× cheaper for +0.19 nats" in text


def test_without_a_price_the_answer_says_so_even_when_every_run_was_disturbed(tmp_path):
    unpriced = [result("fp32", tok_s=100.0, quality=held_out(3.1, 0.3, 1.0, 0.005, "pass"))]
    text = " ".join(answer.sentences(_answer(write(tmp_path / "results", "quiet", unpriced))))
    assert "no price for this hardware): no per-dollar answer" in text
    loaded = [disturb(r) for r in unpriced]  # a machine not in the catalog, and busy: both are said
    text = " ".join(answer.sentences(_answer(write(tmp_path / "results", "busy", loaded))))
    assert "No run can be recommended" in text and "no per-dollar answer" in text


def test_random_weights_are_ranked_on_cost_and_speed_only(tmp_path):
    q = {**held_out(10.4, 0.0, 1.0, 0.0, "pass"), "quality_meaningful": False, "verdict": None, "weights": "random"}
    records = [
        result("fp32", tok_s=100.0, quality=q, cost=priced(100.0)[0]),
        result("bf16", tok_s=300.0, quality=q, cost=priced(300.0)[0]),
    ]
    text = " ".join(answer.sentences(_answer(write(tmp_path / "results", "random", records))))
    assert "Quality not measured or not meaningful here (random weights" in text
    assert "<b>Cheapest: tiny bf16 bs=1 seq=128 gpus=1</b>" in text and "best quality per dollar" not in text.lower()


def _plotly_data(html: str) -> dict[str, tuple[list, dict]]:
    """Each chart as plotly got it: div id → (traces, layout)."""
    out, decoder = {}, json.JSONDecoder()
    for m in re.finditer(r'Plotly\.newPlot\(\s*"([^"]+)",\s*', html):
        data, end = decoder.raw_decode(html, m.end())
        layout, _ = decoder.raw_decode(html, re.compile(r",\s*").match(html, end).end())
        out[m.group(1)] = (data, layout)
    return out


def test_the_hero_chart_has_every_model_on_one_chart_and_the_cross_model_front(sweep, tmp_path):
    html = build([sweep], out_dir=tmp_path / "r").read_text()
    charts = _plotly_data(html)
    assert list(charts) == ["w-inference-0", "w-inference-1", "w-inference-2"]  # vs cost, throughput, memory
    hero, layout = charts["w-inference-0"]
    points = [t for t in hero if t["mode"] == "markers"]
    assert {t["name"] for t in points} == {f"{m} · {p}" for m in ("tiny", "small") for p in ("fp32", "bf16", "int8")}
    assert sum(len(t["x"]) for t in points) == 7  # every ok run; the oom run has no figures
    (front,) = [t for t in hero if t["mode"] == "lines"]
    costs = [USD_PER_1M / s for s in (500.0, 200.0, 100.0)]  # tiny fp32 → small bf16 → small int8
    assert front["x"] == pytest.approx(costs) and front["y"] == pytest.approx([3.12, 2.931, 2.9298])
    bars = {
        round(y, 4): (up, down)
        for t in points
        for y, up, down in zip(t["y"], t["error_y"]["array"], t["error_y"]["arrayminus"], strict=True)
    }
    assert bars[2.931] == pytest.approx((0.05, 0.05))  # the interval as error bars
    # the axis spans the intervals: a 0.0012 difference cannot fill the chart
    lo, hi = layout["yaxis"]["range"]
    assert lo < 2.8798 and hi > 3.55


def test_sweeps_overlay_on_the_same_charts_labelled_by_sweep(tmp_path):
    a = write(tmp_path / "results", "h100", [run("tiny", "fp32", 3.12, 500.0), run("small", "bf16", 2.93, 200.0)])
    b = write(tmp_path / "results", "h200", [run("tiny", "fp32", 3.12, 900.0), run("small", "bf16", 2.93, 400.0)])
    html = build([a, b], out_dir=tmp_path / "r").read_text()
    hero, _ = _plotly_data(html)["w-inference-0"]
    names = {t["name"] for t in hero}
    assert {"tiny · fp32 · h100", "small · bf16 · h200", "Pareto front · h100", "Pareto front · h200"} <= names
    symbols = {t["name"]: t["marker"]["symbol"] for t in hero if t["mode"] == "markers"}
    assert symbols["tiny · fp32 · h200"] == symbols["tiny · fp32 · h100"] + "-open"  # same model, other sweep
    assert "<b>sweep h100.</b>" in html and "<b>sweep h200.</b>" in html  # one answer per sweep


def _training(model: str, loss: float, half_width: float, usd: float) -> dict:
    """An ok training run: final eval loss with its interval (eval_loss_lo / _hi), priced."""
    rec = result("bf16", agreement=None, model__name=model, workload__name="training")
    rec["metrics"] = {
        "eval_loss": loss,
        "eval_loss_lo": loss - half_width,
        "eval_loss_hi": loss + half_width,
        "eval_loss_n": 32,
        "train_tok_per_s": 1000.0 / usd,
        "peak_rss_bytes": 100 * 2**20,
    }
    rec["cost"] = {"training_usd": usd}
    return rec


def test_training_runs_whose_eval_intervals_overlap_tie(tmp_path):
    records = [_training("small", 2.50, 0.05, usd=2.0), _training("tiny", 2.52, 0.05, usd=0.5)]
    records.append(_training("base", 2.20, 0.02, usd=9.0))  # clearly better, and dearer
    frame = annotate(aggregate.load_frame([write(tmp_path / "results", "t", records)]), 0.99)
    a = answer.answer(frame, "training")
    assert sorted(a.rows.loc[i, "model"] for i in a.tied) == ["base"]  # base's interval is clear of the others
    records = records[:2]  # without base: small and tiny overlap, a tie, and the cheaper one is recommended
    frame = annotate(aggregate.load_frame([write(tmp_path / "results2", "t", records)]), 0.99)
    a = answer.answer(frame, "training")
    assert sorted(a.rows.loc[i, "model"] for i in a.tied) == ["small", "tiny"]
    assert a.rows.loc[a.pick["cost"], "model"] == "tiny"
    assert "2 configurations tie for the best" in " ".join(answer.sentences(a))


def _classifier(model: str, acc: float, half: float, usd: float, workload: str = "classification") -> dict:
    """An ok classification run: held-out accuracy / macro-F1 with intervals (harness.taskmetrics fields), priced."""
    rec = result("fp32", agreement=None, model__name=model, workload__name=workload)
    rec["metrics"] = {"eval_accuracy": acc, "train_tok_per_s": 1000.0 / usd, "peak_rss_bytes": 100 * 2**20}
    rec["quality"] = {"task": "classification", "n": 250, "accuracy": acc, "accuracy_lo": acc - half,
                      "accuracy_hi": acc + half, "macro_f1": acc - 0.1, "macro_f1_lo": acc - 0.1 - half,
                      "macro_f1_hi": acc - 0.1 + half, "majority_class_accuracy": 0.27}  # fmt: skip
    rec["cost"] = {"training_usd": usd}
    return rec


def test_classification_answers_on_accuracy_with_its_interval_and_shows_it_in_the_quality_table(tmp_path):
    records = [_classifier("small", 0.62, 0.05, usd=2.0), _classifier("tiny", 0.60, 0.05, usd=0.5)]
    records.append(_classifier("base", 0.25, 0.04, usd=0.1))  # cheapest, clearly worse: not tied
    sweep_dir = write(tmp_path / "results", "c", records)
    a = answer.answer(annotate(aggregate.load_frame([sweep_dir]), 0.99), "classification")
    assert sorted(a.rows.loc[i, "model"] for i in a.tied) == ["small", "tiny"]  # higher is better, overlap ties
    assert a.rows.loc[a.pick["cost"], "model"] == "tiny"
    text = " ".join(answer.sentences(a))
    assert "<b>Best quality per dollar: tiny fp32" in text and "accuracy 0.6 [0.55, 0.65]" in text
    assert "0.5 USD (training USD)" in text and "is 5× cheaper for -0.35 ratio" in text
    html = build([sweep_dir], out_dir=tmp_path / "r").read_text()
    hero, _ = _plotly_data(html)["w-classification-0"]
    (front,) = [t for t in hero if t["mode"] == "lines"]
    assert front["x"] == pytest.approx([0.1, 0.5, 2.0]) and front["y"] == pytest.approx([0.25, 0.60, 0.62])
    assert "0.6 (n=250 examples)" in html and "[0.45, 0.55]" in html  # tiny's macro-F1 and its interval
    assert "above the majority class" in html and "not above the majority class" in html  # base: 0.21 < 0.27


def test_a_distill_run_is_answered_like_a_classifier(tmp_path):
    records = [_classifier("tiny", 0.55, 0.05, usd=0.4, workload="distill")]
    records[0]["quality"]["distill_verdict"] = "distilled better than alone: +0.05 [0.01, 0.09]"
    sweep_dir = write(tmp_path / "results", "d", records)
    a = answer.answer(annotate(aggregate.load_frame([sweep_dir]), 0.99), "distill")
    assert a.rows.loc[a.pick["cost"], "model"] == "tiny" and a.quality_known
    html = build([sweep_dir], out_dir=tmp_path / "r").read_text()
    assert "above the majority class; distilled better than alone: +0.05 [0.01, 0.09]" in html
