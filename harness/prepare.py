"""What a run's process holds before it measures anything, forked or spawned: the modules every run needs
imported, and the tables a run would otherwise build on first use (pure Python: files parsed, a lookup of this
machine's CPU). `ready()` does it once per process: the fork server calls it at its start (harness.preload), so
a forked run finds it done; a spawned worker calls it first thing (harness.worker.measure), inside its
`startup_s`. The same state in both modes, so a run's memory (the imported modules' objects are part of its
resident set) and its figures do not depend on how its process started.

Nothing here runs a torch op (one would start OpenMP / intra-op threads, which a fork cannot carry into the
child) or touches `torch.cuda` itself (a CUDA context cannot survive a fork); the libraries' import-time checks
(torchao's) are answered through NVML in the fork server (harness.cuda_guard).
"""

from __future__ import annotations

import functools
import importlib

# torch, transformers, torchao; then transformers' lazy modules: `import transformers` alone leaves AutoConfig,
# AutoModelForCausalLM and the model classes to the first model build, at ~2 s (every preset is llama); then
# what a run imports later on (held-out text through datasets, codecarbon's CPU/RAM estimate and the pandas it
# reads its tables with, the training scenario, accounting) and the worker's own modules.
MODULES = (
    "torch",
    "transformers",
    "torchao",
    "transformers.models.auto.configuration_auto",
    "transformers.models.auto.modeling_auto",
    "transformers.models.llama.configuration_llama",
    "transformers.models.llama.modeling_llama",
    "datasets",
    "pandas",
    "codecarbon.emissions_tracker",
    "pydoc_data.topics",
    "harness.worker",
    "harness.config",
    "harness.backends.hf",
    "harness.scenarios.inference",
    "harness.scenarios.training",
    *(f"harness.{m}" for m in ("accounting", "calibrate", "catalog", "checkpoints", "cost", "data", "distributed")),
    *(f"harness.{m}" for m in ("energy", "hardware", "interference", "models", "precision", "quality")),
    *(f"harness.{m}" for m in ("quality_eval", "transforms")),
    *(f"harness.probes.{m}" for m in ("energy", "interference", "memory", "nvml", "timing")),
)


def _warm_tables() -> None:
    """Tables a run builds on first use, each once per process, from files and this machine's description:
    - the hardware catalog's files, parsed (harness.catalog caches them by file and mtime: 0.08 s a run);
    - transformers' checkpoint conversion table (~900 regular expressions its first `from_pretrained` in a
      process compiles, for every model type: 0.1 s);
    - codecarbon's reference data (CSV and JSON files it reads with pandas at its first tracker) and its CPU
      TDP lookup (the CPU model from cpuinfo, matched in that table): 0.25 s, beside pandas' import (0.65 s).
    (Times seen on the 2-core CI-sized VM, 2026-12-02; the codecarbon ones under a profiler.)
    Where a library version lacks one of these, that one is left to the run."""
    import logging

    from harness import catalog

    catalog.entries()
    logging.getLogger("codecarbon").setLevel(logging.ERROR)  # as its probe does (harness.probes.energy)
    warmers = (
        ("transformers.conversion_mapping", lambda m: m.get_checkpoint_conversion_mapping("llama")),
        ("codecarbon.input", lambda m: m._ensure_static_data_loaded()),
        ("codecarbon.core.hardware_cache", lambda m: m.get_cached_tdp(importlib.import_module("codecarbon.core.cpu"))),
    )
    for module, warm in warmers:
        try:
            warm(importlib.import_module(module))
        except (ImportError, AttributeError):
            pass


@functools.cache
def ready() -> None:
    """Import MODULES and warm the tables, once per process (a no-op after the first call, and in a forked run)."""
    for name in MODULES:
        importlib.import_module(name)
    _warm_tables()
