"""The pareto sweeper's settings (`hydra.sweeper.*`), registered as `hydra/sweeper=pareto`."""

from __future__ import annotations

from dataclasses import dataclass

from hydra.core.config_store import ConfigStore

SAMPLERS = ("gp", "tpe", "nsga2", "random")
TARGET = "hydra_plugins.harness_search.pareto_sweeper.ParetoSweeper"


@dataclass
class ParetoSweeperConf:
    """`python -m harness -m hydra/sweeper=pareto <axes> hydra.sweeper.n_trials=8` (docs/search.md)."""

    _target_: str = TARGET
    n_trials: int = 20  # runs launched (distinct configurations), at most the size of the space
    # gp (Gaussian-process Bayesian optimisation, Optuna's GPSampler: needs scipy), tpe (multi-objective TPE),
    # nsga2 (NSGA-II), random (the baseline); docs/search.md "How good is it" compares them
    sampler: str = "gp"
    seed: int = 0  # the same seed and the same results give the same trials: a rerun resumes
    n_startup_trials: int | None = None  # gp, tpe: random trials first; null: a third of n_trials (at least 2)
    population_size: int | None = None  # nsga2: null: a quarter of n_trials (at least 4)
    ordinal: bool = True  # a numeric axis (batch_size=1,2,4,8) is an ordered integer to the sampler, not labels
    objectives: list[str] | None = None  # labels or columns of metrics.OBJECTIVES[workload]; null: all of them
    n_jobs: int = 1  # trials launched together (a parallel launcher: hydra/launcher=local or slurm)


def check(conf: object) -> None:
    """Raise ValueError naming the dotted key of the first bad setting."""
    get = conf.get if isinstance(conf, dict) else lambda k, d=None: getattr(conf, k, d)
    for key in ("n_trials", "n_jobs"):
        if int(get(key)) < 1:
            raise ValueError(f"hydra.sweeper.{key}={get(key)} is not valid: it must be at least 1")
    if get("sampler") not in SAMPLERS:
        raise ValueError(f"hydra.sweeper.sampler={get('sampler')} is not valid: choose one of {', '.join(SAMPLERS)}")
    for key, least in (("n_startup_trials", 1), ("population_size", 2)):
        if get(key) is not None and int(get(key)) < least:
            raise ValueError(f"hydra.sweeper.{key}={get(key)} is not valid: it must be at least {least} (or null)")


def register() -> None:
    ConfigStore.instance().store(group="hydra/sweeper", name="pareto", node=ParetoSweeperConf, provider="harness")
