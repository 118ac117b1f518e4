"""Quality beside speed: a run's outputs against the fp32 reference of the same model and inputs.

MLPerf Inference counts a low-precision result only when its quality holds at >= 99 % of the fp32
reference (e.g. its rules for closed-division accuracy targets); a fast int8 run that changes the answers
is not a win. Run after the timed window, never inside it, so it costs no measured time.

Figures (docs/results.md, `quality`):
- next-token agreement: the share of prompt positions whose argmax token equals the reference's;
- KL(ref || run) of the next-token distributions, in nats, mean and max over the prompt positions;
- perplexity on held-out real text (pydoc_data.topics) for trained weights (`model.path`) only: a
  random-weight preset predicts noise, so its perplexity says nothing about quality.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F

from harness import data, models

METHOD = (
    "argmax agreement and KL(ref || run) of the next-token distributions over every prompt position, "
    "reference = the same weights in fp32 on the same prompt"
)
RANDOM_WEIGHTS_NOTE = (
    "random-weight preset: perplexity is not meaningful; its near-uniform outputs make argmax agreement a "
    "strict test (tiny logit margins)"
)
_EVAL_WINDOW = 256  # tokens per perplexity window (capped by the model's context)


# pragma: no mutate start  (model-running code; the metric functions are compare and relative_quality)
def full_logits(model: torch.nn.Module, ids: torch.Tensor) -> torch.Tensor:
    """Logits for every position of `ids`, as float64 on the CPU: (batch, seq, vocab)."""
    with torch.inference_mode():
        return model(input_ids=ids, use_cache=False).logits.to("cpu", torch.float64)


# pragma: no mutate end
def compare(ref: torch.Tensor, run: torch.Tensor) -> dict[str, Any]:
    """Agreement (0..1) and KL(ref || run) in nats between two logit tensors of the same shape."""
    ref_lp, run_lp = ref.log_softmax(-1), run.log_softmax(-1)
    # KL(P||Q) = sum P (log P - log Q); clamped at 0: rounding can leave -1e-17 where P == Q
    kl = F.kl_div(run_lp, ref_lp, log_target=True, reduction="none").sum(-1).clamp_min(0.0)
    agree = (ref.argmax(-1) == run.argmax(-1)).to(torch.float64)
    return {
        "positions": int(agree.numel()),
        "next_token_agreement": float(agree.mean()),
        "kl_divergence_nats_mean": float(kl.mean()),
        "kl_divergence_nats_max": float(kl.max()),
    }


# pragma: no mutate start
def eval_ids(tokenizer: Any, n_tokens: int, window: int) -> torch.Tensor:
    """Held-out text as (windows, window) token ids: the start of pydoc_data.topics, no random offset."""
    text = data.corpus_text()[: max(4096, 16 * n_tokens)]  # enough text for n_tokens; no need to tokenize all
    if tokenizer is None:  # byte-level, as the prompts of presets
        stream = torch.frombuffer(bytearray(text.encode("utf-8")), dtype=torch.uint8).to(torch.long)
    else:
        stream = torch.tensor(tokenizer(text, add_special_tokens=False)["input_ids"], dtype=torch.long)
    count = max(1, min(n_tokens, stream.numel()) // window)
    return stream[: count * window].view(count, window)


def perplexity(model: torch.nn.Module, windows: torch.Tensor, device: Any) -> float:
    """exp(mean next-token cross-entropy) over every predicted token of every window."""
    nll, count = 0.0, 0
    with torch.inference_mode():
        for row in windows:
            ids = row.unsqueeze(0).to(device)
            logits = model(input_ids=ids, use_cache=False).logits[0, :-1].float()
            nll += float(F.cross_entropy(logits, ids[0, 1:], reduction="sum"))
            count += ids.shape[1] - 1
    return math.exp(nll / count)


def _reference_does_not_fit(model: torch.nn.Module, config: Mapping[str, Any], device: Any) -> str | None:
    """Why an fp32 copy of the model cannot be built beside it, or None when it can."""
    need = 4 * sum(p.numel() for p in model.parameters())  # bytes of fp32 weights (int8 packed: a lower bound)
    limit = config.get("memory_limit_bytes")
    if limit and torch.device(device).type == "cpu":
        import psutil

        rss = psutil.Process().memory_info().rss
        if rss + need > limit:
            return f"an fp32 reference (~{need} bytes) beside the run ({rss} bytes) exceeds memory_limit_bytes={limit}"
    if torch.device(device).type == "cuda":
        free, _ = torch.cuda.mem_get_info(torch.device(device))
        if need > free:
            return f"an fp32 reference (~{need} bytes) does not fit in the {free} bytes free on the GPU"
    return None


def evaluate(
    model: torch.nn.Module, config: Mapping[str, Any], ids: torch.Tensor, tokenizer: Any, device: Any
) -> dict[str, Any]:
    """The run's `quality` section: figures against the fp32 reference; never raises."""
    qcfg = config.get("quality") or {}
    floor = float(qcfg.get("floor", 0.99))
    prec = config["precision"]["name"]
    pretrained = bool(config["model"].get("path"))
    section: dict[str, Any] = {
        "status": "ok",
        "reason": None,
        "method": METHOD,
        "reference": "self: this run is fp32" if prec == "fp32" else "fp32 build of the same weights",
        "weights": "pretrained" if pretrained else f"random (seed {config['seed']})",
        "floor": floor,
    }
    if not qcfg.get("enabled", True):
        return {**section, "status": "skipped", "reason": "quality.enabled=false"}
    try:
        run_logits = full_logits(model, ids)
        windows = None
        if pretrained:
            ctx = getattr(model.config, "max_position_embeddings", None) or _EVAL_WINDOW
            windows = eval_ids(tokenizer, int(qcfg.get("eval_tokens", 1024)), min(_EVAL_WINDOW, ctx))
            run_ppl = perplexity(model, windows, device)
        if prec == "fp32":  # the run is its own reference: identical by definition, not by measurement
            ref_logits, ref_ppl = run_logits, (run_ppl if pretrained else None)
        else:
            reason = _reference_does_not_fit(model, config, device)
            if reason:
                return {**section, "status": "skipped", "reason": reason}
            reference = models.build(config["model"], torch.float32, device, config["seed"])
            ref_logits = full_logits(reference, ids)
            ref_ppl = perplexity(reference, windows, device) if pretrained else None
            del reference
        section.update(compare(ref_logits, run_logits))
    except Exception as exc:  # noqa: BLE001 - the speed figures stand; the quality check is recorded as failed
        return {**section, "status": "error", "reason": f"{type(exc).__name__}: {exc}"[:500]}
    if pretrained:
        section.update(
            perplexity=run_ppl,
            perplexity_reference=ref_ppl,
            perplexity_ratio=ref_ppl / run_ppl,  # > 1 would mean the run predicts the text better
            eval_tokens=int(windows.numel()),
            eval_text="pydoc_data.topics (start of the corpus, fixed windows)",
        )
    else:
        section.update(perplexity=None, perplexity_note=RANDOM_WEIGHTS_NOTE)
    section["relative_quality"] = relative_quality(section)
    section["passes_floor"] = section["relative_quality"] >= floor
    return section


# pragma: no mutate end
def relative_quality(section: Mapping[str, Any]) -> float | None:
    """The figure held against the floor: next-token agreement, and the perplexity ratio (capped at 1)
    where there is one, whichever is lower. 1.0 = as good as the reference."""
    agree = section.get("next_token_agreement")
    if agree is None:
        return None
    ratio = section.get("perplexity_ratio")
    return min(agree, ratio) if ratio is not None else agree
