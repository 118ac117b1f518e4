"""Transforms: what changes the model before it runs (`base`: the interface; `precision`: dtype and int8).

`for_run` is the one place that lists a run's transforms, in the order they are applied.
"""

from __future__ import annotations

from typing import Any

from harness.transforms.base import Applied, Transform

__all__ = ["Applied", "Transform", "for_run", "load_dtype"]


def for_run(config: dict[str, Any], precision_mode: str, device_type: str, cuda: Any = None) -> list[Transform]:
    from harness.transforms.precision import Precision

    return [Precision(config["precision"]["name"], precision_mode, device_type, cuda)]


def load_dtype(chain: list[Transform]) -> Any:
    """The dtype to build the model in: the first transform's that has an opinion (precision's)."""
    return next((d for d in (t.load_dtype() for t in chain) if d is not None), None)
