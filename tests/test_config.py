"""Every shipped config composes and validates; bad values fail with a message naming the key."""

import pytest
from composed import typed as _typed
from composed import warm

from harness.config import group_choices
from harness.errors import ConfigError
from harness.validation import validate

PRESETS = [m for m in group_choices("model") if m != "local"]
PRECISIONS = group_choices("precision")
warm([f"model={m}", f"precision={p}"] for m in PRESETS for p in PRECISIONS)


@pytest.mark.parametrize("model", PRESETS)
@pytest.mark.parametrize("precision", PRECISIONS)
def test_every_shipped_preset_validates(model, precision):
    validate(_typed(f"model={model}", f"precision={precision}"))


def test_presets_span_1m_to_7b_parameters():
    assert {"tiny", "small", "base", "125m", "1b", "7b", "local"} <= set(group_choices("model"))
    assert group_choices("precision") == ["bf16", "fp16", "fp32", "int8"]


MESSAGES = [
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
    (
        ["workload.draft_model=huge"],
        "workload.draft_model=huge is not valid: choose a model preset: 125m, 1b, 7b, base, small, tiny",
    ),  # fmt: skip
    (
        ["workload.draft_model=tiny", "batch_size=2"],
        "batch_size=2 is not valid: speculative decoding "
        "(workload.draft_model) verifies one sequence: batch_size=1 (as transformers)",
    ),  # fmt: skip
    (["workload.draft_model=tiny", "workload.draft_tokens=0"], "workload.draft_tokens=0 is not valid: must be >= 1"),
    (
        ["model=small", "model.vocab_size=512", "workload.draft_model=tiny"],
        "workload.draft_model=tiny is not valid: "
        "its vocab_size=256 but the target's (model=small) is 512: one tokenizer for both",
    ),  # fmt: skip
]
warm(overrides for overrides, _ in MESSAGES)


@pytest.mark.parametrize("overrides, message", MESSAGES)
def test_validation_messages(overrides, message):
    with pytest.raises(ConfigError) as err:
        validate(_typed(*overrides))
    assert str(err.value) == message


def _cfg(**dotted):
    """A typed config built directly (no Hydra): the schema's defaults, a small valid model, `dotted` set by
    path with `__` for the dot (energy__pue=1.2)."""
    from harness.config import HarnessConfig, InferenceWorkload, ModelConfig, PrecisionConfig

    cfg = HarnessConfig(model=ModelConfig(name="t"), precision=PrecisionConfig(name="fp32"), sweep="s")
    # the workload's own schema, as conf/workload/<name>.yaml composes it (inference's for a name without one)
    from harness import scenarios

    name = dotted.get("workload__name", "inference")
    schema = scenarios.spec(name, strict=False).schema if name in scenarios.names() else None
    cfg.workload = (schema or InferenceWorkload)(name=name)
    for key, value in dotted.items():
        *path, leaf = key.split("__")
        node = cfg
        for part in path:
            node = getattr(node, part)
        setattr(node, leaf, value)
    return cfg


# (key, the last accepted value, the first refused one, the message's rule)
EDGES = [
    ("energy__pue", 1.0, 0.999, "must be >= 1.0 (total facility power / IT power)"),
    ("energy__carbon_intensity_g_per_kwh", 0.0, -0.001, "must be >= 0"),
    ("energy__sample_interval_s", 0.001, 0.0, "must be > 0"),
    ("cost__usd_per_kwh", 0.0, -0.001, "must be >= 0"),
    ("hardware__usd_per_hour", 0.0, -0.01, "must be >= 0 (USD per device-hour)"),
    ("hardware__spot_usd_per_hour", 0.0, -0.01, "must be >= 0 (USD per device-hour)"),
    ("quality__floor", 1.0, 1.001, "must be between 0 and 1 (a share of the fp32 reference)"),
    ("quality__floor", 0.0, -0.001, "must be between 0 and 1 (a share of the fp32 reference)"),
    ("quality__eval_tokens", 2, 1, "must be >= 2"),
    ("quality__window_tokens", 2, 1, "must be >= 2"),
    ("quality__bootstrap", 100, 99, "must be >= 100"),
    ("repeats", 1, 0, "must be >= 1"),
    ("gpus", 1, 0, "must be >= 1"),
    ("seq_len", 1, 0, "must be >= 1"),
    ("seed", 0, -1, "must be >= 0"),
    ("threads", 1, 0, "must be >= 1"),
    ("timeout_s", 0.001, 0.0, "must be > 0"),
    ("memory_limit_bytes", 1, 0, "must be >= 1"),
    ("workload__decode_tokens", 0, -1, "must be >= 0"),
    ("workload__warmup_iters", 0, -1, "must be >= 0"),
    ("workload__min_iters", 1, 0, "must be >= 1"),
    ("workload__min_time_s", 0.0, -0.001, "must be >= 0"),
    ("workload__max_iters", 5, 4, "must be >= 5"),  # min_iters is 5
    ("dist__nnodes", 1, 0, "must be >= 1"),
    ("model__vocab_size", 256, 255, "must be >= 256 (prompts are byte-level token ids)"),
    ("model__num_attention_heads", 4, 3, "must be divisible by model.num_attention_heads=3"),
    # seq_len 128 + decode_tokens 32 + 1 = 161 positions needed
    ("model__max_position_embeddings", 161, 160, "exceeds model.max_position_embeddings=160"),
]


@pytest.mark.parametrize("key, accepted, refused, rule", EDGES, ids=[f"{e[0]}={e[2]}" for e in EDGES])
def test_validation_ranges_at_their_edges(key, accepted, refused, rule):
    validate(_cfg(**{key: accepted}))
    with pytest.raises(ConfigError) as err:
        validate(_cfg(**{key: refused}))
    assert str(err.value).endswith(rule)
    # the message names the key that breaks the rule (for the two model rules, the other side of it)
    other = {"model__num_attention_heads": "model.hidden_size=128", "model__max_position_embeddings": "seq_len=128"}
    assert str(err.value).startswith(other.get(key, f"{key.replace('__', '.')}={refused}") + " is not valid: ")


TRAINING_EDGES = [
    ("workload__warmup_steps", 99, 100, "must be < workload.max_steps=100"),
    ("workload__lr", 1e-9, 0.0, "must be > 0"),
    ("workload__target_eval_loss", 1e-9, 0.0, "must be > 0 (a cross-entropy in nats)"),
    ("workload__max_steps", 4, 3, "must be < workload.max_steps=3"),  # warmup_steps is 3
    ("workload__eval_interval", 1, 0, "must be >= 1"),
    ("workload__eval_batches", 1, 0, "must be >= 1"),
    ("workload__lr_warmup_steps", 0, -1, "must be >= 0"),
    ("data__eval_fraction", 0.999, 1.0, "must be between 0 and 1"),
    ("data__eval_fraction", 0.001, 0.0, "must be between 0 and 1"),
]


@pytest.mark.parametrize("key, accepted, refused, rule", TRAINING_EDGES, ids=[f"{e[0]}={e[2]}" for e in TRAINING_EDGES])
def test_training_validation_ranges_at_their_edges(key, accepted, refused, rule):
    validate(_cfg(workload__name="training", **{key: accepted}))
    with pytest.raises(ConfigError) as err:
        validate(_cfg(workload__name="training", **{key: refused}))
    # max_steps too small is reported on warmup_steps, the other side of the rule
    named = "workload.warmup_steps=3" if key == "workload__max_steps" else f"{key.replace('__', '.')}={refused}"
    assert str(err.value) == f"{named} is not valid: {rule}"


@pytest.mark.parametrize(
    "key, value, message",
    [
        ("precision__name", "fp8", "precision.name=fp8 is not valid: choose one of fp32, fp16, bf16, int8"),
        ("workload__name", "serve", "workload.name=serve is not valid: choose one of inference, training"),
        ("hardware__device", "tpu", "hardware.device=tpu is not valid: choose one of auto, cpu, cuda"),
        ("hardware__price_unit", "gpu", "hardware.price_unit=gpu is not valid: choose one of device, vcpu"),
        ("cost__mode", "spot", "cost.mode=spot is not valid: choose one of cloud, onprem"),
        ("hardware__peak_tflops", {"fp64": 1.0}, "hardware.peak_tflops.fp64=1.0 is not valid"),
        ("hardware__peak_tflops", {"bf16": 0.0}, "hardware.peak_tflops.bf16=0.0 is not valid"),
        ("model__num_key_value_heads", 0, "model.num_key_value_heads=0 is not valid"),
        ("dist__node_rank", 1, "dist.node_rank=1 is not valid: must be in 0..dist.nnodes-1=0"),
        ("dist__node_rank", -1, "dist.node_rank=-1 is not valid"),
    ],
)
def test_choices_are_named_in_the_message(key, value, message):
    with pytest.raises(ConfigError) as err:
        validate(_cfg(**{key: value}))
    assert str(err.value).startswith(message)


def test_choices_that_are_accepted():
    validate(
        _cfg(hardware__peak_tflops={"bf16": 0.001, "int8": 1.0}, model__num_key_value_heads=2, cost__mode="onprem")
    )
    validate(_cfg(dist__nnodes=2, dist__node_rank=1, dist__rdzv_endpoint="h:1", dist__rdzv_backend="static"))
    with pytest.raises(ConfigError, match="dist.rdzv_endpoint"):
        validate(_cfg(dist__nnodes=2))
    validate(_cfg(workload__name="training", data__source="hf", data__name="x"))
    with pytest.raises(ConfigError) as err:
        validate(_cfg(workload__name="training", data__source="hf"))
    assert str(err.value) == (
        "data.name=None is not valid: data.source=hf needs data.name=<dataset in the local datasets cache>"
    )
    with pytest.raises(ConfigError, match="^data.name= is not valid: data.source=hf needs"):
        validate(_cfg(workload__name="training", data__source="hf", data__name=""))
    with pytest.raises(ConfigError) as err:
        validate(_cfg(workload__name="training", data__source="csv"))
    assert str(err.value) == "data.source=csv is not valid: choose one of pydoc, text, json, parquet, hf, synthetic"
    with pytest.raises(ConfigError, match="data.source=text needs an existing local file"):
        validate(_cfg(workload__name="training", data__source="text", data__path="/no/such/file"))


def test_model_path_and_key_value_heads_and_local_data_files(tmp_path):
    with pytest.raises(ConfigError, match="model.path=.* must be a local directory holding config.json"):
        validate(_cfg(model__path=str(tmp_path)))
    (tmp_path / "config.json").write_text("{}")
    validate(_cfg(model__path=str(tmp_path), model__vocab_size=10))  # the preset's numbers are unused then
    validate(_cfg(model__num_key_value_heads=1))
    data_file = tmp_path / "train.jsonl"
    data_file.write_text('{"text": "some words"}\n')
    for source in ("text", "json"):
        validate(_cfg(workload__name="training", data__source=source, data__path=str(data_file)))
    with pytest.raises(ConfigError, match="not a parquet file"):  # the content is checked, not only the name
        validate(_cfg(workload__name="training", data__source="parquet", data__path=str(data_file)))
    for source in ("text", "json", "parquet"):
        with pytest.raises(ConfigError) as err:
            validate(_cfg(workload__name="training", data__source=source, data__path=str(tmp_path / "none")))
        assert str(err.value) == (
            f"data.path={tmp_path / 'none'} is not valid: data.source={source} needs an existing local file or folder"
        )
        with pytest.raises(ConfigError, match=f"data.path=None is not valid: data.source={source} needs"):
            validate(_cfg(workload__name="training", data__source=source))
    # inference reads data.* for its held-out quality text, so only with quality off is data.* unused
    validate(_cfg(workload__name="inference", data__source="csv", quality__enabled=False))
    with pytest.raises(ConfigError, match="data.source=csv is not valid"):
        validate(_cfg(workload__name="inference", data__source="csv"))


def test_training_refuses_trained_weights_naming_the_setting_to_use():
    with pytest.raises(ConfigError) as err:
        validate(_typed("workload=training", "model.weights=trained"))
    assert str(err.value) == (
        "model.weights=trained is not valid: training starts from the seeded initialisation: use model.weights=random"
    )
    validate(_typed("workload=training", "model.weights=random"))


def test_several_nodes_need_a_rendezvous_endpoint():
    with pytest.raises(ConfigError) as err:
        validate(_cfg(dist__nnodes=2))
    assert str(err.value) == (
        "dist.rdzv_endpoint=None is not valid: dist.nnodes > 1 needs dist.rdzv_endpoint=<host:port>"
    )
    validate(_cfg(dist__nnodes=2, dist__rdzv_endpoint="10.0.0.1:29500", dist__rdzv_backend="static"))


def test_several_nodes_need_the_static_rendezvous():
    # c10d ranks the nodes by host name and pid: global rank 0, whose figures are the run's, could be on any node
    with pytest.raises(ConfigError) as err:
        validate(_cfg(dist__nnodes=2, dist__rdzv_endpoint="10.0.0.1:29500", dist__rdzv_backend="c10d"))
    assert str(err.value).startswith(
        "dist.rdzv_backend=c10d is not valid: dist.nnodes > 1 needs dist.rdzv_backend=static (dist=multinode's)"
    )
    validate(_typed("dist=multinode", "dist.rdzv_endpoint=10.0.0.1:29500"))  # the shipped preset is static


def test_a_model_path_without_config_json_is_named_in_the_message(tmp_path):
    with pytest.raises(ConfigError) as err:
        validate(_cfg(model__path=str(tmp_path)))
    assert str(err.value) == (
        f"model.path={tmp_path} is not valid: must be a local directory holding config.json and weights"
    )


@pytest.mark.parametrize(
    "dotted, message",
    [
        # nan passes every < / > check: the finite check must come first, in nested and dict fields too
        ({"energy__pue": float("nan")}, "energy.pue=nan is not valid: must be a finite number"),
        (
            {"hardware__peak_tflops": {"fp32": float("inf")}},
            "hardware.peak_tflops.fp32=inf is not valid: must be a finite number",
        ),
        (
            {"hardware__peak_tflops": {"fp99": 1.0}},
            "hardware.peak_tflops.fp99=1.0 is not valid: dtype in fp32, tf32, fp16, bf16, int8, fp8, value > 0",
        ),
        ({"model__weights": "pretrained"}, "model.weights=pretrained is not valid: choose one of random, trained"),
        ({"model__weights": "trained", "model__train_steps": 3}, "model.train_steps=3 is not valid: must be >= 4"),
        ({"model__intermediate_size": 0}, "model.intermediate_size=0 is not valid: must be >= 1"),
        ({"model__num_hidden_layers": 0}, "model.num_hidden_layers=0 is not valid: must be >= 1"),
        (
            {"sweep": "a/b"},
            "sweep='a/b' is not valid: must be one folder name of letters, digits and . _ + = - (no /, no ..)",
        ),
        (
            {"sweep": "a..b"},  # every character is allowed, the pair is not
            "sweep='a..b' is not valid: must be one folder name of letters, digits and . _ + = - (no /, no ..)",
        ),
    ],
)
def test_more_validation_messages(dotted, message):
    with pytest.raises(ConfigError) as err:
        validate(_cfg(**dotted))
    assert str(err.value) == message


def test_the_edges_of_the_model_rules_are_accepted(tmp_path):
    validate(_cfg(model__weights="trained", model__train_steps=4))
    validate(_cfg(model__intermediate_size=1, model__num_hidden_layers=1, sweep="a.b_c+d=e-f"))
    validate(_cfg(hardware__peak_tflops={"bf16": 1.0}))


def test_results_dir_must_be_a_folder(tmp_path):
    file = tmp_path / "f"
    file.write_text("")
    with pytest.raises(ConfigError) as err:
        validate(_cfg(results_dir=str(file)))
    assert str(err.value) == f"results_dir={file} is not valid: is a file, not a folder"
    validate(_cfg(results_dir=str(tmp_path / "new" / "deeper")))  # made on demand below a writable folder


def test_results_dir_that_cannot_be_written_names_the_folder(tmp_path, monkeypatch):
    import os

    # root may write anywhere whatever the mode bits: stand in for a read-only folder
    monkeypatch.setattr(os, "access", lambda path, mode: False)
    with pytest.raises(ConfigError) as err:
        validate(_cfg(results_dir=str(tmp_path / "new")))
    assert str(err.value) == (
        f"results_dir={tmp_path / 'new'} is not valid: cannot be written ({tmp_path} is not a writable folder)"
    )


def test_serving_lengths_are_not_judged_by_the_inference_prompt_rule():
    # seq_len + decode_tokens + 1 > max_position_embeddings refuses an inference run, not a serving one
    # (serving.input_len and output_len are checked by harness.serving.validate)
    long = ("seq_len=4096", "model.max_position_embeddings=256")
    validate(_typed("workload=serving", *long))
    with pytest.raises(ConfigError, match="exceeds model.max_position_embeddings=256"):
        validate(_typed(*long))
