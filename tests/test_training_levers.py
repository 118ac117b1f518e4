"""The training levers (workload.grad_accum_steps, workload.grad_checkpointing): known answers without a
subprocess — the same global batch gives the same weights, checkpointing keeps fewer activations, the key of a
run at the defaults is the one from before the levers, the memory model's arithmetic, labels."""

from __future__ import annotations

import contextlib
import math

import pytest
import torch
from composed import resolved, typed

from harness import memory_model, models, results, summary, validation
from harness.backends.hf import HFEager
from harness.backends.module import accumulated_step  # the train step's arithmetic (HFEager.train_step's)
from harness.errors import ConfigError
from harness.scenarios import training


def _tiny(seq: int = 32) -> torch.nn.Module:
    cfg = {**models.preset("tiny"), "max_position_embeddings": max(256, seq)}
    return models.build(cfg, torch.float32, "cpu", 0).train()


def _schedule() -> training.Schedule:
    return training.Schedule(4, 0, 3e-3, 1, 0.1, 1.0, 10, None, 1)


def _train(accum: int, batches: list[torch.Tensor], seen: list[int], sgd: bool = False) -> torch.nn.Module:
    model = _tiny()
    model.get_input_embeddings().register_forward_hook(lambda m, i, o: seen.append(o.shape[0]))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5) if sgd else training._optimizer(model, _schedule())

    def loss_of(part):
        return model(input_ids=part[0], labels=part[0]).loss

    for x in batches:
        loss = accumulated_step(model, optimizer, None, 1e9 if sgd else 1.0, [x], loss_of, accum)
        assert loss.dim() == 0
    return model


def _max_diff(a: torch.nn.Module, b: torch.nn.Module) -> float:
    return max((p - q).abs().max().item() for p, q in zip(a.parameters(), b.parameters(), strict=True))


@pytest.mark.parametrize("sgd", [False, True])
def test_accumulation_gives_the_same_weights_as_the_whole_batch(sgd):
    """Known answer: N=1 and N=2 over the same global batches and order give (nearly) equal parameters in fp32.
    AdamW (the runs' optimizer) is blind to the gradient's scale; plain SGD is not, so it also proves the 1/N."""
    g = torch.Generator().manual_seed(0)
    batches = [torch.randint(0, 256, (4, 32), generator=g) for _ in range(3)]
    seen1, seen2 = [], []
    one, two = _train(1, batches, seen1, sgd), _train(2, batches, seen2, sgd)
    assert seen1 == [4, 4, 4] and seen2 == [2] * 6  # the micro-batches really ran
    moved = _max_diff(one, _tiny())
    assert moved > 1e-3  # three steps moved the weights: equality below is not equality of the start
    # float noise only: the two halves' gradients are summed in another order (AdamW divides small gradients by
    # their own small scale, so its weights carry more of that noise than SGD's)
    assert _max_diff(one, two) < (1e-2 if not sgd else 1e-4) * moved


def test_accumulated_loss_is_the_global_batch_mean():
    model = _tiny()
    x = torch.randint(0, 256, (4, 32), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        whole = model(input_ids=x, labels=x).loss.item()
    opt = training._optimizer(model, _schedule())
    loss = accumulated_step(model, opt, None, 1.0, [x], lambda p: model(input_ids=p[0], labels=p[0]).loss, 4)
    assert loss.item() == pytest.approx(whole, rel=1e-5)


class _FakeDDP(torch.nn.Module):
    """DDP's surface that accumulated_step uses: forward and no_sync (which records when it was entered)."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.ones(3))
        self.synced: list[bool] = []
        self._sync = True

    @contextlib.contextmanager
    def no_sync(self):
        self._sync = False
        try:
            yield
        finally:
            self._sync = True

    def forward(self, x):
        self.synced.append(self._sync)
        return (x * self.w).sum()


def test_ddp_skips_the_all_reduce_on_every_micro_batch_but_the_last():
    m = _FakeDDP()
    opt = torch.optim.SGD(m.parameters(), lr=0.1)
    x = torch.arange(12.0).reshape(4, 3)
    accumulated_step(m, opt, None, 1e9, [x], lambda p: m(p[0]), 4)
    assert m.synced == [False, False, False, True]
    # the step's gradient was the global batch's: the mean-of-sums over 4 micro-batches = column sums / 4
    assert m.w.tolist() == pytest.approx([1 - 0.1 * 18 / 4, 1 - 0.1 * 22 / 4, 1 - 0.1 * 26 / 4])


def _saved_bytes(model: torch.nn.Module, x: torch.Tensor, **kw) -> int:
    """Bytes of the tensors the autograd graph keeps for the backward pass of one training forward."""
    total = []

    def pack(t):
        total.append(t.numel() * t.element_size())
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = model(input_ids=x, labels=x, **kw).loss
    loss.backward()
    return sum(total)


def test_checkpointing_keeps_fewer_activations_and_the_same_gradients():
    x = torch.randint(0, 256, (4, 128), generator=torch.Generator().manual_seed(2))  # activations dominate
    plain, ckpt = _tiny(128), _tiny(128)
    assert training.levers(HFEager.around(ckpt), {"grad_checkpointing": True}, 4) == {
        "grad_accum_steps": 1,
        "micro_batch_size": 4,
        "grad_checkpointing": True,
        "checkpointed_layers": 4,
    }
    kept_plain, kept_ckpt = _saved_bytes(plain, x), _saved_bytes(ckpt, x, use_cache=False)
    assert kept_ckpt < 0.5 * kept_plain, (kept_ckpt, kept_plain)
    for p, q in zip(plain.parameters(), ckpt.parameters(), strict=True):  # recomputed, not changed
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-4, atol=1e-6)


def test_levers_at_their_defaults_touch_nothing():
    model = _tiny()
    applied = training.levers(HFEager.around(model), {}, 8)
    assert applied == {
        "grad_accum_steps": 1,
        "micro_batch_size": 8,
        "grad_checkpointing": False,
        "checkpointed_layers": 0,
    }
    assert not any(getattr(m, "gradient_checkpointing", False) for m in model.modules())


@pytest.mark.parametrize(
    "overrides, expected",
    [
        (("workload.grad_accum_steps=3",), "workload.grad_accum_steps=3 is not valid: must divide batch_size=8 "
         "(choose one of 1, 2, 4, 8)"),
        (("workload.grad_accum_steps=0",), "workload.grad_accum_steps=0 is not valid: must divide batch_size=8"),
        (("workload.grad_accum_steps=32", "batch_size=16"), "must divide batch_size=16 (choose one of 1, 2, 4, 8, 16)"),
    ],
)  # fmt: skip
def test_accumulation_must_divide_the_batch(overrides, expected):
    with pytest.raises(ConfigError) as err:
        validation.validate(typed("workload=training", *overrides))
    assert expected in str(err.value) and str(err.value).startswith("workload.grad_accum_steps=")
    validation.validate(typed("workload=training", "workload.grad_accum_steps=4"))  # a divisor passes
    with pytest.raises(ConfigError, match="workload.grad_accum_steps=3 is not valid: must divide batch_size=16"):
        validation.validate(typed("workload=classification", "workload.grad_accum_steps=3"))


# computed with harness.results at commit 5e07a75, before the levers existed: a run at their defaults keeps
# its key, config hash and folder
BEFORE_LEVERS = {
    ("workload=training",): (
        "workload=training model=tiny precision=fp32 batch_size=8 seq_len=128 max_steps=100 target_eval_loss=None "
        "data=pydoc gpus=1 seed=0 device=auto arch=2d6a5c4a",
        "75ceea47",
    ),
    ("workload=classification",): (
        "workload=classification model=tiny precision=fp32 batch_size=16 seq_len=128 max_steps=60 "
        "target_accuracy=None data=docstrings init=random finetune=full gpus=1 seed=0 device=auto arch=2d6a5c4a",
        "89c47257",
    ),
    ("workload=distill",): (
        "workload=distill model=tiny precision=fp32 batch_size=16 seq_len=128 max_steps=60 target_accuracy=None "
        "data=docstrings init=random finetune=full teacher=small temperature=2.0 alpha=0.5 gpus=1 seed=0 "
        "device=auto arch=2d6a5c4a",
        "071c550c",
    ),
    (): (
        "workload=inference model=tiny precision=fp32 batch_size=1 seq_len=128 decode_tokens=32 gpus=1 seed=0 "
        "device=auto arch=f4c879b7",
        "bfa7b48b",
    ),
}


@pytest.mark.parametrize("overrides", list(BEFORE_LEVERS))
def test_a_run_at_the_defaults_keeps_its_key_from_before_the_levers(overrides):
    # inference's schema has no levers (an override of them is refused): its key and hash at the defaults
    levers = ("workload.grad_accum_steps=1", "workload.grad_checkpointing=false") if overrides else ()
    cfg = resolved(*overrides, *levers)
    key, digest = BEFORE_LEVERS[overrides]
    assert (results.canonical_key(cfg), results.config_hash(cfg)) == (key, digest)
    assert results.run_slug(cfg).endswith(f"-g1-s0-auto-{digest}") and "-ga" not in results.run_slug(cfg)


def test_a_lever_away_from_its_default_is_another_run():
    base = resolved("workload=training")
    accum = resolved("workload=training", "workload.grad_accum_steps=2")
    ckpt = resolved("workload=training", "workload.grad_checkpointing=true")
    fields = results.key_fields(accum)
    assert fields["grad_accum_steps"] == 2 and "grad_checkpointing" not in fields
    assert results.key_fields(ckpt)["grad_checkpointing"] is True
    keys = {results.canonical_key(c) for c in (base, accum, ckpt)}
    hashes = {results.config_hash(c) for c in (base, accum, ckpt)}
    assert len(keys) == len(hashes) == 3
    assert "-steps100-ga2-g1-" in results.run_slug(accum) and "-steps100-ckpt-g1-" in results.run_slug(ckpt)
    both = resolved("workload=classification", "workload.grad_accum_steps=4", "workload.grad_checkpointing=true")
    assert "-random-full-ga4-ckpt-g1-" in results.run_slug(both)


def test_labels_show_the_levers():
    f = results.key_fields(
        resolved("workload=training", "workload.grad_accum_steps=4", "workload.grad_checkpointing=true")
    )
    assert summary.label(f) == "tiny fp32 bs=8 seq=128 gpus=1 accum=4 ckpt"
    assert summary.label(results.key_fields(resolved("workload=training"))) == "tiny fp32 bs=8 seq=128 gpus=1"
    # a report row: absent fields are None or NaN, counts floats
    row = {**results.key_fields(resolved("workload=training")), "grad_accum_steps": 2.0, "grad_checkpointing": math.nan}
    assert summary.label(row) == "tiny fp32 bs=8 seq=128 gpus=1 accum=2"
    assert summary.training_label({"grad_accum_steps": math.nan, "grad_checkpointing": True}) == " ckpt"


def test_memory_model_accumulation_and_checkpointing_known_answers():
    """tiny (d 128, I 512, 4 layers, 4 heads, V 256), batch 8, seq 128, fp32 on CPU."""
    d, i, layers, heads, vocab, seq = 128, 512, 4, 4, 256, 128
    layer = (10 * d + 4 * i) * 4 + 2 * heads * seq * 4  # one layer's kept activations per token (bytes)
    logits = 2 * vocab * 4
    plain = memory_model.predict(resolved("workload=training"))
    assert plain.activations_bytes == 8 * seq * (layers * layer + logits)
    accum = memory_model.predict(resolved("workload=training", "workload.grad_accum_steps=4"))
    assert accum.activations_bytes == 2 * seq * (layers * layer + logits)  # one micro-batch of 2
    assert (accum.weights_bytes, accum.gradients_bytes, accum.optimizer_bytes) == (
        plain.weights_bytes,
        plain.gradients_bytes,
        plain.optimizer_bytes,
    )
    ckpt = memory_model.predict(resolved("workload=training", "workload.grad_checkpointing=true"))
    # every layer's input (the fp32 residual stream) plus one layer recomputed at a time, plus the logits
    assert ckpt.activations_bytes == 8 * seq * (layers * d * 4 + layer + logits)
    both = memory_model.predict(
        resolved("workload=training", "workload.grad_accum_steps=2", "workload.grad_checkpointing=true")
    )
    assert both.activations_bytes == 4 * seq * (layers * d * 4 + layer + logits)
    assert both.total_bytes < ckpt.total_bytes < plain.total_bytes
