"""hydra/sweeper=pareto: the sampler's wiring, on fakes of the run function (no real runs)."""

from __future__ import annotations

import json

import optuna
import pytest
from optuna.trial import TrialState

from harness import app, cli, metrics
from harness.errors import ConfigError
from harness.search import objectives, space, study

SETTINGS = {"n_trials": 6, "sampler": "tpe", "seed": 0, "n_jobs": 1}


def fake_result(overrides: list[str]) -> dict:
    """A result whose figures follow from its configuration: bigger batches are faster and hungrier;
    int8 fails the quality floor; batch_size=8 is out of memory."""
    p = dict(line.split("=", 1) for line in overrides)
    bs = int(p["batch_size"])
    key = {"workload": "inference", "model": p.get("model", "tiny"), "precision": p["precision"], "batch_size": bs}
    if bs == 8:
        return {"status": "oom", "reason": "CUDA out of memory", "key_fields": key}
    factor = {"fp32": 1.0, "bf16": 1.5, "int8": 2.0}[p["precision"]]
    verdict = "fail" if p["precision"] == "int8" else "pass"
    return {
        "status": "ok",
        "key_fields": key,
        "metrics": {"decode_tok_per_s": 10.0 * bs * factor, "peak_rss_bytes": 1e6 * bs / factor},
        "quality": {"verdict": verdict, "loss_nats": 3.0 + (factor - 1), "quality_meaningful": True},
    }


def fake_runner(calls: list):
    def run_batch(batch: list[list[str]]) -> list[dict]:
        calls.extend(batch)
        return [fake_result(o) for o in batch]

    return run_batch


SPACE = space.from_overrides(["model=tiny", "precision=fp32,bf16,int8", "batch_size=1,2,4,8"])


def test_objectives_and_directions_come_from_the_registry():
    objs = objectives.registry_objectives("inference")
    assert [(o.label, o.columns, o.sense) for o in objs] == [
        (s[0], s[1], s[2]) for s in metrics.OBJECTIVES["inference"]
    ]
    picked = objectives.registry_objectives("inference", ["peak memory", "decode_tok_per_s"])
    assert [o.label for o in picked] == ["peak memory", "decode throughput"]
    with pytest.raises(ValueError, match=r"hydra.sweeper.objectives=speed is not valid"):
        objectives.registry_objectives("inference", ["speed"])


def test_the_space_is_the_sweep_overrides():
    assert SPACE.fixed == ("model=tiny",)
    assert SPACE.axes == (("precision", ("fp32", "bf16", "int8")), ("batch_size", ("1", "2", "4", "8")))
    assert SPACE.size == 12
    assert SPACE.overrides({"precision": "bf16", "batch_size": "4"}) == ["model=tiny", "precision=bf16", "batch_size=4"]
    assert space.from_overrides(["batch_size=range(1,4)"]).axes == (("batch_size", ("1", "2", "3")),)
    with pytest.raises(ConfigError, match="workload=inference,training is not valid: cannot be a search axis"):
        space.from_overrides(["workload=inference,training"])
    with pytest.raises(ConfigError, match="an interval is not a list of runs"):
        space.from_overrides(["seq_len=interval(1,4)"])


def test_the_study_optimises_the_measured_objectives_in_their_registry_directions():
    calls: list = []
    found = study.run_search(SPACE, fake_runner(calls), SETTINGS, floor=0.99)
    # the fake measures throughput, peak memory and held-out loss (no latency, no price): those three, in order
    assert [a.column for a in found.active] == ["decode_tok_per_s", "peak_memory_bytes", "heldout_loss_nats"]
    assert found.study.directions == [
        optuna.study.StudyDirection.MAXIMIZE,
        optuna.study.StudyDirection.MINIMIZE,
        optuna.study.StudyDirection.MINIMIZE,
    ]
    assert found.launched == len(calls) == 6
    assert len({tuple(c) for c in calls}) == 6  # each configuration launched once


@pytest.mark.parametrize("ordinal", [True, False])
def test_infeasible_runs_are_failed_trials_or_violated_constraints_never_good_values(ordinal):
    found = study.run_search(SPACE, fake_runner([]), {**SETTINGS, "n_trials": 12, "ordinal": ordinal}, floor=0.99)
    assert found.launched == 12  # the whole space, each once
    _, sizes = study.encoding(("1", "2", "4", "8"), ordinal)
    for t in found.study.trials:
        bs, prec = t.params["batch_size"], t.params["precision"]
        bs = sizes[bs] if ordinal else bs  # ordinal: the sampler's integer is the position in the sorted values
        if bs == "8" or t.state != TrialState.COMPLETE:  # oom (no figures), or a repeat: no values told
            assert t.state == TrialState.FAIL and t.values is None
        else:
            assert t.system_attrs["constraints:quality"] == (1.0 if prec == "int8" else 0.0)
    assert sum(t.state == TrialState.COMPLETE for t in found.study.trials) == 9  # the 12 less the 3 oom, once each
    fronts = [t for t in found.trials if t.outcome.feasible]
    assert {t.params["precision"] for t in fronts} == {"fp32", "bf16"}
    assert all(t.outcome.values is None for t in found.trials if t.outcome.status == "oom")


def test_runs_before_the_first_ok_one_are_told_once_the_study_exists():
    def run_batch(batch):
        return [
            {"status": "unsupported", "reason": "no bf16 here"} if "precision=bf16" in o else fake_result(o)
            for o in batch
        ]

    found = study.run_search(SPACE, run_batch, {**SETTINGS, "n_trials": 5}, floor=0.99)
    assert len(found.study.trials) >= 5
    unsupported = [t for t in found.study.trials if t.params["precision"] == "bf16"]
    assert all(t.state == TrialState.FAIL for t in unsupported)


def test_a_numeric_axis_is_ordinal_to_the_sampler_and_labels_stay_categorical():
    dist, order = study.encoding(("16", "1", "4", "2", "8"), ordinal=True)
    assert isinstance(dist, optuna.distributions.IntDistribution) and (dist.low, dist.high) == (0, 4)
    assert order == ["1", "2", "4", "8", "16"]  # by value, not as given: neighbours in the integer are neighbours
    dist, order = study.encoding(("fp32", "bf16", "int8"), ordinal=True)
    assert isinstance(dist, optuna.distributions.CategoricalDistribution) and order == ["fp32", "bf16", "int8"]
    dist, _ = study.encoding(("1", "2", "4"), ordinal=False)
    assert isinstance(dist, optuna.distributions.CategoricalDistribution)
    assert isinstance(study.encoding(("64", "128"), ordinal=True)[0], optuna.distributions.CategoricalDistribution)
    # what the search launches is the configuration the sampler asked for, decoded: each configuration once
    calls: list = []
    found = study.run_search(SPACE, fake_runner(calls), {**SETTINGS, "n_trials": 12}, floor=0.99)
    assert sorted(calls) == sorted(SPACE.overrides(p) for p in SPACE.all_params())
    for t in found.trials:
        assert t.params["batch_size"] in ("1", "2", "4", "8") and t.params["precision"] in ("fp32", "bf16", "int8")


def test_a_repeat_the_sampler_asks_for_is_a_failed_trial_not_a_second_copy_of_its_values():
    calls: list = []
    found = study.run_search(SPACE, fake_runner(calls), {**SETTINGS, "n_trials": 10}, floor=0.99)
    repeats = [t for t in found.trials if t.duplicate]
    assert repeats, "a 12-configuration space searched 10 deep: the sampler asks for measured ones again"
    assert len(calls) == found.launched == 10  # a repeat is not launched
    complete = [t for t in found.study.trials if t.state == TrialState.COMPLETE]
    told = [(t.params["precision"], t.params["batch_size"]) for t in complete]
    assert len(told) == len(set(told))  # each measured configuration is among the sampler's observations once
    failed = [t for t in found.study.trials if t.state == TrialState.FAIL]
    assert len(failed) >= len(repeats)  # the repeats (and the oom runs) are failed trials: no values
    assert all(t.values is None for t in failed)


def test_each_sampler_name_is_its_optuna_sampler_and_gp_is_the_default():
    kinds = {"gp": "GPSampler", "tpe": "TPESampler", "nsga2": "NSGAIISampler", "random": "RandomSampler"}
    for name, cls in kinds.items():
        assert any(k.__name__ == cls for k in type(study.make_sampler({"sampler": name, "seed": 0}, 20)).__mro__)
    assert isinstance(study.make_sampler({"seed": 0}, 20), optuna.samplers.GPSampler)
    with pytest.raises(ValueError, match="hydra.sweeper.sampler=bo is not valid: choose one of gp, tpe"):
        study.make_sampler({"sampler": "bo"}, 20)  # no silent fall-back to TPE
    from harness.search.settings import ParetoSweeperConf

    assert ParetoSweeperConf().sampler == "gp"


@pytest.mark.parametrize("sampler", ["gp", "tpe", "nsga2", "random"])
def test_the_same_seed_gives_the_same_trials(sampler):
    a, b, c = [], [], []
    # 4 trials: 2 seeded random picks, then 2 asked of the sampler's model (a GP fit each: seconds on 2 cores)
    settings = {**SETTINGS, "sampler": sampler, "n_trials": 4}
    study.run_search(SPACE, fake_runner(a), settings, floor=0.99)
    study.run_search(SPACE, fake_runner(b), settings, floor=0.99)
    study.run_search(SPACE, fake_runner(c), {**settings, "seed": 1}, floor=0.99)
    assert a == b and a != c


def test_prevalidate_counts_the_trials_and_checks_the_settings(tmp_path):
    app.register()
    args = ["-m", "hydra/sweeper=pareto", "precision=fp32,bf16", "batch_size=1,2,4", f"results_dir={tmp_path}"]
    assert cli.prevalidate([*args, "hydra.sweeper.n_trials=4"]) == 4
    assert cli.prevalidate([*args, "hydra.sweeper.n_trials=40"]) == 6  # at most the space
    bad = "hydra.sweeper.sampler=grid is not valid: choose one of gp, tpe, nsga2, random"
    with pytest.raises(ConfigError, match=bad):
        cli.prevalidate([*args, "hydra.sweeper.sampler=grid"])
    with pytest.raises(ConfigError, match="hydra.sweeper.n_trials=0 is not valid"):
        cli.prevalidate([*args, "hydra.sweeper.n_trials=0"])
    with pytest.raises(ConfigError, match="cannot be a search axis"):
        cli.prevalidate([*args, "workload=inference,training"])


@pytest.mark.e2e
def test_a_search_through_the_cli_writes_normal_results_and_the_report(harness, tmp_path):
    args = ["-m", "hydra/sweeper=pareto", "model=tiny", "precision=fp32,bf16", "batch_size=1,2"]
    proc, root = harness(*args, "hydra.sweeper.n_trials=2", "sweep=s")
    assert proc.returncode == 0, proc.stderr[-3000:]
    found = sorted(root.glob("s/*/result.json"))
    assert len(found) == 2  # two distinct configurations of the four, each a normal run
    assert (tmp_path / "reports" / "s" / "index.html").is_file()
    record = json.loads((root / "s" / "search.json").read_text())
    assert record["launched"] == 2 and record["settings"]["sampler"] == "gp"  # the default
    assert "search: 2 runs of 4 configurations" in proc.stdout
    # the same command again resumes: every run is re-read, none measured again
    again, _ = harness(*args, "hydra.sweeper.n_trials=2", "sweep=s")
    assert again.returncode == 0, again.stderr[-3000:]
    assert again.stdout.count("already complete, skipped") == 2
