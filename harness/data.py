"""Prompt data: real English text that ships with every CPython (pydoc_data.topics), offline.

Presets are byte-level: token id = UTF-8 byte (vocab >= 256). A local pretrained model with its own
tokenizer in its directory gets the same text through that tokenizer.
"""

from __future__ import annotations

import functools
from typing import Any

import torch


@functools.lru_cache(maxsize=1)
def corpus_text() -> str:
    from pydoc_data.topics import topics

    return "\n\n".join(topics[k] for k in sorted(topics))


def _token_stream(tokenizer: Any = None) -> torch.Tensor:
    text = corpus_text()
    if tokenizer is None:
        return torch.frombuffer(bytearray(text.encode("utf-8")), dtype=torch.uint8).to(torch.long)
    return torch.tensor(tokenizer(text, add_special_tokens=False)["input_ids"], dtype=torch.long)


def prompt_ids(batch_size: int, seq_len: int, seed: int, tokenizer: Any = None) -> torch.Tensor:
    """A (batch_size, seq_len) tensor of token ids: windows of the corpus at seeded random offsets."""
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
