"""The transform interface: what changes the model before it runs (dtype, int8; LoRA, pruning, compile later).

`check` raises UnsupportedError before anything is built; `apply` changes the model in place and
returns an Applied record: how the change was obtained (for the result file) and what the scenario
needs to know at run time (e.g. an autocast dtype).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True)
class Applied:
    section: str  # the result section that records it (`precision`)
    how: Mapping[str, Any]  # written under that section: name, method, dtypes ...
    runtime: Mapping[str, Any] = field(default_factory=dict)  # for the scenario: {"autocast_dtype": ...}


class Transform(Protocol):
    name: str

    def check(self) -> None: ...
    def load_dtype(self) -> Any: ...  # the dtype the backend builds the model in (None: no opinion)
    def apply(self, model: Any) -> Applied: ...
