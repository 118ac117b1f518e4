"""A smoke sweep: every shipped model preset, shrunk to CPU size, builds and runs one request.

Shrinking keeps each preset's own architecture switches (vocab, GQA ratio, tied embeddings, positions),
so a preset that transformers cannot build fails here rather than on a GPU machine.
"""

import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from harness import app, data, models
from harness.backends.hf import HFEager
from harness.config import CONF_DIR, group_choices
from harness.probes.timing import CpuTimer
from harness.scenarios import inference


@pytest.mark.parametrize("preset", [m for m in group_choices("model") if m != "local"])
def test_preset_builds_and_runs_shrunk(preset):
    app.register()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = OmegaConf.to_container(compose("config", overrides=[f"model={preset}"]), resolve=True)
    m = cfg["model"]
    heads, kv = m["num_attention_heads"], m["num_key_value_heads"]
    shrink = heads // min(heads, 4)
    m.update(
        hidden_size=8 * (heads // shrink),
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=heads // shrink,
        num_key_value_heads=max(1, kv // shrink),
    )
    model = models.build(m, torch.float32, "cpu", seed=0)
    assert model.config.vocab_size == m["vocab_size"]
    assert model.config.tie_word_embeddings == m["tie_word_embeddings"]
    out = inference.run(
        HFEager.around(model).forward, data.prompt_ids(1, 8, 0), 2, inference.Policy(0, 1, 0.0, 1, 1), CpuTimer()
    )
    assert out["metrics"]["iterations"] == 1
