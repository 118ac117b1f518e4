"""The serving settings compose from conf/workload/serving.yaml and bad values fail naming the key."""

import pytest
from composed import typed as _typed
from composed import warm

from harness.errors import ConfigError
from harness.validation import validate


def test_serving_workload_composes_and_validates():
    cfg = _typed("workload=serving")
    validate(cfg)
    assert cfg.workload.name == "serving" and cfg.serving.engine == "transformers" and cfg.serving.rate == 4.0


MESSAGES = [
    (["serving.rate=0"], "serving.rate=0.0 is not valid: must be > 0"),
    (
        ["gpus=2"],
        "gpus=2 is not valid: workload=serving runs one engine: gpus=1 "
        "(a server's own parallelism goes in its command)",
    ),
    (["serving.engine=tgi"], "serving.engine=tgi is not valid: choose one of transformers, sequential, openai"),
    (
        ["serving.arrival=bursty"],
        "serving.arrival=bursty is not valid: choose one of poisson, gamma, constant, closed",
    ),
    (["serving.burstiness=0"], "serving.burstiness=0.0 is not valid: must be > 0"),
    (["serving.slo.ttft_ms=-5"], "serving.slo.ttft_ms=-5.0 is not valid: must be > 0"),
    (
        ["serving.search=max_rate"],
        "serving.slo=None is not valid: serving.search=max_rate needs at least one of ttft_ms, tpot_ms, e2el_ms",
    ),
    (
        ["serving.engine=openai"],
        "serving.url=None is not valid: serving.engine=openai needs serving.url=http://host:port/v1 "
        "or serving.server.command",
    ),
    (
        ["serving.dataset=csv"],
        "serving.dataset=csv is not valid: choose one of random, sharegpt, trace, shared_prefix",
    ),
    (
        ["serving.dataset=trace", "serving.dataset_path=/no/such/trace.csv"],
        "serving.dataset_path=/no/such/trace.csv is not valid: serving.dataset=trace needs an existing "
        ".csv, .jsonl or .json file",
    ),
    (["serving.trace_speed=0"], "serving.trace_speed=0.0 is not valid: must be > 0"),
    (["serving.think_time_s=-1"], "serving.think_time_s=-1.0 is not valid: must be >= 0"),
    (["serving.max_context_tokens=0"], "serving.max_context_tokens=0 is not valid: must be > 0"),
    (["serving.dataset=shared_prefix", "serving.prefix_count=0"], "serving.prefix_count=0 is not valid: must be > 0"),
    (
        ["serving.dataset=shared_prefix", "serving.prefix_len=2000"],
        "serving.input_len=32 is not valid: the longest request (2049 tokens) exceeds "
        "model.max_position_embeddings=2048",
    ),
    (
        ["serving.input_len=2000", "serving.output_len=100"],
        "serving.input_len=2000 is not valid: the longest request (2101 tokens) exceeds "
        "model.max_position_embeddings=2048",
    ),
]
warm([["workload=serving"], *(["workload=serving", *overrides] for overrides, _ in MESSAGES)])


@pytest.mark.parametrize("overrides, message", MESSAGES)
def test_serving_validation_messages(overrides, message):
    with pytest.raises(ConfigError) as err:
        validate(_typed("workload=serving", *overrides))
    assert str(err.value) == message


def test_closed_loop_needs_no_rate():
    validate(_typed("workload=serving", "serving.arrival=closed", "serving.rate=0", "serving.concurrency=2"))


def test_reproduce_command_round_trips_nested_serving_settings():
    import shlex
    from dataclasses import asdict

    from harness import reproduce

    argv = ["workload=serving", "serving.engine=openai", "serving.slo.ttft_ms=250", "serving.rate=2.5"]
    argv.append("serving.server.command=['transformers','serve','{model_path}','--port','{port}']")
    config = asdict(_typed(*argv))
    words = shlex.split(reproduce.command(config))[3:]  # after `python -m harness`
    again = _typed(*words)
    assert again.serving.server.command == ["transformers", "serve", "{model_path}", "--port", "{port}"]
    assert again.serving.slo.ttft_ms == 250.0 and again.serving.rate == 2.5
