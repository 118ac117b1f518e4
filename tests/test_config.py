"""Every shipped config composes and validates; bad values fail with a message naming the key."""

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from harness import app
from harness.config import CONF_DIR, group_choices, validate
from harness.errors import ConfigError


def _typed(*overrides):
    app.register()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return OmegaConf.to_object(compose("config", overrides=list(overrides)))


@pytest.mark.parametrize("model", [m for m in group_choices("model") if m != "local"])
@pytest.mark.parametrize("precision", group_choices("precision"))
def test_every_shipped_preset_validates(model, precision):
    validate(_typed(f"model={model}", f"precision={precision}"))


def test_presets_span_1m_to_7b_parameters():
    assert {"tiny", "small", "base", "125m", "1b", "7b", "local"} <= set(group_choices("model"))
    assert group_choices("precision") == ["bf16", "fp16", "fp32", "int8"]


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["batch_size=0"], "batch_size=0 is not valid: must be >= 1"),
        (["workload.max_iters=1", "workload.min_iters=5"], "workload.max_iters=1 is not valid: must be >= 5"),
        (
            ["model.hidden_size=130"],
            "model.hidden_size=130 is not valid: must be divisible by model.num_attention_heads=4",
        ),
        (
            ["model.num_key_value_heads=3"],
            "model.num_key_value_heads=3 is not valid: must divide model.num_attention_heads=4",
        ),
        (["precision.name=fp8"], "precision.name=fp8 is not valid: choose one of fp32, fp16, bf16, int8"),
        (["timeout_s=0"], "timeout_s=0.0 is not valid: must be > 0"),
        (["threads=0"], "threads=0 is not valid: must be >= 1"),
        (["model=local"], "model.path=None is not valid: model=local needs model.path=<local model directory>"),
    ],
)
def test_validation_messages(overrides, message):
    with pytest.raises(ConfigError) as err:
        validate(_typed(*overrides))
    assert str(err.value) == message
