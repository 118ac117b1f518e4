"""The submitit launchers (hydra/launcher=slurm, hydra/launcher=local): hydra-submitit-launcher's, plus what a
sweep of the harness needs from them.

- Progress lines. A job's own lines (`[1/2] ...: running ...`) go to its log under `.submitit/`, not to the
  terminal that started the sweep; this launcher prints each job's state as the scheduler reports it
  (PENDING, RUNNING on which node, then the run's status), the same `[i/N] label` as a local sweep.
- A run stopped in its job is data. In a job, SIGTERM (scancel, preemption, the job's time limit) ends the
  run as a Ctrl-C ends a local one: its worker is stopped and the run recorded `killed` (harness.launch),
  and the other jobs go on. A job that ends without a result of its own (cancelled while pending, killed
  before its run started) gets a `killed` result written here, so every run of the sweep ends with a result
  file and the same command again retries it.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, JobStatus
from hydra_plugins.hydra_submitit_launcher import submitit_launcher as base
from omegaconf import OmegaConf, open_dict

from harness import environment, guard, results, summary
from harness.errors import SweepStopped

POLL_S = 5.0  # between two state queries (one sacct call for all the sweep's jobs)


class _Stopped:
    """What a job returns when its run was stopped by a signal (a SweepStopped cannot cross a pickle)."""

    def __init__(self, message: str) -> None:
        self.message = message


class _Harness(base.BaseSubmititLauncher):
    def __call__(self, *args: Any, **kwargs: Any) -> JobReturn | _Stopped:
        # in the job: submitit ignores SIGTERM (it waits for its own preemption signal); the harness's run
        # stops on it instead, its worker with it, and records `killed` (harness.guard, harness.launch)
        guard.install_signal_handlers()
        try:
            return super().__call__(*args, **kwargs)
        except SweepStopped as stop:
            if stop.exit_code <= 128:  # not a signal (a full disk): the sweep stops, as a local one does
                raise RuntimeError(stop.message) from None
            return _Stopped(stop.message)

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        import submitit  # lazy, as the base class does: plugin discovery stays fast

        assert self.config is not None and self.hydra_context is not None
        executor = self._executor(submitit)
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        total = os.environ.get("HARNESS_SWEEP_TOTAL", str(initial_job_idx + len(job_overrides)))
        runs = []
        job_params = []
        for idx, overrides in enumerate(job_overrides, start=initial_job_idx):
            runs.append(_Run(self, list(overrides), idx, total))
            job_params.append((list(overrides), "hydra.sweep.dir", idx, f"job_id_for_{idx}", Singleton.get_state()))
        submitted_at = time.time()
        jobs = executor.map_array(self, *zip(*job_params, strict=True))
        for run, job in zip(runs, jobs, strict=True):
            run.job = job
        return _wait(runs, submitted_at)

    def _executor(self, submitit: Any) -> Any:
        """hydra-submitit-launcher's executor, built as its own launch() builds it."""
        params = dict(self.params)
        init_params = {"folder": params.pop("submitit_folder")}
        if "max_num_timeout" in params:
            init_params[f"{self._EXECUTOR}_max_num_timeout"] = params.pop("max_num_timeout")
        executor = submitit.AutoExecutor(cluster=self._EXECUTOR, **init_params)
        baseparams = set(OmegaConf.structured(base.BaseQueueConf).keys())
        executor.update_parameters(**{k if k in baseparams else f"{self._EXECUTOR}_{k}": v for k, v in params.items()})
        return executor


class SlurmLauncher(_Harness, base.SlurmLauncher):
    """hydra/launcher=slurm: one Slurm job per run."""


class LocalLauncher(_Harness, base.LocalLauncher):
    """hydra/launcher=local: submitit's local executor, the same path on this machine."""


class _Run:
    """One run of the sweep: its job, its folder and its config (composed here as the job composes it)."""

    def __init__(self, launcher: _Harness, overrides: list[str], idx: int, total: str) -> None:
        assert launcher.hydra_context is not None
        cfg = launcher.hydra_context.config_loader.load_sweep_config(launcher.config, overrides)
        self.overrides = overrides
        self.run_dir = Path(str(cfg.hydra.sweep.dir)) / str(cfg.hydra.sweep.subdir)
        with open_dict(cfg):
            del cfg["hydra"]
        self.config = OmegaConf.to_container(cfg, resolve=True)
        self.cfg = cfg
        self.position = f"[{idx + 1}/{total}]"
        self.name = summary.label(results.key_fields(self.config))
        self.job: Any = None
        self.shown = ""

    def say(self, line: str) -> None:
        print(f"{self.position} {self.name}: {line}", flush=True)


def _state(run: _Run, first: bool) -> tuple[str, str]:
    """(scheduler state, node list) of the run's job; one sacct call per poll for the whole sweep."""
    import submitit

    job = run.job
    if not isinstance(job, submitit.SlurmJob):  # submitit's local executor: the process's own state
        return job.state, ""
    info = job.watcher.get_info(job.job_id, mode="force" if first else "cache")
    return (info.get("State") or "UNKNOWN").split(" ")[0], info.get("NodeList", "")


def _wait(runs: list[_Run], submitted_at: float) -> list[JobReturn]:
    """Print each job's state as it changes; each run's JobReturn once its job has ended."""
    returns: dict[int, JobReturn] = {}
    for run in runs:
        run.say(f"job {run.job.job_id} submitted")
    while len(returns) < len(runs):
        waiting = [i for i in range(len(runs)) if i not in returns]
        for n, i in enumerate(waiting):
            run = runs[i]
            state, nodes = _state(run, first=n == 0)
            shown = f"job {run.job.job_id} {state}" + (f" on {nodes}" if state == "RUNNING" and nodes else "")
            if shown != run.shown and state != "UNKNOWN":  # UNKNOWN: not in sacct yet
                run.shown = shown
                log = f" (log: {run.job.paths.stdout})" if state == "RUNNING" else ""
                run.say(shown + log)
            if run.job.done():
                returns[i] = _ended(run, submitted_at)
        if len(returns) < len(runs):
            time.sleep(POLL_S)
    return [returns[i] for i in range(len(runs))]


def _ended(run: _Run, submitted_at: float) -> JobReturn:
    """The run's JobReturn, whatever became of its job: its own, or one holding its result file."""
    from submitit.core.utils import FailedJobError, UncompletedJobError

    try:
        value = run.job.results()[0]
    except FailedJobError:  # the job's own code raised (a bug, a full disk): the sweep stops, as a local one does
        raise
    except UncompletedJobError as exc:  # the job ended with no return at all (cancelled while pending, SIGKILL)
        state = run.job.state.split(" ")[0]  # "CANCELLED by 0" -> CANCELLED
        value = _Stopped(f"job {run.job.job_id} ended {state} without a result ({type(exc).__name__})")
    if isinstance(value, JobReturn) and value.status == JobStatus.COMPLETED:
        result = value.return_value
    else:
        if isinstance(value, JobReturn):  # the run raised (a bug, a full disk): the sweep stops, as locally
            value.return_value  # noqa: B018 - raises the run's exception
        result = _recorded(run, value.message, submitted_at)
        value = JobReturn(overrides=run.overrides, status=JobStatus.COMPLETED, _return_value=result)
    extra = f", {summary.headline_line(result)}" if result["status"] == "ok" else f": {result.get('reason') or ''}"
    run.say(f"{result['status']} (job {run.job.job_id}){extra.splitlines()[0][:200]}")
    return value


def _recorded(run: _Run, why: str, submitted_at: float) -> dict[str, Any]:
    """The result the job's run wrote after `submitted_at` (a `killed` one, when a signal stopped it), or a
    `killed` result written here for a run that never got to write one."""
    path = run.run_dir / results.RESULT_FILE
    result, _ = results.read(path)
    if result is not None and path.stat().st_mtime >= submitted_at:
        return result
    reason = f"{why}: the run was stopped before it wrote a result (resume retries it)"
    result = results.make_result(run.config, "killed", reason, environment.capture())
    result["overrides"] = run.overrides
    run.run_dir.mkdir(parents=True, exist_ok=True)
    results.write_atomic(path, result)
    print(f"{run.position} {run.name}: {why}", file=sys.stderr, flush=True)
    return result
