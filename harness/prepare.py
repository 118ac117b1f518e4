"""What a run's process holds before it measures anything, forked or spawned: the modules every run needs
imported, and two pure-Python tables a run would otherwise build on its clock. `ready()` does it once per
process: the fork server calls it at its start (harness.preload), so a forked run finds it done; a spawned
worker calls it first thing (harness.worker.measure), inside its `startup_s`. The same state in both modes,
so a run's memory (the imported modules' objects are part of its resident set) and its figures do not depend
on how its process started.

Nothing here runs a torch op (one would start OpenMP / intra-op threads, which a fork cannot carry into the
child) or touches `torch.cuda` (a CUDA context cannot survive a fork).
"""

from __future__ import annotations

import importlib

# torch, transformers, torchao; then transformers' lazy modules: `import transformers` alone leaves AutoConfig,
# AutoModelForCausalLM and the model classes to the first model build, at ~2 s (every preset is llama); then
# what a run imports later on (held-out text through datasets, codecarbon's CPU/RAM estimate, the training
# scenario, accounting) and the worker's own modules.
MODULES = (
    "torch",
    "transformers",
    "torchao",
    "transformers.models.auto.configuration_auto",
    "transformers.models.auto.modeling_auto",
    "transformers.models.llama.configuration_llama",
    "transformers.models.llama.modeling_llama",
    "datasets",
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

_done = False


def _warm_tables() -> None:
    """The hardware catalog's files, parsed (harness.catalog caches them by file and mtime: ~0.08 s a run), and
    transformers' checkpoint conversion table (~900 regular expressions its first `from_pretrained` in a
    process compiles, for every model type: ~0.1 s). Where a transformers version lacks that table, nothing."""
    from harness import catalog

    catalog.entries()
    try:
        from transformers import conversion_mapping

        conversion_mapping.get_checkpoint_conversion_mapping("llama")
    except (ImportError, AttributeError):
        pass


def ready() -> None:
    """Import MODULES and warm the tables, once per process (a no-op after the first call, and in a forked run)."""
    global _done
    if _done:
        return
    for name in MODULES:
        importlib.import_module(name)
    _warm_tables()
    _done = True
