"""Prompt data: real English text that ships with every CPython (pydoc_data.topics), offline.

Presets are byte-level: token id = UTF-8 byte (vocab >= 256). A local pretrained model with its own
tokenizer in its directory gets the same text through that tokenizer.
"""

from __future__ import annotations

import functools
import json
from typing import Any

import torch

from harness import datafiles


@functools.lru_cache(maxsize=1)
def corpus_text() -> str:
    from pydoc_data.topics import topics

    return "\n\n".join(topics[k] for k in sorted(topics))


# The pydoc split every run uses by default (DataConfig's defaults): prompts come from its training side, so
# the held-out side that quality is measured on is never a timed prompt.
PYDOC_SPLIT = {"source": "pydoc", "text_column": "text", "eval_fraction": 0.1, "split_seed": 1234}


def _token_stream(tokenizer: Any = None) -> torch.Tensor:
    train_docs, _, _ = load_documents(PYDOC_SPLIT)
    return encode(train_docs, tokenizer)


def prompt_ids(batch_size: int, seq_len: int, seed: int, tokenizer: Any = None) -> torch.Tensor:
    """A (batch_size, seq_len) tensor of token ids: windows of the pydoc training split at seeded offsets."""
    stream = _token_stream(tokenizer)
    if stream.numel() <= seq_len:
        raise ValueError(f"seq_len={seq_len} is longer than the prompt corpus ({stream.numel()} tokens)")
    g = torch.Generator().manual_seed(seed)
    starts = torch.randint(0, stream.numel() - seq_len, (batch_size,), generator=g)
    return torch.stack([stream[s : s + seq_len] for s in starts.tolist()])


def local_tokenizer(path: str | None) -> Any:
    """The tokenizer saved beside a local model, or None (byte-level) when there is none."""
    if not path:
        return None
    try:
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(path, local_files_only=True)
    except Exception:
        return None


# ---- training text -------------------------------------------------------------------------------


def load_documents(data_cfg: dict) -> tuple[list[str], list[str], dict]:
    """(train documents, held-out documents, description) through the `datasets` library, offline.

    The split is by document, fixed by data.split_seed, so every run holds out the same text.
    """
    keep = ("source", "path", "name", "split", "text_column", "eval_fraction", "split_seed")
    train, held_out, info = _documents(json.dumps({k: data_cfg.get(k) for k in keep}, sort_keys=True))
    return list(train), list(held_out), dict(info)


@functools.lru_cache(maxsize=4)
def _documents(spec: str) -> tuple[tuple[str, ...], tuple[str, ...], dict]:
    from datasets import Dataset, load_dataset

    data_cfg = json.loads(spec)

    src = data_cfg["source"]
    if src == "pydoc":
        from pydoc_data.topics import topics

        ds = Dataset.from_dict({"text": [topics[k] for k in sorted(topics)]})
        description = "pydoc_data.topics: the Python documentation topics that ship with CPython"
    elif src in ("text", "json", "parquet"):
        files = [str(f) for f in datafiles.files_of(src, data_cfg["path"])]  # a folder: its matching files
        ds = load_dataset(src, data_files=files, split="train")
        kind = "folder" if len(files) > 1 or files[0] != data_cfg["path"] else "file"
        description = f"local {src} {kind} {data_cfg['path']}"
    else:  # hf: only what the local datasets cache already holds (HF_DATASETS_OFFLINE=1 is set by the launcher)
        ds = load_dataset(data_cfg["name"], split=data_cfg["split"])
        description = f"datasets cache: {data_cfg['name']} [{data_cfg['split']}]"
    column = data_cfg["text_column"]
    if column not in ds.column_names:
        raise ValueError(f"data.text_column={column} is not a column of {description}: {ds.column_names}")
    split = ds.train_test_split(test_size=data_cfg["eval_fraction"], seed=data_cfg["split_seed"], shuffle=True)
    train, held_out = split["train"][column], split["test"][column]
    info = {"source": src, "description": description, "train_documents": len(train), "eval_documents": len(held_out)}
    return tuple(train), tuple(held_out), info


def encode(texts: list[str], tokenizer: Any = None) -> torch.Tensor:
    """One long token stream: documents joined by a blank line; bytes unless a tokenizer is given."""
    text = "\n\n".join(t for t in texts if t)
    if tokenizer is None:
        return torch.frombuffer(bytearray(text.encode("utf-8")), dtype=torch.uint8).to(torch.long)
    return torch.tensor(tokenizer(text, add_special_tokens=False)["input_ids"], dtype=torch.long)


def training_streams(data_cfg: dict, seed: int, tokenizer: Any = None) -> tuple[torch.Tensor, torch.Tensor, dict]:
    """(train stream, eval stream, info) of token ids; `synthetic` gives seeded random bytes, labelled so."""
    if data_cfg["source"] == "synthetic":
        g = torch.Generator().manual_seed(seed)
        train, held_out = (
            torch.randint(0, 256, (2_000_000,), generator=g),
            torch.randint(0, 256, (200_000,), generator=g),
        )
        info = {"source": "synthetic", "description": "SYNTHETIC random bytes: for speed only, no quality meaning"}
    else:
        train_docs, eval_docs, info = load_documents(data_cfg)
        train, held_out = encode(train_docs, tokenizer), encode(eval_docs, tokenizer)
    info.update(
        synthetic=data_cfg["source"] == "synthetic",
        tokenizer="local tokenizer" if tokenizer is not None else "bytes (UTF-8, vocab 256)",
        train_tokens=int(train.numel()),
        eval_tokens=int(held_out.numel()),
    )
    return train, held_out, info


class TrainBatches:
    """Seeded random windows of the train stream: the same order for every precision of one seed."""

    def __init__(self, stream: torch.Tensor, batch_size: int, seq_len: int, seed: int, device: str):
        if stream.numel() <= seq_len + 1:
            raise ValueError(f"seq_len={seq_len} is longer than the training text ({stream.numel()} tokens)")
        self.stream, self.batch_size, self.seq_len, self.device = stream, batch_size, seq_len, device
        self.generator = torch.Generator().manual_seed(seed)

    def next(self) -> torch.Tensor:
        starts = torch.randint(0, self.stream.numel() - self.seq_len, (self.batch_size,), generator=self.generator)
        return torch.stack([self.stream[s : s + self.seq_len] for s in starts.tolist()]).to(self.device)


def eval_batches(stream: torch.Tensor, n_batches: int, batch_size: int, seq_len: int, device: str) -> list:
    """Fixed held-out batches: evenly spaced windows over the eval stream, identical in every run."""
    windows = n_batches * batch_size
    if stream.numel() < seq_len + windows:
        raise ValueError(f"the held-out text ({stream.numel()} tokens) is too short for {windows} windows of {seq_len}")
    starts = torch.linspace(0, stream.numel() - seq_len, windows).long().tolist()
    rows = torch.stack([stream[s : s + seq_len] for s in starts])
    return [rows[i * batch_size : (i + 1) * batch_size].to(device) for i in range(n_batches)]
