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


def _lengths(mean: int, spread: float, n: int, rng: np.random.Generator) -> list[int]:
    """Uniform integers in [mean x (1 - spread), mean x (1 + spread)] (vLLM's --random-range-ratio), >= 1."""
    lo, hi = max(1, int(mean * (1 - spread))), max(1, int(mean * (1 + spread)))
    return [int(x) for x in rng.integers(lo, hi + 1, n)]


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
