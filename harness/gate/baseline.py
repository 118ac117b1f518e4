"""The two sides of a comparison: result files gathered by key, and the committed baseline file.

A side is read from result.json files (a sweep folder, any folder above several sweeps, or one file) or
from a baseline file (`harness.baseline/1`, written by `gate --save-baseline`). Several results with one
key on a side (interleaved sweeps, say) are pooled: their repeats are all samples of that configuration.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from harness import interference, results, summary
from harness.errors import HarnessError

BASELINE_SCHEMA = "harness.baseline/1"


class GateInputError(HarnessError):
    """A --baseline/--candidate path that holds no usable results; the message names the flag and path."""


@dataclass
class Side:
    """One side of the comparison: results by canonical key, in the order they were found."""

    sources: list[str]
    by_key: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    @property
    def n_results(self) -> int:
        return sum(len(v) for v in self.by_key.values())

    def all_results(self) -> list[dict[str, Any]]:
        return [r for rs in self.by_key.values() for r in rs]


def lookup(mapping: Mapping[str, Any] | None, dotted: str) -> Any:
    """mapping['a']['b'] for 'a.b', or None where any part is missing."""
    node: Any = mapping
    for part in dotted.split("."):
        if not isinstance(node, Mapping):
            return None
        node = node.get(part)
    return node


def fingerprint(environment: Mapping[str, Any] | None, names: Iterable[str]) -> dict[str, Any]:
    """The named (dotted) environment fields of a result, None where not recorded."""
    return {name: lookup(environment, name) for name in names}


def _read_folder(path: Path, flag: str) -> list[dict[str, Any]]:
    damaged: list[tuple[Path, str]] = []
    found = [r for _, r in results.iter_results(path, damaged)]
    if damaged:  # a damaged file could be the very run that regressed: never judge without it
        bad, why = damaged[0]
        more = f" (and {len(damaged) - 1} more)" if len(damaged) > 1 else ""
        raise GateInputError(f"{flag} {bad}: damaged result ({why}){more}; re-run it or remove it")
    if not found:
        raise GateInputError(f"{flag} {path}: no result.json files (schema {results.SCHEMA}) under it")
    return found


def _baseline_results(data: dict[str, Any], path: Path, flag: str) -> list[dict[str, Any]]:
    entries = data.get("results")
    if not isinstance(entries, list):
        what = "missing" if entries is None else f"a {type(entries).__name__}, not a list"
        raise GateInputError(f"{flag} {path}: its 'results' is {what}: not a usable {BASELINE_SCHEMA} file")
    if not entries:
        raise GateInputError(f"{flag} {path}: 'results' is empty: a baseline without runs cannot pass anything")
    for i, entry in enumerate(entries):
        why = results.problem(entry)
        if why:
            raise GateInputError(f"{flag} {path}: results[{i}] is damaged ({why})")
    return entries


def _read(path: Path, flag: str) -> list[dict[str, Any]]:
    if path.is_dir():
        return _read_folder(path, flag)
    if not path.is_file():
        raise GateInputError(f"{flag} {path}: no such file or directory")
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise GateInputError(f"{flag} {path}: not readable JSON ({exc})") from exc
    schema = data.get("schema") if isinstance(data, dict) else None
    if schema == BASELINE_SCHEMA:
        return _baseline_results(data, path, flag)
    if schema == results.SCHEMA:
        why = results.problem(data)
        if why:
            raise GateInputError(f"{flag} {path}: damaged result ({why})")
        return [data]
    raise GateInputError(
        f"{flag} {path}: schema {schema!r} is not valid: choose a {results.SCHEMA} result, "
        f"a {BASELINE_SCHEMA} baseline file, or a folder of results"
    )


def load_side(paths: Sequence[str | Path], flag: str) -> Side:
    """Every result under `paths`, grouped by canonical key; raises GateInputError naming `flag`."""
    side = Side(sources=[str(p) for p in paths])
    for p in paths:
        for r in _read(Path(p), flag):
            side.by_key.setdefault(r["key"], []).append(r)
    return side


def disturbed(side: Side) -> list[dict[str, str]]:
    """The runs of a side measured while other load disturbed them (harness.interference): key, label, reason."""
    out = []
    for key, runs in side.by_key.items():
        for r in runs:
            why = interference.disturbed(r)
            if why:
                out.append({"key": key, "label": summary.label(r["key_fields"]), "reason": why})
    return out


def disturbed_line(found: Mapping[str, Sequence[Mapping[str, str]]]) -> str:
    """One line naming every disturbed run of both sides, with its reason."""
    n = sum(len(v) for v in found.values())
    runs = "; ".join(f"{side}: {d['label']} ({d['reason']})" for side, ds in found.items() for d in ds)
    return f"{n} disturbed run(s), measured while other load ran beside them: {runs}"


def make_baseline(side: Side, strict_fields: Sequence[str]) -> dict[str, Any]:
    """A baseline record (`harness.baseline/1`) of a side's results, with the environment fingerprint.

    Raises GateInputError when the results come from different environments: a baseline must describe
    one machine and software stack, or every later comparison against it is muddled.
    """
    found = side.all_results()
    prints = {json.dumps(fingerprint(r.get("environment"), strict_fields), sort_keys=True) for r in found}
    if len(prints) > 1:
        listed = "; ".join(sorted(prints))
        raise GateInputError(f"--candidate {' '.join(side.sources)}: results come from several environments: {listed}")
    env = found[0].get("environment") or {}
    return {
        "schema": BASELINE_SCHEMA,
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "sources": side.sources,
        "fingerprint": fingerprint(env, strict_fields),
        "harness_version": lookup(env, "packages.harness"),
        "git": env.get("git"),
        "statuses": {s: sum(r["status"] == s for r in found) for s in results.STATUSES},
        "results": [{k: v for k, v in r.items() if k != "launcher"} for r in found],
    }


def save_baseline(side: Side, path: Path, strict_fields: Sequence[str]) -> dict[str, Any]:
    if Path(path).is_dir():
        example = Path(path) / "baseline.json"
        raise GateInputError(f"--save-baseline {path}: is a folder; give a file name, e.g. {example}")
    record = make_baseline(side, strict_fields)
    try:
        results.write_atomic(Path(path), record)
    except OSError as exc:
        raise GateInputError(f"--save-baseline {path}: cannot be written ({exc.strerror or exc})") from exc
    return record
