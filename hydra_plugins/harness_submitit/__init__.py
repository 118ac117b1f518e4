"""harness's submitit launchers (`hydra/launcher=slurm`, `hydra/launcher=local`): Hydra finds plugins in the
hydra_plugins namespace."""
