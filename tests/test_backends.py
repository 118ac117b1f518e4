"""The backends' methods (harness/backends/base.py), which every scenario calls instead of the module: known
answers against the module called directly, as the scenarios did before the methods existed."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from harness import distill, models
from harness.backends.base import GENERATE, TRAIN_STEP
from harness.backends.compiled import HFCompiled
from harness.backends.hf import HFEager
from harness.backends.hf_classifier import HFClassifier
from harness.backends.module import Optimizing, accumulated_step, autocast
from harness.backends.remote import RemoteEngine
from harness.errors import UnsupportedError

TINY = models.preset("tiny", num_hidden_layers=2)


def _lm(seed: int = 0) -> torch.nn.Module:
    return models.build(TINY, torch.float32, "cpu", seed).train()


def _classifier(seed: int = 0) -> torch.nn.Module:
    return models.build_classifier({**TINY, "num_labels": 3}, torch.float32, "cpu", seed).train()


def _sgd(params) -> Optimizing:
    return Optimizing(torch.optim.SGD(list(params), lr=0.5), None, 1.0, None, "cpu")


def _batches(n: int = 3, rows: int = 4) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return [torch.randint(1, 256, (rows, 16), generator=g) for _ in range(n)]


def _same(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    return all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))


@pytest.mark.parametrize("accum", [1, 2])
def test_the_train_step_is_the_step_the_training_scenario_took_before_the_method(accum):
    """Bit for bit: HFEager.train_step against accumulated_step over the closure training.run built before."""
    before, through = _lm(), HFEager.around(_lm())
    opt_before = torch.optim.SGD(before.parameters(), lr=0.5)
    opt = _sgd(through.parameters())

    def lm_loss(part):
        with autocast("cpu", None):
            return before(input_ids=part[0], labels=part[0]).loss

    for x in _batches():
        old = accumulated_step(before, opt_before, None, 1.0, [x], lm_loss, accum)
        new = through.train_step([x], opt, accum)
        assert torch.equal(old, new)
    assert _same(before, through.model)


def test_accumulation_through_the_backend_gives_the_whole_batchs_weights():
    """Known answer under SGD (which sees the gradient's scale): N=1 and N=2 over the same batches agree."""
    one, two = HFEager.around(_lm()), HFEager.around(_lm())
    opt1, opt2 = _sgd(one.parameters()), _sgd(two.parameters())
    for x in _batches():
        one.train_step([x], opt1, 1)
        two.train_step([x], opt2, 2)
    moved = max((p - q).abs().max().item() for p, q in zip(one.parameters(), _lm().parameters(), strict=True))
    diff = max((p - q).abs().max().item() for p, q in zip(one.parameters(), two.parameters(), strict=True))
    assert moved > 1e-3 and diff < 1e-4 * moved


def test_checkpointing_through_the_backend_asks_for_no_cache_and_keeps_the_loss():
    plain, ckpt = HFEager.around(_lm()), HFEager.around(_lm())
    assert ckpt.checkpoint_layers() == 2 and ckpt.checkpointed and not plain.checkpointed
    x = _batches(1)[0]
    loss_plain = plain.train_step([x], _sgd(plain.parameters()))
    loss_ckpt = ckpt.train_step([x], _sgd(ckpt.parameters()))
    torch.testing.assert_close(loss_plain, loss_ckpt)

    class NoLayers(torch.nn.Linear):
        def gradient_checkpointing_enable(self, **kwargs):
            pass

    with pytest.raises(ValueError, match="NoLayers has no layer that checkpoints"):
        HFEager.around(NoLayers(2, 2)).checkpoint_layers()


def test_the_classifier_step_and_a_loss_over_its_logits_are_those_of_before():
    """Classification's loss (the head's own) and distill's (a loss over the class logits, outside autocast)."""
    ids = torch.randint(1, 256, (4, 16), generator=torch.Generator().manual_seed(1))
    mask, y, idx = (ids != 0).long(), torch.tensor([0, 1, 2, 1]), torch.arange(4)
    soft = torch.randn(4, 3, generator=torch.Generator().manual_seed(2))
    for custom in (False, True):
        before, through = _classifier(), HFClassifier.around(_classifier())
        opt_before = torch.optim.SGD(before.parameters(), lr=0.5)

        def old_loss(part, custom=custom, before=before):
            p_ids, p_mask, p_y, p_idx = part
            if not custom:
                return before(input_ids=p_ids, attention_mask=p_mask, labels=p_y).loss
            logits = before(input_ids=p_ids, attention_mask=p_mask).logits
            return distill.loss(logits, soft[p_idx], p_y, 2.0, 0.5)

        new_loss = (lambda logits, part: distill.loss(logits, soft[part[3]], part[2], 2.0, 0.5)) if custom else None
        old = accumulated_step(before, opt_before, None, 1.0, [ids, mask, y, idx], old_loss, 2)
        new = through.train_step([ids, mask, y, idx], _sgd(through.parameters()), 2, new_loss)
        assert torch.equal(old, new) and _same(before, through.model)
    plain = F.cross_entropy(through.classify(ids, mask).float(), y)
    assert plain.item() > 0 and through.classify(ids, mask).shape == (4, 3)


def test_generate_is_the_greedy_continuation_without_a_cache():
    """Known answer: each token the argmax of a whole forward over the prompt and the tokens so far (no cache,
    no stop token: the harness times a fixed count; transformers' generate would stop at or suppress eos)."""
    backend = HFEager.around(models.build(TINY, torch.float32, "cpu", 0))
    ids = torch.randint(1, 256, (2, 8), generator=torch.Generator().manual_seed(3))
    with torch.inference_mode():
        ours = backend.generate(ids, 5)
        x = ids
        for _ in range(5):
            x = torch.cat([x, backend.model(input_ids=x, use_cache=False).logits[:, -1:].argmax(-1)], 1)
    assert ours.shape == (2, 5) and torch.equal(ours, x[:, ids.shape[1] :])


def test_mode_parameters_copy_context_and_save(tmp_path):
    backend = HFEager.around(_lm())
    backend.set_training(False)
    assert not backend.training and not backend.model.training
    twin = backend.copy()
    assert twin.model is not backend.model and _same(twin.model, backend.model)
    assert len(list(backend.parameters())) == len(list(backend.model.parameters()))
    assert backend.context_length() == TINY["max_position_embeddings"]
    saved = backend.save(tmp_path)
    assert (tmp_path / "checkpoint" / "model.safetensors").stat().st_size == saved["size_bytes"]


def test_backends_without_a_capability_say_so():
    compiled, remote = HFCompiled(), RemoteEngine()
    assert TRAIN_STEP not in compiled.capabilities and GENERATE not in compiled.capabilities
    with pytest.raises(UnsupportedError, match="backend hf-compile has no train_step"):
        compiled.train_step([], None)
    with pytest.raises(UnsupportedError, match="backend hf-compile has no generate"):
        compiled.generate(torch.zeros(1, 1, dtype=torch.long), 1)
    with pytest.raises(UnsupportedError, match="backend remote has no train_step: the weights are served elsewhere"):
        remote.train_step([], None)
    with pytest.raises(UnsupportedError, match="backend remote has no classify"):
        remote.classify(None, None)
