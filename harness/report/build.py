"""The pipeline: result folders → DataFrame (+ CSV/Parquet) → fronts and plots → reports/<name>/index.html."""

from __future__ import annotations

import importlib
import re
from collections.abc import Iterable, Sequence
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from harness import results, scenarios
from harness.report import aggregate, answer, classifier_served, hero, plots, quality_section, sections, speculative
from harness.report.html import Section, page, table
from harness.report.pareto import DEFAULT_OBJECTIVES, Objective, front

__all__ = ["Section", "build", "default_out_dir", "render"]
DEFAULT_FLOOR = 0.99  # MLPerf: >= 99 % of the fp32 reference
# the key fields (harness.results.key_fields) as report columns: what makes one scaling line
LINE_KEYS = (
    *("workload", "model", "precision", "batch_size", "seq_len", "decode_tokens", "max_steps"),
    *("target_eval_loss", "data", "gpus", "seed", "device", "arch", "grad_accum_steps", "grad_checkpointing"),
)


def default_out_dir(frame: pd.DataFrame, dirs: Sequence[Path], reports_dir: Path) -> Path:
    """reports/<sweep> for one sweep; reports/<a>+<b>... across several."""
    names = sorted(set(frame["sweep"])) if not frame.empty else [Path(d).name for d in dirs]
    name = "+".join(names) if len(names) <= 4 else f"{names[0]}+{len(names) - 1}-more"
    return Path(reports_dir) / (re.sub(r"[^A-Za-z0-9._=+-]+", "_", name) or "report")


def quality_floor(frame: pd.DataFrame, floor: float | None) -> float:
    """The floor asked for, else the one the runs were configured with, else MLPerf's 0.99."""
    if floor is not None:
        return float(floor)
    if "quality_floor" in frame and frame["quality_floor"].notna().any():
        return float(frame["quality_floor"].dropna().mode().iloc[0])
    return DEFAULT_FLOOR


def annotate(frame: pd.DataFrame, floor: float) -> pd.DataFrame:
    """Add `quality_ok` (False only for a confident quality fail, see quality_section.annotate) and a model label."""
    frame = quality_section.annotate(frame.copy(), floor)
    if "arch" in frame:
        several = frame.groupby("model")["arch"].transform("nunique") > 1
        name = frame["model"].astype(str)
        frame["model_label"] = name.where(~several, name + " (" + frame["arch"].astype(str) + ")")
    else:
        frame["model_label"] = frame.get("model", pd.Series("?", index=frame.index)).astype(str)
    frame["on_front"] = False
    return frame


def render(
    frame: pd.DataFrame,
    objectives: Sequence[Objective] | None = None,
    floor: float | None = None,
    extra_sections: Iterable[Section] = (),
    files: Sequence[str] = (),
    title: str = "harness report",
    served_tokens: float | None = None,
    served_examples: float | None = None,
) -> tuple[str, pd.DataFrame]:
    """The HTML page and the annotated frame (with `quality_ok` and `on_front`)."""
    floor = quality_floor(frame, floor)
    frame = classifier_served.add_column(annotate(frame, floor), served_examples)
    groups, extra_cols = [], []
    for (workload, sweep), rows in frame.groupby(["workload", "sweep"], sort=True, dropna=False):
        objs = list(objectives) if objectives else list(DEFAULT_OBJECTIVES.get(str(workload), ()))
        fr = front(rows, objs, rows["quality_ok"])
        frame.loc[rows.index, "on_front"] = fr.on_front
        extra_cols += [(c, f"{o.label} ({o.unit})" if o.unit else o.label) for o, c in fr.active]
        rows = frame.loc[rows.index]
        groups.append(sections.Group(str(workload), str(sweep), rows, fr, answer.answer(rows, str(workload))))
    charts, plotly_on_page = {}, False
    for workload in dict.fromkeys(g.workload for g in groups):
        answers = [g.answer for g in groups if g.workload == workload and g.answer is not None]
        if answers:
            charts[workload], plotly_on_page = hero.charts(
                answers, workload, not plotly_on_page, sections.anchor(workload)
            )
    scaling = plots.scaling_table(frame, LINE_KEYS)
    if scaling is not None:
        scaling_svg = plots.scaling_figure(scaling, "scaling with the device count")
        note = (
            f"Efficiency = throughput at N ÷ (N × that of the same configuration at gpus=1), "
            f"from {scaling['column'].iloc[0]} of ok runs (as in scaling.json)."
        )
    else:
        scaling_svg = None
        note = (
            "No scaling plot: it needs ok results of the same configuration at gpus=1 and at more gpus "
            "(e.g. python -m harness -m gpus=1,2)."
        )
    sweeps = sorted(set(frame["sweep"])) if "sweep" in frame else []
    subtitle = (
        f"{len(frame)} runs from {len(sweeps)} sweep(s): {', '.join(sweeps)}; generated "
        f"{datetime.now(timezone.utc).isoformat(timespec='seconds')}"
    )
    # the workloads' own report sections (Spec.report_section: serving's), for the workloads of these runs
    workloads = dict.fromkeys(str(w) for w in frame.get("workload", ()))
    own = [s.report_section for s in (scenarios.spec(w, strict=False) for w in workloads) if s.report_section]
    spec_html, plotly_on_page = speculative.section(frame, plotly_on_page)  # empty without draft runs
    body = [
        sections.summary(groups, floor, charts) + sections.disturbed_note(frame) + sections.adaptive_note(frame),
        quality_section.quality(frame, floor, sections.config_label),
        quality_section.projection(frame, served_tokens, sections.config_label),
        classifier_served.section(frame, served_examples, sections.config_label),
        sections.plots(scaling_svg, note),
        spec_html,
        *(_call(target, frame, plotly_on_page) for _, _, target in own),  # the workloads' own (serving's)
        sections.runs_table(frame, extra_cols),
        sections.failures(frame),
        sections.environment(frame),
        sections.cost_energy(frame),
        sections.methodology(frame, floor, files),
    ]
    extra = list(extra_sections)
    nav = [
        ("summary", "The answer"),
        *[(s.anchor, s.title) for s in extra],
        ("quality", "Quality"),
        *([("projection", "Cost projection")] if served_tokens else []),
        *([("classifier-served", "Classifier cost")] if served_examples else []),
        ("plots", "Scaling"),
        *([("speculative", "Speculative decoding")] if spec_html else []),
        *((anchor, title) for anchor, title, _ in own),
        ("runs", "All runs"),
        ("failures", "Failures"),
        ("environment", "Environment"),
        ("cost", "Prices & energy"),
        ("methodology", "Methodology"),
    ]
    return page(title, subtitle, nav, body, extra), frame


def _call(target: str, frame: pd.DataFrame, plotly_on_page: bool) -> str:
    """A workload's own report section (Spec.report_section's "module:function")."""
    module, function = target.split(":")
    return getattr(importlib.import_module(module), function)(frame, plotly_on_page)


def damaged_section(damaged: Sequence[tuple[Path, str]]) -> list[Section]:
    """The result files left out of this report, each with what is wrong with it."""
    if not damaged:
        return []
    rows = [(str(path), why) for path, why in damaged]
    note = f"<p>{len(rows)} result file(s) could not be read and are left out of every table and plot.</p>"
    return [Section("Damaged result files (left out)", note + table(["file", "what is wrong"], rows), anchor="damaged")]


def gate_sections(dirs: Sequence[Path]) -> list[Section]:
    """The regression gate's verdict for each results folder the gate wrote one into (verdicts.json)."""
    from harness.gate.render import html_fragment, read_verdicts

    found = [d / "verdicts.json" for d in dirs if (d / "verdicts.json").is_file()]
    return [
        Section(f"Regression gate ({path.parent.name})", html_fragment(read_verdicts(path)), anchor=f"gate-{i}")
        for i, path in enumerate(found)
    ]


def build(
    dirs: Sequence[Path | str],
    out_dir: Path | str | None = None,
    objectives: Sequence[Objective] | None = None,
    floor: float | None = None,
    extra_sections: Iterable[Section] = (),
    reports_dir: Path | str = "reports",
    served_tokens: float | None = None,
    served_examples: float | None = None,
) -> Path:
    """Read every result under `dirs`, write index.html, runs.csv (+ runs.parquet) and return index.html's path.
    Raises FileNotFoundError when there is no result file."""
    dirs = [Path(d) for d in dirs]
    damaged: list[tuple[Path, str]] = []
    frame = aggregate.load_frame(dirs, damaged)
    for path, why in damaged:
        results.warn_damaged(path, why, "left out of the report")
    if frame.empty:
        raise FileNotFoundError(f"no result files (result.json) under {', '.join(map(str, dirs))}")
    out = Path(out_dir) if out_dir is not None else default_out_dir(frame, dirs, Path(reports_dir))
    out.mkdir(parents=True, exist_ok=True)
    sweeps = sorted(set(frame["sweep"]))
    title = f"harness report: {', '.join(sweeps)}" if len(sweeps) <= 4 else f"harness report: {len(sweeps)} sweeps"
    files = ["runs.csv", "runs.parquet"] if aggregate.parquet_available() else ["runs.csv"]
    extra_sections = [*extra_sections, *gate_sections(dirs), *damaged_section(damaged)]
    html_text, annotated = render(
        frame, objectives, floor, extra_sections, files, title, served_tokens, served_examples
    )
    aggregate.save(annotated, out)
    index = out / "index.html"
    tmp = index.with_suffix(".html.tmp")
    tmp.write_text(html_text, encoding="utf-8")
    tmp.replace(index)
    return index
