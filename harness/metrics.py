"""The metric registry: every figure a run writes, its unit, which way is better, and where it is shown.

The single list the terminal summary, the report (columns, default objectives), the gate's default
metrics, the pytest-benchmark export and docs/results.md ("Metric registry") read. A scenario's
`writes` must name only metrics listed here, and every reader must name only metrics some writer
produces (tests/test_metrics.py checks both).

- kind: `timed` (a per-repeat sample exists in result.repeats: the gate bootstraps it), `counted` (one
  figure per run in result.metrics), `info` (a fact about the run, not compared).
- section: where it lives: `metrics` (and `repeats` for per-repeat figures), or the `cost`, `energy`,
  `quality` section (its report column is `<section>_<name>`).
- distribution: a {n, p50, p90, p99, mean, stdev, min, max} object in seconds; report columns are
  `<name>_<stat>`.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Metric:
    name: str
    unit: str  # "s", "tokens/s", "1/s", "bytes", "bytes/s", "FLOP", "FLOP/s", "J", "USD", "nats", "ratio", "count", ""
    better: str | None  # "higher" | "lower" | None (not a figure of merit)
    kind: str  # "timed" | "counted" | "info"
    label: str = ""
    section: str = "metrics"
    distribution: bool = False
    report: tuple[str, ...] = ()  # report-table columns it appears as (`request_latency_s_p99`)
    gate: tuple[float, float | None] | None = None  # default (threshold, floor) in conf/gate/default.yaml
    export: str | None = None  # pytest-benchmark: "latency" (a benchmark per repeat) or "extra" (extra_info)
    summary_stat: str = "p50"  # a distribution's statistic in the terminal summary (shown in ms)
    fmt: str = ""  # its terminal format where the default (by unit) does not fit

    @property
    def column(self) -> str:
        """Its column in the report's frame (harness.report.aggregate)."""
        return self.name if self.section == "metrics" else f"{self.section}_{self.name}"


def _d(name: str, label: str, **kw) -> Metric:
    return Metric(name, "s", "lower", "counted", label, distribution=True, **kw)


def _t(name: str, unit: str, better: str, label: str, **kw) -> Metric:
    return Metric(name, unit, better, "timed", label, **kw)


def _c(name: str, unit: str, better: str | None, label: str = "", **kw) -> Metric:
    return Metric(name, unit, better, "counted", label, **kw)


def _i(name: str, unit: str = "", label: str = "", **kw) -> Metric:
    return Metric(name, unit, None, "info", label, **kw)


_GATE5, _GATE10, _GATE_COUNT = (0.05, None), (0.10, None), (0.005, None)
_GATE_MEM = (0.02, 67108864.0)  # max(2 %, 64 MiB)

METRICS: tuple[Metric, ...] = (
    # inference distributions (result.metrics) and their per-repeat medians (result.repeats)
    _d("prefill_latency_s", "prefill p50 ms"),
    _d("decode_latency_s", "decode p50 ms/tok"),
    _d("request_latency_s", "request latency", report=("request_latency_s_p99", "request_latency_s_n")),
    _t("prefill_latency_s_p50", "s", "lower", "prefill p50 (repeat)", gate=_GATE5, export="latency"),
    _t("ttft_s_p50", "s", "lower", "ttft p50 (repeat)", gate=_GATE5, export="latency"),
    _t("decode_latency_s_p50", "s", "lower", "decode p50 (repeat)", gate=_GATE5, export="latency"),
    _t("request_latency_s_p50", "s", "lower", "request p50 (repeat)", gate=_GATE5, export="latency"),
    _t("prefill_tok_per_s", "tokens/s", "higher", "prefill tok/s", gate=_GATE5, export="extra"),
    _t(
        "decode_tok_per_s",
        "tokens/s",
        "higher",
        "decode tok/s",
        report=("decode_tok_per_s",),
        gate=_GATE5,
        export="extra",
    ),  # fmt: skip
    _t(
        "e2e_tok_per_s",
        "tokens/s",
        "higher",
        "e2e tok/s",
        report=("e2e_tok_per_s",),
        gate=_GATE5,
        export="extra",
    ),  # fmt: skip
    _t("samples_per_s", "1/s", "higher", "samples/s", gate=_GATE5, export="extra"),
    _i("iterations", "count", "timed requests"),
    _i("tokens_prompt", "count"),
    _i("tokens_generated_per_request", "count"),
    _i("logits_last_position_only"),
    # training
    _d("step_time_s", "step p50 ms"),
    _t("train_tok_per_s", "tokens/s", "higher", "train tok/s", gate=_GATE5),
    _c("eval_loss_initial", "nats", "lower", "eval loss start"),
    _c("eval_loss", "nats", "lower", "eval loss end", report=("eval_loss",)),
    _i("eval_loss_lo", "nats", "eval loss 95 % low"),
    _i("eval_loss_hi", "nats", "eval loss 95 % high"),
    _i("eval_loss_n", "count", "held-out sequences"),
    _i("target", "", "target"),
    _t("step_time_s_p50", "s", "lower", "step p50 (chunk)", gate=_GATE5),
    _i("step_time_s_mean", "s"),
    _i("steps", "count"),
    _i("tokens_per_step", "count"),
    _i("tokens_trained", "count"),
    _c("train_loss_first", "nats", "lower"),
    _c("train_loss_last", "nats", "lower"),
    _c("eval_perplexity", "ratio", "lower"),
    _i("loss_curve"),
    _i("eval_curve"),
    _i("eval_s", "s"),
    _c("train_window_s", "s", "lower", "training loop wall time"),
    _i("loss_scale_final"),
    # classification (held-out accuracy over every held-out example; intervals in the quality section)
    _c("eval_accuracy_initial", "ratio", "higher", "accuracy start", fmt=".3f"),
    _c("eval_accuracy", "ratio", "higher", "accuracy end", fmt=".3f"),
    _c("eval_macro_f1", "ratio", "higher", "macro-F1", fmt=".3f"),
    _i("accuracy_curve"),
    _i("examples_trained", "count"),
    _c("trainable_params", "count", "lower", "trainable params", report=("trainable_params",)),
    _c("adapter_bytes", "bytes", "lower", "adapter bytes"),
    # distill (harness/scenarios/distill.py): the distilled student's figures are eval_accuracy / eval_macro_f1
    _c("alone_eval_accuracy", "ratio", "higher", "alone accuracy", fmt=".3f"),
    _c("alone_eval_macro_f1", "ratio", "higher", "alone macro-F1", fmt=".3f"),
    _c("alone_train_loss_last", "nats", "lower"),
    _c("distill_accuracy_gain", "ratio", "higher", "distill gain", fmt="+.3f"),
    _c("teacher_eval_accuracy", "ratio", "higher", "teacher accuracy", fmt=".3f"),
    _i("teacher_params", "count", "teacher params"),
    _c("teacher_train_s", "s", "lower", "teacher training s"),
    _c("teacher_label_s", "s", "lower", "teacher labels s"),
    _c("teacher_label_j", "J", "lower", "teacher labels J"),
    # classify (harness/scenarios/classify.py): a fine-tuned classifier's batched forward passes
    _d("batch_latency_s", "batch p50 ms", report=("batch_latency_s_p99", "batch_latency_s_n")),
    _t("batch_latency_s_p50", "s", "lower", "batch p50 (repeat)", gate=_GATE5, export="latency"),
    _t(
        "examples_per_s",
        "1/s",
        "higher",
        "examples/s",
        report=("examples_per_s",),
        gate=_GATE5,
        export="extra",
    ),  # fmt: skip
    _i("examples_timed", "count", "examples timed"),
    _t("j_per_1k_examples", "J", "lower", "J/1k examples (repeat)", gate=_GATE10),
    _t("usd_per_1k_examples", "USD", "lower", "USD/1k examples (repeat)", gate=_GATE5),
    # serving (harness/serving/metrics.py, docs/serving.md): one load window, or the capacity probe's
    _i("offered_rate_req_per_s", "1/s", "rate req/s", fmt=".3g"),
    _t("request_throughput_req_per_s", "1/s", "higher", "req/s", gate=_GATE5, fmt=".2f"),
    _t("output_tok_per_s", "tokens/s", "higher", "out tok/s", gate=_GATE5),
    _d("ttft_s", "TTFT p99 ms", summary_stat="p99", fmt=".1f"),  # inference writes it too
    _d("tpot_s", "TPOT p99 ms", summary_stat="p99", fmt=".1f"),
    _t("goodput_req_per_s", "1/s", "higher", "goodput req/s", gate=_GATE5, fmt=".2f"),
    _c("capacity_req_per_s", "1/s", "higher", "capacity req/s", gate=_GATE10, fmt=".3g"),
    _d("itl_s", "inter-token latency"),
    _d("e2el_s", "end-to-end request latency"),
    _d("queue_wait_s", "wait for a max_concurrency slot"),
    _d("send_lateness_s", "send lateness"),
    _t("total_tok_per_s", "tokens/s", "higher", "input + output tok/s"),
    _i("arrival_rate_req_per_s", "1/s"),
    _i("completion_rate_req_per_s", "1/s"),
    _t("slo_attainment", "ratio", "higher", "SLO attainment"),
    _i("requests_sent", "count"),
    _t("requests_completed", "count", "higher", "completed requests"),
    _t("requests_good", "count", "higher", "requests within the SLO"),
    _t("requests_failed", "count", "lower", "failed requests"),
    _t("requests_timed_out", "count", "lower", "timed-out requests"),
    _i("failure_reasons"),
    _i("generator_bottleneck"),
    _i("window_s", "s"),
    _i("output_tokens", "count"),
    _i("input_tokens", "count"),
    _t("usd_per_1m_output_tokens", "USD", "lower", "USD/1M out tok", gate=_GATE5),
    _t("j_per_1m_output_tokens", "J", "lower", "J/1M out tok"),
    _i("j_per_1m_output_tokens_method"),
    _i("per_1m_output_tokens_at"),
    _i("slo"),
    _i("ttft_s_by_turn", "s", "TTFT by conversation turn"),  # [{turn, n, p50, p90, p99, mean}] (sharegpt)
    _i("probe_stopped", "", "why a capacity probe ended"),  # settled / over-saturated / ran its search_probe_s
    # prefix caching, where the engine reports cached prompt tokens (OpenAI usage.prompt_tokens_details)
    _i("prompt_tokens_cached", "count"),
    _c("prefix_cache_hit_rate", "ratio", "higher", "prefix-cache hit rate"),
    _d("ttft_s_cache_hit", "TTFT, prefix-cache hits"),
    _d("ttft_s_cache_miss", "TTFT, prefix-cache misses"),
    # the engine's own gauges (serving.metrics_url, harness/serving/server_metrics.py) over the window
    _c("server_waiting_requests_mean", "count", "lower", "server queue (mean)"),
    _c("server_waiting_requests_max", "count", "lower", "server queue (max)"),
    _c("server_running_requests_mean", "count", None, "server running (mean)"),
    _c("server_kv_cache_usage_max", "ratio", None, "server KV-cache use (max)"),
    _i("server_metrics_samples", "count"),
    # serving per repeat (load window): quantiles of its requests, flat
    _t("ttft_s_p99", "s", "lower", "ttft p99 (window)", gate=_GATE10),
    _t("tpot_s_p50", "s", "lower", "tpot p50 (window)", gate=_GATE5),
    _t("tpot_s_p99", "s", "lower", "tpot p99 (window)", gate=_GATE10),
    _t("e2el_s_p50", "s", "lower", "e2el p50 (window)", gate=_GATE5),
    _t("e2el_s_p99", "s", "lower", "e2el p99 (window)", gate=_GATE10),
    _t("itl_s_p50", "s", "lower", "itl p50 (window)"),
    _t("itl_s_p99", "s", "lower", "itl p99 (window)"),
    _t("send_lateness_s_p50", "s", "lower", "send lateness p50 (window)"),
    _t("send_lateness_s_p99", "s", "lower", "send lateness p99 (window)"),
    *(_i(f"{d}_n", "count") for d in ("ttft_s", "tpot_s", "itl_s", "e2el_s", "send_lateness_s")),
    # per repeat: energy and cost samples
    _i("wall_s", "s"),
    _i("energy_j", "J"),
    _t("j_per_token", "J", "lower", "J/token (repeat)", gate=_GATE10),
    _t("usd_per_1m_tokens_generated", "USD", "lower", "USD/1M tok (repeat)", gate=_GATE5),
    _t("usd_per_1m_tokens_train", "USD", "lower", "USD / 1M trained (repeat)", gate=_GATE5),
    # the model and the device (worker and probes)
    _c("params", "count", "lower", "parameters", gate=_GATE_COUNT, export="extra"),
    _i("params_embedding", "count"),
    _i("params_non_embedding", "count"),
    _c("matmul_params", "count", "lower", gate=_GATE_COUNT),
    _c("params_nonzero", "count", "lower", "nonzero params"),  # after transforms: what pruning left
    _c("compile_s", "s", "lower", "compile s", report=("compile_s",)),  # backend=compile, before the window
    _c("flops_per_token_prefill", "FLOP", "lower", gate=_GATE_COUNT, export="extra"),
    _c("flops_per_token_decode", "FLOP", "lower", gate=_GATE_COUNT, export="extra"),
    _c("flops_per_token_train", "FLOP", "lower", gate=_GATE_COUNT),
    _c("achieved_flop_per_s_prefill", "FLOP/s", "higher"),
    _c("achieved_flop_per_s_decode", "FLOP/s", "higher"),
    _c("achieved_flop_per_s_train", "FLOP/s", "higher"),
    # prefill is compute-bound (MFU), decode memory-bound (MBU): the two physical limits, side by side
    _c("mfu_prefill", "ratio", "higher", "MFU prefill", report=("mfu_prefill",), fmt=".3g"),
    _c("mfu_decode", "ratio", "higher"),
    _c("mbu_decode", "ratio", "higher", "MBU decode", report=("mbu_decode",), fmt=".3g"),
    _c("weight_bytes_per_decode_step", "bytes", "lower"),
    _c("kv_cache_bytes_per_decode_step", "bytes", "lower"),
    _i("kv_cache_element_bytes", "bytes"),
    _c("bytes_per_decode_step", "bytes", "lower"),
    _c("decode_steps_per_s", "1/s", "higher"),
    _c("achieved_bytes_per_s_decode", "bytes/s", "higher"),
    # speculative decoding (workload.draft_model, harness/speculative.py); the speed-up is the report's pairing
    _c("acceptance_rate", "ratio", "higher", "acceptance", report=("acceptance_rate",), fmt=".3g"),
    _c("mean_accepted_tokens", "count", "higher", "accepted/step", report=("mean_accepted_tokens",), fmt=".3g"),
    _c("tokens_per_verify_step", "count", "higher"),
    _i("draft_tokens_proposed", "count"),
    _i("draft_tokens_accepted", "count"),
    _i("verify_steps", "count"),
    _i("peak_bandwidth_bytes_per_s", "bytes/s"),
    _i("bandwidth_source"),
    _i("calibration_bandwidth_bytes_per_s", "bytes/s"),
    _c("mfu_train", "ratio", "higher"),
    _i("peak_flop_per_s", "FLOP/s"),
    _i("peak_source"),
    _i("calibration_flop_per_s", "FLOP/s"),
    _c("peak_rss_bytes", "bytes", "lower", gate=_GATE_MEM, export="extra"),
    _i("peak_rss_scope"),
    _i("process_peak_rss_bytes", "bytes"),
    _c("cuda_max_allocated_bytes", "bytes", "lower", gate=_GATE_MEM, export="extra"),
    _c("cuda_max_reserved_bytes", "bytes", "lower"),
    _i("nvml_used_bytes", "bytes"),
    _i("nvml_process_used_bytes", "bytes"),
    _i("nvml_other_processes", "count"),
    _i("threads", "count", export="extra"),
    _i("timing_method"),
    _i("ranks"),
    # figures of other sections that readers name (report columns, objectives)
    # one name per figure: "USD/1M tok" is always whole requests per generated token (the terminal, the
    # report, runs.csv, the gate's per-repeat samples); the decode-only price has a name of its own
    _c("usd_per_1m_tokens_decode", "USD", "lower", "USD/1M tok, decode time only", section="cost"),
    _c(
        "usd_per_1m_tokens_generated",
        "USD",
        "lower",
        "USD/1M tok",
        section="cost",
        report=("cost_usd_per_1m_tokens_generated",),
    ),  # fmt: skip
    _c("j_per_token", "J", "lower", "J/token", section="energy"),
    _c("compile_usd", "USD", "lower", "compile USD", section="cost"),  # backend=compile: part of run_usd
    _c("usd_to_target", "USD", "lower", "cost to target", section="cost"),
    _c("training_usd", "USD", "lower", "training USD", section="cost"),
    _c("teacher_train_usd", "USD", "lower", "teacher training USD", section="cost"),
    _c("teacher_label_usd", "USD", "lower", "teacher labels USD", section="cost"),
    _c("distill_train_usd", "USD", "lower", "distilled student USD", section="cost"),
    _c("alone_train_usd", "USD", "lower", "student alone USD", section="cost"),
    _c("total_j", "J", "lower", "energy J", section="energy", report=("energy_total_j",)),
    _c(
        "usd_per_1k_examples",
        "USD",
        "lower",
        "USD/1k examples",
        section="cost",
        report=("cost_usd_per_1k_examples",),
    ),  # fmt: skip
    _c("j_per_1k_examples", "J", "lower", "J/1k examples", section="energy", report=("energy_j_per_1k_examples",)),
    # what the weights cost to make (harness.checkpoints.made_by: fine-tuning or distillation + pretraining)
    _c("total_usd", "USD", "lower", "USD to make the weights", section="weights", report=("weights_total_usd",)),
    _c("total_energy_j", "J", "lower", "J to make the weights", section="weights"),
    # a classify run against the fp32 build of its weights (paired bootstrap intervals: harness.taskmetrics)
    _c("accuracy_ratio", "ratio", "higher", "accuracy / fp32", section="quality"),
    _c("macro_f1_ratio", "ratio", "higher", "macro-F1 / fp32", section="quality"),
    _c("agreement", "ratio", "higher", "agreement with fp32", section="quality"),
    _c(
        "next_token_agreement",
        "ratio",
        "higher",
        "next-token agreement",
        section="quality",
        report=("quality_next_token_agreement",),
    ),  # fmt: skip
    _c(
        "kl_divergence_nats_mean",
        "nats",
        "lower",
        "KL mean (nats)",
        section="quality",
        report=("quality_kl_divergence_nats_mean",),
    ),  # fmt: skip
    _c("perplexity", "ratio", "lower", "perplexity", section="quality", report=("quality_perplexity",)),
    _c("loss_nats", "nats", "lower", "held-out loss (nats)", section="quality", report=("quality_loss_nats",)),
    _c("accuracy", "ratio", "higher", "accuracy", section="quality", report=("quality_accuracy",)),
    _c("macro_f1", "ratio", "higher", "macro-F1", section="quality", report=("quality_macro_f1",)),
    _i("eval_tokens", "count", "eval tokens", section="quality", report=("quality_eval_tokens",)),
    _i("kind", "", "weights", section="weights", report=("weights_kind",)),
    _c(
        "relative_quality",
        "ratio",
        "higher",
        "relative quality",
        section="quality",
        report=("quality_relative_quality",),
    ),  # fmt: skip
)

BY_NAME: dict[tuple[str, str], Metric] = {(m.section, m.name): m for m in METRICS}
DISTRIBUTION_STATS = ("n", "p50", "p90", "p99", "mean", "stdev", "min", "max")


def get(name: str, section: str = "metrics") -> Metric:
    return BY_NAME[(section, name)]


# The report's peak memory: the GPU allocator peak where there is one, else the RSS peak (DERIVED_COLUMNS)
PEAK_MEMORY = Metric("peak_memory_bytes", "bytes", "lower", "counted", "peak memory")

# A classify run's weights' cost to make plus --served-examples at its USD per 1k examples (a projection:
# harness.report.classifier_served); the answer ranks classify runs on it when the report is given a volume
SERVED_TOTAL = Metric("served_total_usd", "USD", "lower", "counted", "USD made + served")
# figures the report derives (not in a result file), by name, for the answer's axes (Spec.answer, section "report")
REPORT_ONLY = {SERVED_TOTAL.name: SERVED_TOTAL}

# Columns the report derives from several metrics (harness.report.aggregate), with their source metrics.
DERIVED_COLUMNS = {
    "peak_memory_bytes": ("cuda_max_allocated_bytes", "peak_rss_bytes"),
    "served_total_usd": ("total_usd", "usd_per_1k_examples"),
    # quality.loss_nats where quality is meaningful (not random weights): harness.report.quality_section
    "heldout_loss_nats": ("loss_nats",),
    "quality_loss_nats_interval": ("loss_nats",),  # "[lo, hi]" text of the 95 % interval
    "quality_accuracy_interval": ("accuracy",),
    "quality_macro_f1_interval": ("macro_f1",),
    "quality_macro_f1_ratio_interval": ("macro_f1_ratio",),  # classify: ratio to the fp32 build, "[lo, hi]"
    # the result's `interference` section (not metrics): harness.interference.columns
    "disturbed": (),
    "interference_other_cpu_share": (),
}


# Default Pareto objectives per scenario, `OBJECTIVES[<workload>]`: each scenario declares its own
# (harness.scenarios.base.Spec.objectives: label, columns tried in order, sense, unit), as report columns of
# registry metrics (Metric.column, distribution stats, DERIVED_COLUMNS). Scaling efficiency's throughput per
# scenario, `SCALING_THROUGHPUT[<workload>]` (harness.scaling): Spec.scaling_throughput, the whole run's rate.
def __getattr__(name: str) -> dict:
    from harness import scenarios  # asked when read: a scenario's Spec names registry metrics (import order)

    if name == "OBJECTIVES":
        return {s.name: s.objectives for s in scenarios.all_specs() if s.objectives}
    if name == "SCALING_THROUGHPUT":
        return {s.name: s.scaling_throughput for s in scenarios.all_specs() if s.scaling_throughput}
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def names(section: str = "metrics") -> tuple[str, ...]:
    return tuple(m.name for m in METRICS if m.section == section)


def summary_columns(scenario: str) -> tuple[Metric, ...]:
    """The terminal table's columns of a scenario: the metrics its Spec.summary names, in registry order."""
    from harness import scenarios

    names = scenarios.spec(scenario, strict=False).summary
    return tuple(m for m in METRICS if m.section == "metrics" and m.name in names)


def summary_scenarios(m: Metric) -> tuple[str, ...]:
    """The scenarios whose terminal table shows `m` (docs/results.md's "summary" column)."""
    from harness import scenarios

    return tuple(s.name for s in scenarios.all_specs() if m.section == "metrics" and m.name in s.summary)


def gate_defaults() -> dict[str, dict]:
    """The gate's default metric settings (what conf/gate/default.yaml spells out)."""
    out = {}
    for m in METRICS:
        if m.gate is not None and m.section == "metrics":
            threshold, floor = m.gate
            entry = {"kind": m.kind, "better": m.better, "threshold": threshold}
            out[m.name] = entry | ({"floor": floor} if floor is not None else {})
    return out


def export_names(role: str) -> tuple[str, ...]:
    return tuple(m.name for m in METRICS if m.export == role)


def report_columns(in_metrics: bool = True) -> tuple[tuple[str, str], ...]:
    """(column, header) of the report's run table, in registry order: figures of result.metrics, or
    (in_metrics=False) those of the other sections (cost, energy, quality)."""
    out = []
    for m in METRICS:
        if (m.section == "metrics") != in_metrics:
            continue
        for col in m.report:
            header = m.label or col
            if col.endswith("_p99"):
                header = "p99 request ms" if m.name == "request_latency_s" else f"{m.name} p99"
            elif col.endswith("_n"):
                header = "n"
            out.append((col, header))
    return tuple(out)


def known_columns() -> set[str]:
    """Every report column a registry metric gives (for checking readers)."""
    cols = set(DERIVED_COLUMNS)
    for m in METRICS:
        cols.add(m.column)
        if m.distribution:
            cols.update(f"{m.column}_{s}" for s in DISTRIBUTION_STATS)
    cols.update({"target_time_s", "target_reached", "target_step"})  # metrics.target flattened
    return cols


def markdown_table() -> str:
    """The table in docs/results.md, "Metric registry"."""
    lines = [
        "| metric | name shown | section | unit | better | kind | summary | report | gate (threshold, floor) "
        "| export |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for m in METRICS:
        gate = "" if m.gate is None else f"{m.gate[0]:g}" + (f", {m.gate[1]:.0f}" if m.gate[1] else "")
        dist = " (distribution)" if m.distribution else ""
        shown = ", ".join(summary_scenarios(m))
        cells = (f"`{m.name}`{dist}", m.label, m.section, m.unit, m.better or "", m.kind, shown,
                 ", ".join(f"`{c}`" for c in m.report), gate, m.export or "")  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":  # python -m harness.metrics: the table for docs/results.md
    print(markdown_table())
