"""harness's Hydra sweeper plugin (`hydra/sweeper=pareto`): Hydra finds plugins in the hydra_plugins namespace."""
