"""The transform interface: what changes the model before it runs (dtype, int8, int4, pruning; LoRA later).

A transform class is built for a run by `for_run(ctx, settings)` (harness.transforms.Context; its settings are
transform.<name> of the config). `check` raises UnsupportedError before anything is built; `apply` changes the
model in place and returns an Applied record: how the change was obtained and whether it changed the kernels
that run (the result's `transforms` section), and what the scenario needs to know at run time (an autocast
dtype; `peak_dtype`: the dtype whose peak an MFU is divided by, where the transform changed it).
Optional class methods: `validate(settings)` raises harness.errors.ConfigError; `tag(settings)` is the short
text the run's key and label show ("int4g32").
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True)
class Applied:
    section: str  # the result section that records it (`precision`; `transforms` for the others)
    how: Mapping[str, Any]  # written under that section: name, method, dtypes, kernels_changed ...
    runtime: Mapping[str, Any] = field(default_factory=dict)  # for the scenario: {"autocast_dtype": ...}


class Transform(Protocol):
    name: str

    def check(self) -> None: ...
    def load_dtype(self) -> Any: ...  # the dtype the backend builds the model in (None: no opinion)
    def apply(self, model: Any) -> Applied: ...
