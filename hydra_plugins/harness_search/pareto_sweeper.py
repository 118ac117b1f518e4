"""`hydra/sweeper=pareto`: an Optuna multi-objective search over the sweep's configurations, each trial a
normal run launched by the configured launcher (harness.search.study holds the loop; docs/search.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hydra.core.utils import JobReturn
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf

from harness import results
from harness.search import settings as settings_mod
from harness.search import space as space_mod
from harness.search import study

settings_mod.register()


class ParetoSweeper(Sweeper):
    def __init__(self, **settings: Any) -> None:
        self.settings = {k: OmegaConf.to_container(v) if OmegaConf.is_config(v) else v for k, v in settings.items()}
        settings_mod.check(self.settings)
        self.config: DictConfig | None = None
        self.launcher: Any = None
        self.hydra_context: HydraContext | None = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        from hydra.core.plugins import Plugins

        self.hydra_context, self.config = hydra_context, config
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config
        )

    def sweep(self, arguments: list[str]) -> list[JobReturn]:
        assert self.config is not None and self.launcher is not None
        space = space_mod.from_overrides(arguments)
        sweep_dir = Path(self.config.hydra.sweep.dir)
        sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(self.config, sweep_dir / "multirun.yaml")
        returns: list[JobReturn] = []

        def run_batch(batch: list[list[str]]) -> list[dict[str, Any]]:
            self.validate_batch_is_legal(batch)
            done = self.launcher.launch(batch, initial_job_idx=len(returns))
            returns.extend(done)
            return [_result_of(jr) for jr in done]

        floor = float(OmegaConf.select(self.config, "quality.floor", default=0.99))
        found = study.run_search(space, run_batch, self.settings, floor)
        for line in study.summary_lines(found, self.settings["sampler"], self.settings["seed"], space.size):
            print(line, flush=True)
        _write_trials(sweep_dir / "search.json", found, self.settings, space)
        return returns


def _result_of(jr: JobReturn) -> dict[str, Any]:
    """The run's result: what the task returned, else its result file (a launcher that returns nothing)."""
    value = jr.return_value  # raises what the run raised (a stopped sweep: disk full, a signal), as Hydra's own
    if isinstance(value, dict):
        return value
    out_dir = Path(jr.hydra_cfg.hydra.runtime.output_dir) if jr.hydra_cfg is not None else Path(jr.working_dir or ".")
    found = results.load(out_dir / results.RESULT_FILE)
    return found or {"status": "error", "reason": f"no result file in {out_dir}"}


def _write_trials(path: Path, found: study.Search, settings: dict[str, Any], space: space_mod.Space) -> None:
    """search.json: the sampler's settings, objectives and every trial (the report reads result.json only)."""
    record = {
        "schema": "harness.search/1",
        "settings": settings,
        "axes": {k: list(v) for k, v in space.axes},
        "fixed": list(space.fixed),
        "workload": found.workload,
        "objectives": [
            {"label": a.objective.label, "column": a.column, "sense": a.objective.sense} for a in found.active
        ],
        "launched": found.launched,
        "trials": [
            {
                "params": t.params,
                "status": t.outcome.status,
                "values": t.outcome.values,
                "feasible": t.outcome.feasible,
                "quality_ok": t.outcome.quality_ok,
                "duplicate": t.duplicate,
            }
            for t in found.trials
        ],
    }
    results.write_atomic(path, record)
