"""Model FLOPs per token.

Forward pass per token, after Kaplan et al. 2020 ("Scaling Laws for Neural Language Models", Table 1):
    C_forward = 2 * N_matmul + 2 * n_layer * n_ctx * d_attn
where N_matmul counts the weights used in matmuls (every Linear, lm_head included; not the embedding
lookup) and the second term is attention scores and their weighted sum over a context of n_ctx tokens.
Training is 3x the forward (backward = 2x forward), as in the PaLM appendix B MFU accounting.
"""

from __future__ import annotations


def forward_flops_per_token(matmul_params: int, n_layers: int | None, d_attn: int | None, n_ctx: float) -> float | None:
    """FLOPs to run one token forward with `n_ctx` tokens of context (FLOP, not FLOP/s)."""
    if n_layers is None or d_attn is None:
        return None
    return 2.0 * matmul_params + 2.0 * n_layers * n_ctx * d_attn


def inference_flops(desc: dict, seq_len: int, decode_tokens: int) -> dict[str, float | None]:
    """Per-token forward FLOPs for the prefill (context = the prompt) and decode (mean context) phases."""
    n_layers, d_model, matmul = desc["n_layers"], desc["d_model"], desc["matmul_params"]
    decode_ctx = seq_len + (decode_tokens + 1) / 2  # context grows by one token per decode step
    return {
        "flops_per_token_prefill": forward_flops_per_token(matmul, n_layers, d_model, seq_len),
        "flops_per_token_decode": forward_flops_per_token(matmul, n_layers, d_model, decode_ctx),
    }


def training_flops_per_token(desc: dict, seq_len: int) -> float | None:
    """Forward + backward FLOPs per trained token: 3x the forward (backward ~ 2x forward). Model FLOPs: the
    forward that activation checkpointing (workload.grad_checkpointing) recomputes is not counted, as in PaLM's
    MFU (Chowdhery et al. 2022, appendix B); hardware FLOPs would count it (~4x the forward)."""
    forward = forward_flops_per_token(desc["matmul_params"], desc["n_layers"], desc["d_model"], seq_len)
    return 3.0 * forward if forward is not None else None
