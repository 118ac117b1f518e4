"""The search loop: ask Optuna for a configuration, run it (a normal run, through whatever runs a batch),
tell Optuna what it measured. Infeasible runs are never good values: a run without figures (failed, oom,
predicted-oom, unsupported, timeout, error) is TrialState.FAIL, since any value told would be invented; a
measured run below the quality floor (verdict `fail`) is told its values with a violated constraint, so the
sampler ranks it behind every feasible run (constrained domination, Deb et al. 2002) and still learns from it."""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from harness.search import objectives as objectives_mod
from harness.search.objectives import Active, Outcome
from harness.search.settings import SAMPLERS
from harness.search.space import Space

RunBatch = Callable[[list[list[str]]], list[Mapping[str, Any]]]  # override lines per run -> their results
CONSTRAINT = "quality"  # Optuna's trial constraint: 1.0 when the quality verdict is `fail` (feasible when <= 0)
# A repeat the sampler asks for is a failed trial, not told the earlier values again: told, each repeat is one more
# copy of a known configuration among the sampler's observations (TPE's "good" set fills with copies of the front
# it has, NSGA-II's population too) and the search narrows on what it knows. In the tabular replay of
# benchmarks/search_hypervolume.py telling repeats cost TPE's worst seed 0.77 of the grid's hypervolume (0.93 failed).
TELL_REPEATS = False
MAX_DUPLICATES = 20  # asks in a row that only repeat measured configurations before one is picked at random


@dataclass
class Trial:
    params: dict[str, str]
    outcome: Outcome
    duplicate: bool = False  # told from an earlier run of the same configuration, not launched


@dataclass
class Search:
    """What a search did: every trial in order, the objectives it optimised, the runs it launched."""

    trials: list[Trial] = field(default_factory=list)
    active: list[Active] = field(default_factory=list)
    launched: int = 0
    workload: str = ""
    study: Any = None  # the optuna.Study (None while no run was ok)


def make_sampler(settings: Mapping[str, Any], budget: int) -> Any:
    """The seeded Optuna sampler `settings` names (gp, tpe and nsga2 honour trial constraints: Trial.set_constraint)."""
    import optuna

    seed, name = int(settings.get("seed") or 0), settings.get("sampler", "gp")
    if name not in SAMPLERS:  # never a silent fall-back to another sampler (the benchmark calls this directly)
        raise ValueError(f"hydra.sweeper.sampler={name} is not valid: choose one of {', '.join(SAMPLERS)}")
    if name == "nsga2":
        pop = settings.get("population_size") or max(4, budget // 4)
        return optuna.samplers.NSGAIISampler(population_size=int(pop), seed=seed)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    startup = settings.get("n_startup_trials") or max(2, budget // 3)
    if name == "gp":
        try:
            import scipy  # noqa: F401  (GPSampler fits its kernels with scipy's L-BFGS-B)
        except ImportError as exc:
            raise ImportError("hydra.sweeper.sampler=gp needs scipy: pip install 'harness[search]'") from exc
        # the objectives are measured, so noisy: deterministic_objective stays False (a noise term is fitted)
        return _one_thread_gp(optuna)(n_startup_trials=int(startup), seed=seed)
    return optuna.samplers.TPESampler(n_startup_trials=int(startup), multivariate=True, seed=seed)


def _one_thread_gp(optuna: Any) -> type:
    """Optuna's GPSampler, fitting and optimising on one torch thread: its matrices are a few dozen trials wide,
    where more threads only add overhead (a 4-trial search took 1.7 s on one thread, 4.1 s on two, on a loaded
    2-core machine). The thread count is put back after each call: the sweeper's process runs no model, but it
    should not leave a setting behind for whatever shares it."""

    class OneThreadGP(optuna.samplers.GPSampler):
        def sample_relative(self, study: Any, trial: Any, search_space: Any) -> Any:
            import torch

            before = torch.get_num_threads()
            torch.set_num_threads(1)
            try:
                return super().sample_relative(study, trial, search_space)
            finally:
                torch.set_num_threads(before)

    return OneThreadGP


def _import_optuna() -> Any:
    try:
        import optuna
    except ImportError as exc:  # the `search` extra
        raise ImportError("hydra/sweeper=pareto needs Optuna: pip install 'harness[search]'") from exc
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


def _numbers(values: tuple[str, ...]) -> list[float] | None:
    try:
        return [float(v) for v in values]
    except ValueError:
        return None


def encoding(values: tuple[str, ...], ordinal: bool) -> tuple[Any, list[str]]:
    """An axis as the sampler sees it, and its values in the order of that encoding. A numeric axis (batch size,
    seq_len, threads) is ordinal when `ordinal`: an integer over the positions of its values sorted by value, so
    the sampler's model treats batch 8 as between 4 and 16 (TPE's and the GP's kernels over an integer; a
    categorical is a set of unrelated labels to both); any other axis is categorical."""
    import optuna

    nums = _numbers(values)
    if ordinal and nums is not None and len(values) > 2:
        order = [v for _, v in sorted(zip(nums, values, strict=True))]
        return optuna.distributions.IntDistribution(0, len(order) - 1), order
    return optuna.distributions.CategoricalDistribution(list(values)), list(values)


class _Study:
    """The Optuna study, made once the first ok run says which objectives have values (report.pareto.resolve)."""

    def __init__(self, space: Space, settings: Mapping[str, Any], budget: int, active: list[Active]) -> None:
        optuna = _import_optuna()
        self.space = space
        ordinal = bool(settings.get("ordinal", True))
        self.codes = {k: encoding(v, ordinal) for k, v in space.axes}
        self.dists = {k: dist for k, (dist, _) in self.codes.items()}
        self.study = optuna.create_study(
            directions=[a.direction for a in active], sampler=make_sampler(settings, budget)
        )

    def ask(self) -> Any:
        return self.study.ask(self.dists)

    def params(self, trial: Any) -> dict[str, str]:
        """The trial's configuration as override strings."""
        out = {}
        for k, (dist, order) in self.codes.items():
            v = trial.params[k]
            out[k] = order[int(v)] if isinstance(dist, _int_distribution()) else str(v)
        return out

    def enqueue(self, params: Mapping[str, str]) -> None:
        """Have the next ask() return this configuration."""
        coded = {}
        for k, (dist, order) in self.codes.items():
            coded[k] = order.index(str(params[k])) if isinstance(dist, _int_distribution()) else params[k]
        self.study.enqueue_trial(coded)

    def tell(self, trial: Any, out: Outcome) -> None:
        from optuna.trial import TrialState

        trial.set_user_attr("status", out.status)
        if out.values is None:
            self.study.tell(trial, state=TrialState.FAIL)
        else:
            trial.set_constraint(CONSTRAINT, 0.0 if out.quality_ok else 1.0)  # Optuna >= 5 (constraints_func before)
            self.study.tell(trial, list(out.values))

    def replay(self, params: Mapping[str, str], out: Outcome) -> None:
        """Tell the study a run made before it existed."""
        self.enqueue(params)
        self.tell(self.ask(), out)


def _workload(result: Mapping[str, Any]) -> str:
    return str((result.get("key_fields") or {}).get("workload") or (result.get("config") or {}).get("workload", {}))


def run_search(space: Space, run_batch: RunBatch, settings: Mapping[str, Any], floor: float) -> Search:
    """Launch at most hydra.sweeper.n_trials distinct configurations of `space`, chosen by the sampler."""
    budget = min(int(settings.get("n_trials", 20)), space.size)
    n_jobs = max(1, int(settings.get("n_jobs") or 1))
    rng = random.Random(int(settings.get("seed") or 0))
    search, measured, study = Search(), {}, None
    chosen_objs = settings.get("objectives")
    while search.launched < budget:
        if study is None:  # before the objectives are known: seeded random picks
            todo = [p for p in space.all_params() if space.key(p) not in measured]
            batch = [(None, p) for p in rng.sample(todo, min(n_jobs, budget - search.launched))]
        else:
            batch = _ask_new(study, space, measured, search, rng, min(n_jobs, budget - search.launched))
        results = run_batch([space.overrides(p) for _, p in batch])
        search.launched += len(batch)
        for (trial, params), result in zip(batch, results, strict=True):
            if study is None and result.get("status") == "ok" and not search.active:
                search.workload = _workload(result)
                objs = objectives_mod.registry_objectives(search.workload, chosen_objs)
                search.active = objectives_mod.activate(objs, objectives_mod.row(result, floor))
            out = objectives_mod.outcome(result, search.active, floor)
            measured[space.key(params)] = out
            search.trials.append(Trial(dict(params), out))
            if trial is not None:
                study.tell(trial, out)
        if study is None and search.active:
            study = _Study(space, settings, budget, search.active)
            search.study = study.study
            for t in search.trials:
                study.replay(t.params, t.outcome)
    return search


def _ask_new(
    study: _Study, space: Space, measured: dict, search: Search, rng: random.Random, n: int
) -> list[tuple[Any, dict[str, str]]]:
    """`n` trials of configurations not yet measured; repeats of measured ones are told their earlier outcome."""
    batch: list[tuple[Any, dict[str, str]]] = []
    repeats = 0
    while len(batch) < n:
        trial = study.ask()
        params = study.params(trial)
        key = space.key(params)
        if key in measured:
            if TELL_REPEATS:
                study.tell(trial, measured[key])
            else:
                study.study.tell(trial, state=_fail_state())
            search.trials.append(Trial(params, measured[key], duplicate=True))
            repeats += 1
            if repeats >= MAX_DUPLICATES:  # the sampler is stuck on what it knows: a fresh configuration
                taken = set(measured) | {space.key(p) for _, p in batch}
                todo = [p for p in space.all_params() if space.key(p) not in taken]
                study.enqueue(rng.choice(todo))
                repeats = 0
        elif any(space.key(p) == key for _, p in batch):
            study.study.tell(trial, state=_fail_state())  # the same configuration twice in one batch
            repeats += 1
        else:
            batch.append((trial, params))
    return batch


def _int_distribution() -> type:
    import optuna

    return optuna.distributions.IntDistribution


def _fail_state() -> Any:
    from optuna.trial import TrialState

    return TrialState.FAIL


def summary_lines(search: Search, sampler: str, seed: int, size: int) -> list[str]:
    """The search's closing lines: what it launched, and its feasible front."""
    from harness.report.pareto import pareto_mask

    objs = ", ".join(f"{a.objective.label} ({a.objective.sense})" for a in search.active) or "none (no ok run)"
    lines = [f"search: {search.launched} runs of {size} configurations ({sampler}, seed {seed}); objectives: {objs}"]
    feasible = [t for t in search.trials if not t.duplicate and t.outcome.feasible]
    if feasible:
        mask = pareto_mask([t.outcome.values for t in feasible], [a.objective.sense for a in search.active])
        front = [" ".join(f"{k}={v}" for k, v in t.params.items()) for t, m in zip(feasible, mask, strict=True) if m]
        lines.append(f"search: front of the feasible runs: {'; '.join(front)}")
    bad = [t for t in search.trials if not t.duplicate and not t.outcome.feasible]
    if bad:
        lines.append(f"search: {len(bad)} infeasible: " + "; ".join(_why(t) for t in bad))
    return lines


def _why(t: Trial) -> str:
    what = t.outcome.status if t.outcome.values is None else "quality fail"
    return " ".join(f"{k}={v}" for k, v in t.params.items()) + f" ({what})"
