"""Small sample files of every dataset format serving.dataset reads, made here from the offline corpus
(no download): a ShareGPT-style conversation list, an Azure-style trace (CSV) and a Mooncake-style trace
(JSON lines). The tests use them; a user can start from them:

    python -m harness.serving.samples DIR      # writes DIR/conversations.json, azure_trace.csv, mooncake_trace.jsonl
"""

from __future__ import annotations

import csv
import json
import sys
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np

# the arrival offsets (s) of the sample traces: known answers for the replayer's schedule
TRACE_OFFSETS_S = (0.0, 0.05, 0.12, 0.2, 0.21, 0.35, 0.5, 0.52)


def _sentences(n: int, seed: int) -> list[str]:
    """`n` short pieces of English from pydoc_data.topics (ships with CPython)."""
    from pydoc_data.topics import topics

    words = " ".join(topics[k] for k in sorted(topics)[:40]).split()
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        start, length = int(rng.integers(0, len(words) - 40)), int(rng.integers(4, 14))
        out.append(" ".join(words[start : start + length]))
    return out


def conversations(n: int = 4, turns: tuple[int, ...] = (3, 2, 1, 2), seed: int = 0) -> list[dict]:
    """ShareGPT-style conversations: {"id", "conversations": [{"from": "human"|"gpt", "value"}]}."""
    texts = iter(_sentences(2 * sum(turns[i % len(turns)] for i in range(n)), seed))
    out = []
    for i in range(n):
        msgs = []
        for _ in range(turns[i % len(turns)]):
            msgs += [{"from": "human", "value": next(texts)}, {"from": "gpt", "value": next(texts)}]
        out.append({"id": f"conv{i}", "conversations": msgs})
    return out


def _lengths(n: int, seed: int) -> list[tuple[int, int]]:
    rng = np.random.default_rng(seed)
    return [(int(rng.integers(8, 40)), int(rng.integers(2, 8))) for _ in range(n)]


def write_azure(path: Path, offsets: tuple[float, ...] = TRACE_OFFSETS_S, seed: int = 1) -> Path:
    """An Azure LLM inference trace: TIMESTAMP (a date-time, 7-digit fraction), ContextTokens, GeneratedTokens."""
    t0 = datetime(2023, 11, 16, 18, 15, 46)
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["TIMESTAMP", "ContextTokens", "GeneratedTokens"])
        for dt, (n_in, n_out) in zip(offsets, _lengths(len(offsets), seed), strict=True):
            stamp = (t0 + timedelta(seconds=dt)).strftime("%Y-%m-%d %H:%M:%S.%f") + "0"
            w.writerow([stamp, n_in, n_out])
    return path


def write_mooncake(path: Path, offsets: tuple[float, ...] = TRACE_OFFSETS_S, seed: int = 2) -> Path:
    """A Mooncake trace's fields: timestamp (ms), input_length, output_length, hash_ids (unused here)."""
    with open(path, "w") as f:
        for i, (dt, (n_in, n_out)) in enumerate(zip(offsets, _lengths(len(offsets), seed), strict=True)):
            row = {"timestamp": round(dt * 1000), "input_length": n_in, "output_length": n_out, "hash_ids": [i]}
            f.write(json.dumps(row) + "\n")
    return path


def write_all(folder: Path) -> dict[str, Path]:
    """Every sample into `folder`; {kind: path}."""
    folder.mkdir(parents=True, exist_ok=True)
    conv = folder / "conversations.json"
    conv.write_text(json.dumps(conversations(), indent=1))
    return {
        "sharegpt": conv,
        "azure": write_azure(folder / "azure_trace.csv"),
        "mooncake": write_mooncake(folder / "mooncake_trace.jsonl"),
    }


if __name__ == "__main__":
    for kind, p in write_all(Path(sys.argv[1] if len(sys.argv) > 1 else "serving-samples")).items():
        print(f"{kind}: {p}")
