"""Speculative decoding (workload.draft_model): a small draft model proposes k tokens, the target checks them in
one forward, and greedy acceptance keeps the longest run of proposals the target itself would have chosen, plus
the target's own next token (Leviathan et al. 2023, "Fast Inference from Transformers via Speculative
Decoding"; Chen et al. 2023). With greedy acceptance the output is the target's greedy output token for token,
by construction; the run checks it against a plain greedy decode (`check_equal`), because batched verification
in bf16/fp16 can round differently from one-token steps.

Both models keep a KV cache; after a verify step each is cropped back to the tokens accepted (a negative
`crop` removes that many tokens from transformers' DynamicCache: seen with 5.25, where a positive one is refused).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from harness import models


@dataclass
class Counts:
    """Over every verify step: draft tokens proposed and accepted, and the steps (each emits accepted + 1). A
    request's last step may propose nothing (one token left): a target step, not counted in the acceptance."""

    proposed: int = 0
    accepted: int = 0
    verify_steps: int = 0
    accepted_per_step: list[int] = field(default_factory=list)  # the steps that proposed tokens

    def add(self, proposed: int, accepted: int) -> None:
        self.proposed += proposed
        self.accepted += accepted
        self.verify_steps += 1
        if proposed:
            self.accepted_per_step.append(accepted)

    def __add__(self, other: Counts) -> Counts:
        """Two sets of counts as one (a serving run's requests, each counted on its own)."""
        return Counts(
            self.proposed + other.proposed,
            self.accepted + other.accepted,
            self.verify_steps + other.verify_steps,
            [*self.accepted_per_step, *other.accepted_per_step],
        )

    def figures(self) -> dict[str, Any]:
        """acceptance_rate (accepted / proposed), mean_accepted_tokens (accepted draft tokens per step that
        proposed some; each step emits its accepted tokens plus the target's own) and tokens_per_verify_step (over
        every step); None before any step."""
        drafted = len(self.accepted_per_step)
        return {
            "acceptance_rate": self.accepted / self.proposed if self.proposed else None,
            "mean_accepted_tokens": self.accepted / drafted if drafted else None,
            "tokens_per_verify_step": (self.accepted + self.verify_steps) / self.verify_steps
            if self.verify_steps
            else None,
            "draft_tokens_proposed": self.proposed,
            "draft_tokens_accepted": self.accepted,
            "verify_steps": self.verify_steps,
        }


class Draft:
    """workload.draft_model built beside `target`: its weights by the target's model.weights rule (a preset's
    harness-trained checkpoint where the target's are trained), in the target's dtype, on `device`."""

    def __init__(self, config: Mapping[str, Any], target: torch.nn.Module, device: Any):
        from harness import checkpoints

        dtype = target.get_input_embeddings().weight.dtype  # int8 quantizes linear layers only: the load dtype
        self.cfg = checkpoints.model_config(checkpoints.draft_config(config))
        self.model = models.build(self.cfg, dtype, str(device), config["seed"])
        self.target, self.k = target, config["workload"]["draft_tokens"]

    def describe(self) -> dict[str, Any]:
        """The draft preset, where its weights came from (null: seeded random), its parameters and k."""
        params = models.describe(self.model)["params"]
        return {"draft_model": self.cfg["name"], "draft_path": self.cfg.get("path"), "draft_params": params,
                "draft_tokens": self.k}  # fmt: skip


def _call(model: torch.nn.Module, ids: torch.Tensor, cache: Any) -> tuple[torch.Tensor, Any]:
    """Every position's logits and the KV cache, under the keyword the installed transformers takes."""
    out = model(input_ids=ids, use_cache=True, **{models.cache_keyword(model): cache})
    return out.logits, models.output_cache(out)


def greedy(model: torch.nn.Module, input_ids: torch.Tensor, new_tokens: int) -> list[int]:
    """The model's own greedy continuation (`new_tokens` + 1 tokens, the first from the prefill): the reference."""
    logits, cache = _call(model, input_ids, None)
    token = logits[:, -1:].argmax(-1)
    out = [int(token)]
    for _ in range(new_tokens):
        logits, cache = _call(model, token, cache)
        token = logits[:, -1:].argmax(-1)
        out.append(int(token))
    return out


def steps(target, draft, input_ids, decode_tokens: int, k: int, counts: Counts) -> Iterator[list[int]]:
    """One request (batch 1), step by step: yields [] once both prefills are done, then the prefill's token
    ([first]), then each verify step's emitted tokens (its accepted proposals + the target's own), until
    `decode_tokens` tokens follow the first. `counts` gets every verify step."""
    logits, t_cache = _call(target, input_ids, None)
    _, d_cache = _call(draft, input_ids, None)
    yield []
    out = [int(logits[0, -1].argmax())]
    yield out[:]
    pending = out[:]  # emitted tokens the draft's cache does not hold yet
    while len(out) - 1 < decode_tokens:
        n_prop = min(k, decode_tokens - (len(out) - 1) - 1)  # a step emits at most n_prop + 1 tokens
        proposal: list[int] = []
        feed = torch.tensor([pending], device=input_ids.device)
        for _ in range(n_prop):
            d_logits, d_cache = _call(draft, feed, d_cache)
            proposal.append(int(d_logits[0, -1].argmax()))
            feed = torch.tensor([[proposal[-1]]], device=input_ids.device)
        check = torch.tensor([[out[-1], *proposal]], device=input_ids.device)
        v_logits, t_cache = _call(target, check, t_cache)
        chosen = v_logits[0].argmax(-1).tolist()  # the target's next token after each position
        n = next((i for i, (p, c) in enumerate(zip(proposal, chosen, strict=False)) if p != c), len(proposal))
        if len(proposal) > n:  # the rejected proposals' positions leave the target's cache
            t_cache.crop(-(len(proposal) - n))
        emitted = [*proposal[:n], chosen[n]]
        held = (len(pending) + max(n_prop - 1, 0)) if n_prop else 0  # tokens the draft fed itself this step
        kept_in_draft = min(held, len(pending) + n)  # its cache: pending + accepted proposals, no more
        if held > kept_in_draft:
            d_cache.crop(-(held - kept_in_draft))
        pending = ([*pending, *proposal[:n]][kept_in_draft:] if n_prop else pending) + [chosen[n]]
        out.extend(emitted)
        counts.add(n_prop, n)
        yield emitted


def request(target, draft, input_ids, decode_tokens: int, k: int, timer, counts: Counts, tokens: list | None = None):
    """One request (batch 1), timed: `steps` with a timer mark at each. Returns the marks [start, prefill done,
    first token, verify step 1, ...]; `tokens` gets the output."""
    marks, out = [timer.mark()], []
    for emitted in steps(target, draft, input_ids, decode_tokens, k, counts):
        out.extend(emitted)
        marks.append(timer.mark())
    timer.sync()
    if tokens is not None:
        tokens[:] = out
    return marks


def check_equal(target, draft, input_ids, decode_tokens: int, k: int, timer) -> dict[str, Any]:
    """Speculative output against the target's plain greedy output, token for token (outside the timed window)."""
    spec: list[int] = []
    request(target, draft, input_ids, decode_tokens, k, timer, Counts(), spec)
    ref = greedy(target, input_ids, decode_tokens)
    first = next((i for i, (a, b) in enumerate(zip(spec, ref, strict=True)) if a != b), None)
    return {
        "equal": first is None,
        "tokens_compared": len(ref),
        "first_mismatch_at": first,
        "method": "greedy speculative output vs the target's own greedy decode of the same prompt",
    }
