"""The serving scenario: open-loop load against a serving engine, per-request latencies, SLOs, goodput
and capacity (docs/serving.md). `scenario.run` is the one entry point the worker calls."""
