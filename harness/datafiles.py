"""The local files behind data.source=text|json|parquet|csv: which files a `data.path` means, and whether
they can be training text at all, checked before any run starts (no torch, no datasets import)."""

from __future__ import annotations

from pathlib import Path

# what a folder given as data.path contributes: its files with these suffixes, in name order
SUFFIXES = {
    "text": (".txt", ".text", ".md", ".rst"),
    "json": (".json", ".jsonl"),
    "parquet": (".parquet",),
    "csv": (".csv",),  # labelled examples (harness.labelled)
}
_SNIFF_BYTES = 8192
_PARQUET_MAGIC = b"PAR1"


def files_of(source: str, path: str) -> list[Path]:
    """The files `data.path` stands for: itself, or a folder's files with the source's suffixes."""
    p = Path(path)
    if p.is_dir():
        return sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in SUFFIXES[source])
    return [p]


def _file_problem(source: str, f: Path) -> str | None:
    try:
        with open(f, "rb") as fh:
            head = fh.read(_SNIFF_BYTES)
    except OSError as exc:
        return f"{f}: cannot be read ({exc.strerror})"
    if not head:
        return f"{f}: the file is empty"
    if source == "parquet":
        return None if head.startswith(_PARQUET_MAGIC) else f"{f}: not a parquet file"
    if b"\0" in head:
        return f"{f}: a binary file, not {'JSON' if source == 'json' else 'text'}"
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 4:  # a multi-byte character cut at the sniff boundary is fine
            return f"{f}: not UTF-8 text (byte {exc.start})"
    return None


def problem(source: str, path: str | None) -> str | None:
    """Why `data.path` cannot serve data.source=`source`, or None. The message leads with what is wrong."""
    if not path or not Path(path).exists():
        return f"data.source={source} needs an existing local file or folder"
    files = files_of(source, path)
    if not files:
        return f"the folder holds no {'/'.join(SUFFIXES[source])} files for data.source={source}"
    for f in files:
        why = _file_problem(source, f)
        if why:
            return why if len(files) > 1 else why.split(": ", 1)[1]
    return None
