"""FLOPs per token: known answers, with inputs where a plausible slip changes the figure (MFU: test_accounting.py)."""

from harness import flops

# 1000 matmul weights, 2 layers, d_model 64: the attention term is 2 * 2 * n_ctx * 64 = 256 * n_ctx
DESC = {"matmul_params": 1000, "n_layers": 2, "d_model": 64}


def test_forward_flops_per_token_by_hand():
    assert flops.forward_flops_per_token(1000, 2, 64, 10) == 2 * 1000 + 2 * 2 * 10 * 64  # 4560
    assert flops.forward_flops_per_token(1000, 2, 64, 0) == 2000.0
    assert flops.forward_flops_per_token(1000, None, 64, 10) is None
    assert flops.forward_flops_per_token(1000, 2, None, 10) is None


def test_decode_uses_the_mean_context_of_the_decode_steps():
    # prompt 10, 4 decode steps: contexts 10.5 .. on average 10 + (4 + 1) / 2 = 12.5 tokens
    f = flops.inference_flops(DESC, seq_len=10, decode_tokens=4)
    assert f["flops_per_token_prefill"] == 2000 + 256 * 10  # 4560
    assert f["flops_per_token_decode"] == 2000 + 256 * 12.5  # 5200
    assert flops.inference_flops({**DESC, "n_layers": None}, 10, 4) == {
        "flops_per_token_prefill": None,
        "flops_per_token_decode": None,
    }


def test_training_is_three_forwards():
    assert flops.training_flops_per_token(DESC, seq_len=10) == 3 * 4560
    assert flops.training_flops_per_token({**DESC, "d_model": None}, 10) is None
