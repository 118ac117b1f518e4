"""Labelled text for the classification workloads, offline: a built-in set from CPython's own source, or the
user's local CSV / JSON(L) / parquet file with a text column and a label column.

Built-in (`data.source=docstrings`): every docstring of at least MIN_CHARS characters of a module, class or
function in the standard library's packages PACKAGES (their .py files parsed with `ast`, nothing imported,
test folders left out), labelled with the package it lies in. Real English text written by CPython's authors,
real labels; the set depends on the Python version, which is recorded (docs/classification.md).

Checked before any run starts (no torch import): a missing column, one class only, an empty text or label
(`problem`). The split is by example, fixed by data.split_seed, so every run holds out the same examples.
"""

from __future__ import annotations

import ast
import csv
import functools
import json
import random
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness import datafiles

BUILTIN = "docstrings"
FILE_SOURCES = ("csv", "json", "parquet")
SOURCES = (BUILTIN, *FILE_SOURCES)
PACKAGES = ("asyncio", "email", "http", "logging", "unittest", "xml")
MIN_CHARS = 40


@dataclass(frozen=True)
class Labelled:
    """A fixed split of labelled examples; labels are indices into `names`."""

    train_texts: tuple[str, ...]
    train_labels: tuple[int, ...]
    eval_texts: tuple[str, ...]
    eval_labels: tuple[int, ...]
    names: tuple[str, ...]
    info: dict[str, Any]


def _docstrings(package: Path) -> list[str]:
    out = []
    for f in sorted(package.rglob("*.py")):
        if any(part.startswith("test") for part in f.relative_to(package).parts[:-1]):
            continue
        try:
            tree = ast.parse(f.read_text(encoding="utf-8"))
        except (SyntaxError, UnicodeDecodeError, OSError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                doc = ast.get_docstring(node)
                if doc and len(doc.strip()) >= MIN_CHARS:
                    out.append(doc.strip())
    return out


@functools.lru_cache(maxsize=1)
def builtin_rows() -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(texts, labels) of the built-in set: stdlib docstrings labelled by their package."""
    root = Path(sysconfig.get_paths()["stdlib"])
    texts, labels = [], []
    for name in PACKAGES:
        docs = _docstrings(root / name) if (root / name).is_dir() else []
        texts += docs
        labels += [name] * len(docs)
    return tuple(texts), tuple(labels)


def _json_rows(path: Path) -> list[dict]:
    text = path.read_text(encoding="utf-8")
    try:
        whole = json.loads(text)
    except ValueError:
        whole = None
    if isinstance(whole, list):
        return whole
    if isinstance(whole, dict):
        return [whole]
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def _file_rows(source: str, path: str) -> list[dict]:
    rows: list[dict] = []
    for f in datafiles.files_of(source, path):
        if source == "csv":
            with open(f, newline="", encoding="utf-8") as handle:
                rows += list(csv.DictReader(handle))
        elif source == "json":
            rows += _json_rows(f)
        else:
            import pyarrow.parquet as pq

            table = pq.read_table(f).to_pydict()
            rows += [dict(zip(table, values, strict=True)) for values in zip(*table.values(), strict=False)]
    return rows


def _columns(data_cfg: dict) -> tuple[list[Any], list[Any], str]:
    """(texts, labels, description) as read, unchecked."""
    if data_cfg["source"] == BUILTIN:
        texts, labels = builtin_rows()
        version = ".".join(map(str, sys.version_info[:3]))
        return list(texts), list(labels), f"stdlib docstrings of {', '.join(PACKAGES)} (Python {version})"
    rows = _file_rows(data_cfg["source"], data_cfg["path"])
    text_col, label_col = data_cfg["text_column"], data_cfg["label_column"]
    for key, col in (("data.text_column", text_col), ("data.label_column", label_col)):
        missing = next((i for i, r in enumerate(rows) if not isinstance(r, dict) or col not in r), None)
        if missing is not None:
            have = ", ".join(map(str, rows[missing])) if isinstance(rows[missing], dict) else "not an object"
            raise LabelledError(key, col, f"is not a column of {data_cfg['path']} (row {missing} has: {have})")
    return [r[text_col] for r in rows], [r[label_col] for r in rows], f"local {data_cfg['source']} {data_cfg['path']}"


class LabelledError(ValueError):
    """A labelled set that cannot be used: the dotted key, its value, and why (one line)."""

    def __init__(self, key: str, value: Any, why: str):
        super().__init__(f"{key}={value}: {why}")
        self.key, self.value, self.why = key, value, why


def _checked(data_cfg: dict) -> tuple[list[str], list[Any], str]:
    texts, labels, description = _columns(data_cfg)
    if not texts:
        raise LabelledError("data.path", data_cfg.get("path"), "holds no examples")
    for i, (t, y) in enumerate(zip(texts, labels, strict=True)):
        if not isinstance(t, str) or not t.strip():
            raise LabelledError("data.text_column", data_cfg["text_column"], f"row {i} has an empty text")
        if y is None or (isinstance(y, str) and not y.strip()):
            raise LabelledError("data.label_column", data_cfg["label_column"], f"row {i} has an empty label")
    classes = sorted({str(y) for y in labels})
    if len(classes) < 2:
        only = classes[0] if classes else None
        raise LabelledError("data.label_column", data_cfg["label_column"], f"one class only ({only}): need >= 2")
    return texts, labels, description


def problem(data_cfg: dict) -> LabelledError | None:
    """Why `data_cfg` cannot give a labelled set, or None (read once here, before any run starts)."""
    if data_cfg["source"] in FILE_SOURCES:
        why = datafiles.problem(data_cfg["source"], data_cfg.get("path"))
        if why:
            return LabelledError("data.path", data_cfg.get("path"), why)
    try:
        _checked(data_cfg)
    except LabelledError as exc:
        return exc
    except (ValueError, OSError, csv.Error) as exc:  # unparseable JSON/CSV, an unreadable parquet
        return LabelledError("data.path", data_cfg.get("path"), f"cannot be read as {data_cfg['source']}: {exc}")
    return None


_KEEP = ("source", "path", "text_column", "label_column", "eval_fraction", "split_seed")


def load(data_cfg: dict) -> Labelled:
    """The fixed split of the labelled set (cached per setting)."""
    return _load(json.dumps({k: data_cfg.get(k) for k in _KEEP}, sort_keys=True))


@functools.lru_cache(maxsize=4)
def _load(spec: str) -> Labelled:
    data_cfg = json.loads(spec)
    texts, labels, description = _checked(data_cfg)
    names = tuple(sorted({str(y) for y in labels}, key=lambda s: (not s.lstrip("-").isdigit(), _num(s), s)))
    index = {n: i for i, n in enumerate(names)}
    order = list(range(len(texts)))
    random.Random(data_cfg["split_seed"]).shuffle(order)
    held = max(1, round(len(order) * data_cfg["eval_fraction"]))
    if held >= len(order):
        raise LabelledError("data.eval_fraction", data_cfg["eval_fraction"], "leaves no training examples")
    ev, tr = sorted(order[:held]), sorted(order[held:])
    info = {
        "source": data_cfg["source"],
        "description": description,
        "labels": list(names),
        "train_examples": len(tr),
        "eval_examples": len(ev),
        "eval_class_counts": {n: sum(1 for i in ev if str(labels[i]) == n) for n in names},
    }
    return Labelled(
        tuple(texts[i] for i in tr),
        tuple(index[str(labels[i])] for i in tr),
        tuple(texts[i] for i in ev),
        tuple(index[str(labels[i])] for i in ev),
        names,
        info,
    )


def _num(s: str) -> float:
    try:
        return float(s)
    except ValueError:
        return 0.0
