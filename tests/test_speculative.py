"""Known answers for speculative decoding (harness/speculative.py): acceptance counted on scripted models whose
next token depends only on the position (so a cache cropped wrongly shows as a wrong token), and the output
equal to the target's greedy output token for token, with a real tiny model as its own draft (acceptance 1)."""

from __future__ import annotations

import time
import types

import pytest
import torch

from harness import models, speculative


class _Cache:
    def __init__(self):
        self.n = 0  # positions held

    def crop(self, k: int) -> None:
        assert k < 0, "a negative crop removes tokens"
        self.n += k


class _Scripted(torch.nn.Module):
    """A language model whose next token after position p is next_token(p), whatever the input."""

    def __init__(self, next_token):
        super().__init__()
        self.next_token = next_token

    def forward(self, input_ids, use_cache=True, past_key_values=None):
        cache = past_key_values or _Cache()
        start, length = cache.n, input_ids.shape[1]
        logits = torch.zeros(1, length, 256)
        for i in range(length):
            logits[0, i, self.next_token(start + i)] = 1.0
        cache.n += length
        return types.SimpleNamespace(logits=logits, past_key_values=cache)


class _Clock:
    def mark(self):
        return time.perf_counter()

    def sync(self):
        pass


def f(p: int) -> int:
    return (7 * p + 3) % 256


def test_acceptance_is_counted_per_verify_step():
    target = _Scripted(f)
    draft = _Scripted(lambda p: (f(p) + 1) % 256 if p == 5 else f(p))  # wrong once, at position 5
    counts, out = speculative.Counts(), []
    marks = speculative.request(target, draft, torch.zeros(1, 4, dtype=torch.long), 8, 3, _Clock(), counts, out)
    # step 1 proposes for positions 4, 5, 6 and keeps 1 (+ the target's own); step 2 keeps all 3 (+1);
    # step 3 has 2 tokens left: it proposes 1 and keeps it (+1)
    assert counts.accepted_per_step == [1, 3, 1] and (counts.proposed, counts.accepted) == (7, 5)
    fig = counts.figures()
    assert fig["acceptance_rate"] == pytest.approx(5 / 7) and fig["mean_accepted_tokens"] == pytest.approx(5 / 3)
    assert fig["tokens_per_verify_step"] == pytest.approx(8 / 3)
    assert out == [f(p) for p in range(3, 12)] and len(marks) == 3 + 3  # start, prefill, first token, 3 steps


def test_a_draft_that_is_always_wrong_still_gives_the_targets_output():
    counts, out = speculative.Counts(), []
    speculative.request(_Scripted(f), _Scripted(lambda p: 0), torch.zeros(1, 4, dtype=torch.long), 5, 4, _Clock(),
                        counts, out)  # fmt: skip
    assert out == [f(p) for p in range(3, 9)] and counts.accepted == 0 and counts.verify_steps == 5


def test_a_copy_of_the_target_is_accepted_every_time_and_the_output_is_its_greedy_one():
    cfg = models.preset("tiny", weights="random", num_hidden_layers=1)
    target, draft = (models.build(cfg, torch.float32, "cpu", 0) for _ in range(2))
    ids = torch.randint(0, 256, (1, 8), generator=torch.Generator().manual_seed(0))
    counts = speculative.Counts()
    with torch.inference_mode():
        speculative.request(target, draft, ids, 9, 4, _Clock(), counts)
        checked = speculative.check_equal(target, draft, ids, 9, 4, _Clock())
    assert counts.figures()["acceptance_rate"] == 1.0 and counts.accepted_per_step == [4, 3]  # 5 + 4 tokens
    assert checked["equal"] and checked["tokens_compared"] == 10 and checked["first_mismatch_at"] is None
