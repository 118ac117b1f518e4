"""Quality beside speed: held-out task metrics of the run, against the fp32 reference of the same weights.

MLPerf Inference counts a low-precision result only when its task metric holds at >= 99 % of the fp32
reference's over the evaluation set; a fast int8 run that changes the answers is not a win. Measured after
the timed window, never inside it, so it costs no measured time.

Figures (docs/results.md, `quality`), over `quality.eval_tokens` held-out tokens (the held-out documents of
the `data` group's fixed split: never trained on, never a timed prompt), in windows of
`quality.window_tokens` predicted tokens: cross-entropy (nats/token), perplexity, next-token top-1 accuracy;
against the fp32 reference on the same tokens: accuracy and perplexity ratios (the verdict, see
harness/quality_eval.py), next-token agreement and KL(ref || run) as diagnostics. Each with a seeded
bootstrap 95 % interval over windows. Random weights: measured, but labelled "quality not meaningful" and
given no verdict.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from harness import data

METHOD = (
    "held-out next-token cross-entropy, perplexity and top-1 accuracy; accuracy and perplexity ratios to the "
    "fp32 reference of the same weights on the same tokens (the verdict); agreement and KL(ref || run) as "
    "diagnostics"
)
RANDOM_WEIGHTS_NOTE = "random weights: quality not meaningful (no pass/fail verdict); use model.weights=trained"
CONFIDENCE_TEXT = "95 %"


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


def _reference_does_not_fit(model: Any, config: Mapping[str, Any], device: Any) -> str | None:
    """Why an fp32 copy of the model cannot be built beside it, or None when it can. `model`: the run's backend
    (or a module): anything with `parameters()`."""
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


def held_out_windows(config: Mapping[str, Any], tokenizer: Any, context: int) -> tuple[torch.Tensor, str]:
    """(windows, description): `quality.eval_tokens` predicted tokens of the held-out split of the `data`
    group, as evenly spaced (n, window + 1) token windows; the same in every run of one setting."""
    qcfg = config["quality"]
    window = max(1, min(int(qcfg.get("window_tokens", 128)), context - 1))
    count = math.ceil(int(qcfg["eval_tokens"]) / window)
    _, eval_docs, info = data.load_documents(config["data"])
    stream = data.encode(eval_docs, tokenizer)
    if stream.numel() < window + 1:
        raise ValueError(f"the held-out text ({stream.numel()} tokens) is shorter than one window of {window + 1}")
    starts = torch.linspace(0, stream.numel() - window - 1, count).long().tolist()
    overlap = count * (window + 1) > stream.numel()
    text = f"held-out split of {info['description']} ({info['eval_documents']} documents, never trained on)"
    if overlap:
        text += f"; only {stream.numel()} tokens, so windows overlap"
    return torch.stack([stream[s : s + window + 1] for s in starts]), text


def _window_sums(backend: Any, windows: torch.Tensor, device: Any, ref_logits: list | None = None):
    """Per-window sums (nll, correct) and the logits of each batch (kept for the paired comparison);
    `backend`: a harness backend with the `logits` capability."""
    nll, correct, kept, agree, kl = [], [], [], [], []
    with torch.inference_mode():
        for i, batch in enumerate(windows.split(8)):
            ids = batch.to(device)
            logits = backend.logits(ids[:, :-1]).to("cpu", torch.float64)
            target = batch[:, 1:]
            lp = logits.log_softmax(-1)
            nll.append(-lp.gather(-1, target.unsqueeze(-1)).squeeze(-1).sum(-1))
            correct.append((logits.argmax(-1) == target).sum(-1).to(torch.float64))
            if ref_logits is None:
                kept.append(logits)
            else:
                ref = ref_logits[i]
                agree.append((ref.argmax(-1) == logits.argmax(-1)).sum(-1).to(torch.float64))
                ref_lp = ref.log_softmax(-1)
                kl.append(F.kl_div(lp, ref_lp, log_target=True, reduction="none").sum(-1).clamp_min(0.0).sum(-1))
    cat = lambda xs: torch.cat(xs).numpy() if xs else None  # noqa: E731
    return cat(nll), cat(correct), kept, cat(agree), cat(kl)


def evaluate(backend: Any, config: Mapping[str, Any], ids: torch.Tensor, tokenizer: Any, device: Any) -> dict[str, Any]:
    """The run's `quality` section (held-out task metrics, intervals, verdict); never raises. `backend`: the
    run's (its `logits`, and `reference` for the fp32 build), or a bare model, held by a Hugging Face eager one.
    `ids` (the timed prompts) are not scored: held-out text is."""
    from harness import checkpoints, quality_eval
    from harness.backends.hf import HFEager

    backend = backend if hasattr(backend, "capabilities") else HFEager.around(backend)

    qcfg = config.get("quality") or {}
    floor = float(qcfg.get("floor", 0.99))
    own_reference = is_reference(config)
    weights = checkpoints.provenance(config) if "workload" in config else {"kind": "random"}
    meaningful = weights["kind"] != "random"
    section: dict[str, Any] = {
        "status": "ok",
        "reason": None,
        "method": METHOD,
        "reference": "self: this run is fp32" if own_reference else "fp32 build of the same weights",
        "weights": weights["kind"],
        "quality_meaningful": meaningful,
        "floor": floor,
    }
    if not qcfg.get("enabled", True):
        return {**section, "status": "skipped", "reason": "quality.enabled=false"}
    try:
        context = backend.context_length() or 2048
        windows, text = held_out_windows(config, tokenizer, context)
        nll, correct, run_logits, _, _ = _window_sums(backend, windows, device)
        if own_reference:  # the run is its own reference: identical by definition, not by measurement
            ref_nll, ref_correct = nll, correct
            agree, kl = correct * 0 + windows.shape[1] - 1, correct * 0.0
        else:
            reason = _reference_does_not_fit(backend, config, device)
            if reason:
                return {**section, "status": "skipped", "reason": reason}
            reference = backend.reference(checkpoints.model_config(config), device, config["seed"])
            ref_nll, ref_correct, ref_logits, _, _ = _window_sums(reference, windows, device)
            del reference
            _, _, _, agree, kl = _window_sums(backend, windows, device, ref_logits)
        per = quality_eval.Windows(
            np.full(len(nll), windows.shape[1] - 1.0), nll, correct, ref_nll, ref_correct, agree, kl
        )
        fig = quality_eval.figures(per, int(qcfg.get("bootstrap", 1000)), seed=0)
    except Exception as exc:  # noqa: BLE001 - the speed figures stand; the quality check is recorded as failed
        return {**section, "status": "error", "reason": f"{type(exc).__name__}: {exc}"[:500]}
    tokens = int(per.tokens.sum())
    section.update(
        eval_text=text,
        eval_tokens=tokens,
        positions=tokens,
        windows=len(per.tokens),
        window_tokens=int(windows.shape[1] - 1),
        interval=f"seeded percentile bootstrap, {CONFIDENCE_TEXT}, {qcfg.get('bootstrap', 1000)} resamples of windows",
        **fig,
        reference_loss_nats=float(ref_nll.sum() / tokens),
        reference_accuracy=float(ref_correct.sum() / tokens),
    )
    section["relative_quality"] = relative_quality(section)
    if meaningful:
        section.update(quality_eval.judge(fig, floor, tokens))
        section["passes_floor"] = section["verdict"] != "fail"
    else:
        section.update(verdict=None, passes_floor=None, verdict_note=RANDOM_WEIGHTS_NOTE)
    return section


# pragma: no mutate end
def is_reference(config: Mapping[str, Any]) -> bool:
    """Whether the run is the fp32 reference itself: fp32 and no transform beyond precision (int4, pruning
    change the weights; they are scored against the untransformed fp32 build)."""
    chain = list(config.get("transforms") or ["precision"])
    return config["precision"]["name"] == "fp32" and chain == ["precision"]


def relative_quality(section: Mapping[str, Any]) -> float | None:
    """The lower of the accuracy and perplexity ratios to the fp32 reference (1.0 = as good as it); results
    from before held-out metrics: next-token agreement, capped by the perplexity ratio where there is one."""
    ratios = [section.get(k) for k in ("accuracy_ratio", "perplexity_ratio")]
    if "accuracy_ratio" not in section:  # null there: undefined (a reference that scored 0), not absent
        ratios = [section.get("next_token_agreement"), section.get("perplexity_ratio")]
    known = [r for r in ratios if r is not None]
    return min(known) if known else None
