"""Search instead of a grid: `-m hydra/sweeper=pareto` samples the sweep's configurations with Optuna's
multi-objective samplers over the harness's own objectives (harness.metrics.OBJECTIVES), each trial a
normal run with a normal result file (docs/search.md)."""
