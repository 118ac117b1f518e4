"""The search space: the sweep overrides of the command line (`key=a,b,c`, `choice(...)`, `range(...)`),
each a categorical axis; every other override is fixed. The same space `harness.cli.prevalidate` validates."""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override, ValueType

from harness.errors import ConfigError

# the objectives (and so the study's directions) depend on the workload: it cannot be an axis of one study
NOT_AN_AXIS = ("workload",)


@dataclass(frozen=True)
class Space:
    """Fixed override lines and categorical axes (key -> values as override strings)."""

    fixed: tuple[str, ...]
    axes: tuple[tuple[str, tuple[str, ...]], ...]

    @property
    def size(self) -> int:
        n = 1
        for _, values in self.axes:
            n *= len(values)
        return n

    def overrides(self, params: Mapping[str, str]) -> list[str]:
        """One run's override lines."""
        return [*self.fixed, *(f"{key}={params[key]}" for key, _ in self.axes)]

    def key(self, params: Mapping[str, str]) -> tuple[str, ...]:
        return tuple(str(params[key]) for key, _ in self.axes)

    def all_params(self) -> list[dict[str, str]]:
        """Every configuration of the space, in grid order."""
        names = [key for key, _ in self.axes]
        return [dict(zip(names, combo, strict=True)) for combo in itertools.product(*(v for _, v in self.axes))]


def axis_values(o: Override) -> list[str]:
    """A sweep override's values as override strings; an interval (a continuous range) is refused."""
    if o.value_type == ValueType.INTERVAL_SWEEP:
        raise ConfigError(
            o.get_key_element(), o.input_line.split("=", 1)[1], "an interval is not a list of runs: give the values"
        )
    return list(o.sweep_string_iterator())


def from_overrides(overrides: Sequence[str]) -> Space:
    """The space of a command line's task overrides (no hydra.* ones)."""
    fixed, axes = [], []
    for o in OverridesParser.create().parse_overrides(list(overrides)):
        if not o.is_sweep_override():
            fixed.append(o.input_line)
            continue
        key = o.get_key_element()
        if key in NOT_AN_AXIS:
            value = o.input_line.split("=", 1)[1]
            raise ConfigError(key, value, "cannot be a search axis (each workload has its own objectives)")
        values = tuple(dict.fromkeys(axis_values(o)))
        axes.append((key, values))
    return Space(tuple(fixed), tuple(axes))
