"""Launchers a plugin adds (harness.plugins): how a run's worker process starts, chosen by `launcher.name`.

The built-in ones live in harness.launch (`preload`: forked from the preloading server; `spawn`: a fresh
interpreter; `torchrun` for gpus > 1); this registry holds the others, without importing the launcher, so
that validation can check the name. A launcher is `start(command, env, log) -> process`: it starts
`command` (`python -m harness.worker <spec>`) with `env`, its output to the open file `log`, and returns a
subprocess.Popen-like object (pid, poll, wait, returncode) whose process group harness.launch may kill
(timeout, memory limit): start it in a new session.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from harness.plugins import load

BUILT_IN = ("preload", "spawn")  # chosen by launcher.preload when launcher.name is null
_REGISTRY: dict[str, Callable[[list[str], dict[str, str], Any], Any]] = {}


def register(name: str) -> Callable:
    """Decorator: make `start(command, env, log)` the launcher `name` (launcher.name=<name>)."""

    def add(start: Callable[[list[str], dict[str, str], Any], Any]) -> Callable:
        _REGISTRY[name] = start
        return start

    return add


def names() -> tuple[str, ...]:
    """The launchers a plugin registered (the built-in ones are not chosen by name)."""
    load()
    return tuple(_REGISTRY)


def get(name: str) -> Callable[[list[str], dict[str, str], Any], Any] | None:
    """The registered launcher `name`, or None."""
    load()
    return _REGISTRY.get(name)
