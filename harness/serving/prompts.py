"""The requests of a load run: prompts from the offline corpus, input and output lengths drawn as configured."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Request:
    index: int
    prompt_ids: list[int]
    prompt_text: str
    max_tokens: int  # the engine is asked for exactly this many output tokens
    conversation: str | None = None  # a conversation's id (serving.dataset=sharegpt); None for single requests
    turn: int | None = None  # the turn within its conversation, from 0
    prefix: int | None = None  # the shared prefix's index (serving.dataset=shared_prefix)
    messages: tuple[tuple[str, str], ...] | None = None  # (role, content) for serving.api=chat; None: one user turn
    history_turns_dropped: int = 0  # sharegpt: the oldest exchanges left out to fit serving.max_context_tokens
    history_tokens_dropped: int = 0  # ... and the prompt tokens they held


def _lengths(mean: int, spread: float, n: int, rng: np.random.Generator) -> list[int]:
    """Uniform integers in [mean x (1 - spread), mean x (1 + spread)] (vLLM's --random-range-ratio), >= 1."""
    lo, hi = max(1, int(mean * (1 - spread))), max(1, int(mean * (1 + spread)))
    return [int(x) for x in rng.integers(lo, hi + 1, n)]


def encode(text: str, tokenizer: Any = None) -> list[int]:
    """Token ids of a text: the tokenizer's, or its UTF-8 bytes without one (as the corpus stream)."""
    if tokenizer is None:
        return list(text.encode("utf-8"))
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def decode(ids: list[int], tokenizer: Any = None) -> str:
    """The text of token ids (byte-level ids: the bytes; a window may cut a UTF-8 character)."""
    if tokenizer is None:
        return bytes(ids).decode("utf-8", errors="replace")
    return tokenizer.decode(ids)


def windows(lengths: list[int], seed: int, tokenizer: Any = None) -> list[list[int]]:
    """One window of the offline corpus per length, at seeded offsets."""
    from harness import data

    rng = np.random.default_rng(seed)
    stream = data._token_stream(tokenizer)
    longest = max(lengths, default=0)
    if longest >= stream.numel():
        raise ValueError(f"a prompt of {longest} tokens is longer than the prompt corpus ({stream.numel()} tokens)")
    starts = rng.integers(0, stream.numel() - longest - 1, len(lengths))
    return [stream[int(a) : int(a) + n].tolist() for a, n in zip(starts, lengths, strict=True)]


def build(n: int, input_len: int, output_len: int, spread: float, seed: int, tokenizer: Any = None) -> list[Request]:
    """`n` requests; the same seed gives the same prompts and lengths in every run."""
    from harness import data

    rng = np.random.default_rng(seed + 7919)  # not the arrival stream's own generator
    ins, outs = _lengths(input_len, spread, n, rng), _lengths(output_len, spread, n, rng)
    stream = data._token_stream(tokenizer)
    starts = rng.integers(0, stream.numel() - max(ins) - 1, n)
    out = []
    for i in range(n):
        ids = stream[int(starts[i]) : int(starts[i]) + ins[i]].tolist()
        if tokenizer is not None:
            text = tokenizer.decode(ids)
        else:  # byte-level ids: the text is the bytes (a window may cut a UTF-8 character)
            text = bytes(ids).decode("utf-8", errors="replace")
        out.append(Request(i, ids, text, outs[i]))
    return out
