"""Plugins: modules named in the HARNESS_PLUGINS environment variable (comma-separated), imported once per
process on first use, in the CLI and in the worker alike. Importing one registers what it defines with the
registry of its kind: `harness.scenarios.register` (a scenario), `harness.backends.register` (a backend),
`harness.probes.register` (a probe factory), `harness.launch.register` (a launcher). Each registry calls
`load()` before it answers, so a plugin is there wherever its kind is asked for
(tests/plugins/harness_test_scenarios.py registers one of each).
"""

from __future__ import annotations

import importlib
import os

PLUGINS_ENV = "HARNESS_PLUGINS"
_loaded: set[str] = set()


def load() -> None:
    """Import every module named in HARNESS_PLUGINS not imported yet (its registrations run then)."""
    for module in filter(None, (m.strip() for m in os.environ.get(PLUGINS_ENV, "").split(","))):
        if module not in _loaded:
            _loaded.add(module)
            importlib.import_module(module)
