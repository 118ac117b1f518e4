"""The shipped config composed by Hydra, once per set of overrides and process (a composition costs ~0.3 s).

Under `nox -s mutation` each mutant's tests run in a process forked from mutmut's fork server, which imports
the test modules first; `warm` composes their override sets there, so that no mutant pays for them again.
Only the composition is shared: every call converts it afresh, so the harness code that runs on the way
(the results-slug resolver, the dataclass conversion) is the mutated code under test."""

from __future__ import annotations

import functools
import sys
from collections.abc import Iterable

from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, OmegaConf

from harness import app
from harness.config import CONF_DIR


@functools.cache
def _composed(overrides: tuple[str, ...]) -> DictConfig:
    app.register()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("config", overrides=list(overrides))
    OmegaConf.set_readonly(cfg, True)  # shared: a test must not change the next test's config
    return cfg


def typed(*overrides: str):
    """The typed config (HarnessConfig dataclasses), as `python -m harness` builds it."""
    app.register()
    return OmegaConf.to_object(_composed(overrides))


def resolved(*overrides: str) -> dict:
    """The resolved config as plain dicts (a fresh copy each call)."""
    app.register()
    return OmegaConf.to_container(_composed(overrides), resolve=True)


def warm(override_sets: Iterable[Iterable[str]]) -> None:
    """Compose these now if mutmut is running the tests (see the module's docstring); otherwise do nothing."""
    if "mutmut" in sys.modules:
        for overrides in override_sets:
            _composed(tuple(overrides))
