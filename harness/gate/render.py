"""The gate's verdicts for people: a Markdown summary (CI job summary, PR comment) and an HTML fragment.

Both render a verdicts.json record (see docs/gate.md), so a report built later can include the gate's
section from the file alone: `html_fragment(read_verdicts("results/<sweep>/verdicts.json"))`.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from harness.gate.compare import VERDICTS_SCHEMA

HEADER = ("verdict", "config", "metric", "baseline", "candidate", "ratio [CI]", "threshold", "note")


def value(metric: str, x: Any) -> str:
    """A figure with its unit, from the unit suffix of the metric's name (docs/results.md)."""
    if x is None:
        return "-"
    if isinstance(x, str):
        return x
    if metric.endswith("_bytes"):
        return f"{x / 2**20:,.1f} MiB"
    if metric.endswith("_tok_per_s"):
        return f"{x:,.1f} tok/s"
    if metric.endswith("_per_s"):
        return f"{x:,.2f} /s"
    if metric.endswith(("_s", "_s_p50")):
        return f"{x * 1e3:,.3g} ms" if x < 1 else f"{x:,.3g} s"
    if metric.endswith("_j"):
        return f"{x:,.3g} J"
    if metric.endswith("_usd"):
        return f"${x:,.4g}"
    return f"{x:,.0f}" if float(x).is_integer() else f"{x:,.4g}"


def ratio(c: Mapping[str, Any]) -> str:
    if c.get("ratio") is None:
        return "-"
    if c.get("ci_low") is None:
        return f"{c['ratio']:.3f}"
    return f"{c['ratio']:.3f} [{c['ci_low']:.3f}, {c['ci_high']:.3f}]"


def threshold(c: Mapping[str, Any]) -> str:
    t = c.get("threshold")
    if t is None:
        return "-"
    pct = f"{t * 100:g} %"
    if c.get("floor"):
        return f"±max({pct}, {value(c['metric'], c['floor'])})"
    if c["kind"] == "counted":
        return f"±{pct}"
    return f"ratio ≤ {1 + t:.2f}" if c.get("better") == "lower" else f"ratio ≥ {1 - t:.2f}"


def _row(c: Mapping[str, Any]) -> tuple[str, ...]:
    note = c.get("note") or ""
    if c.get("n_baseline") is not None:
        note = f"n={c['n_baseline']}/{c['n_candidate']}" + (f"; {note}" if note else "")
    return (
        c["verdict"],
        c["label"],
        c["metric"],
        value(c["metric"], c.get("baseline")),
        value(c["metric"], c.get("candidate")),
        ratio(c),
        threshold(c),
        note,
    )


_MD_SPECIAL = re.compile(r"([\\`*\[\]|~])|(?<![A-Za-z0-9])_|_(?![A-Za-z0-9])")


def md(text: Any) -> str:
    """Text from a result (a model name, a reason) as inert Markdown: HTML and Markdown markup escaped."""
    s = html.escape(str(text), quote=False).replace("\r", " ").replace("\n", " ")
    return _MD_SPECIAL.sub(lambda m: "\\" + m.group(0), s)


def md_code(text: Any) -> str:
    """A Markdown code span that no backtick inside `text` can close early (CommonMark: a longer fence)."""
    s = str(text).replace("\n", " ")
    fence = "`" * (max((len(r) for r in re.findall("`+", s)), default=0) + 1)
    pad = " " if s.startswith("`") or s.endswith("`") or fence != "`" else ""
    return f"{fence}{pad}{s}{pad}{fence}"


def _commands(checks: list[Mapping[str, Any]]) -> dict[str, tuple[str, str]]:
    """One reproduce command per canonical key (the label drops workload, seed, device ...): key → (label, cmd)."""
    return {c["key"]: (c["label"], c["reproduce"]) for c in checks if c.get("reproduce")}


def _md_table(rows: list[tuple[str, ...]]) -> list[str]:
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    lines += ["| " + " | ".join(md(x) for x in r) + " |" for r in rows]
    return lines


def _side(info: Mapping[str, Any], markdown: bool = False) -> str:
    git = info.get("git") or {}
    commit = f", commit `{git['commit'][:10]}`{' (dirty)' if git.get('dirty') else ''}" if git.get("commit") else ""
    sources = " ".join(info["sources"])
    return f"{md_code(sources) if markdown else f'`{sources}`'} ({info['runs']} runs{commit})"


def headline(report: Mapping[str, Any]) -> str:
    counts = ", ".join(f"{n} {v}" for v, n in report["counts"].items() if n)
    return f"{report['outcome'].upper()} (exit code {report['exit_code']}): {counts or 'nothing compared'}"


def _disturbed_md(found: Mapping[str, Any]) -> list[str]:
    """A warning listing the runs measured beside other load (verdicts.json `disturbed`), or nothing."""
    rows = [(side, d) for side, ds in found.items() for d in ds]
    if not rows:
        return []
    lines = [
        f"**Warning: {len(rows)} disturbed run(s)**: measured while other load ran beside them (their "
        "`interference` section); their timings may judge the machine, not the change. `--refuse-disturbed` "
        "refuses such inputs.",
        "",
    ]
    return lines + [f"- {side}: {md(d['label'])}: {md(d['reason'])}" for side, d in rows] + [""]


def markdown(report: Mapping[str, Any]) -> str:
    """The summary a reviewer reads: flagged checks first (most severe first), the commands, the rest folded."""
    checks = report["checks"]
    shown = [c for c in checks if c["verdict"] != "pass"]
    passing = [c for c in checks if c["verdict"] == "pass"]
    s = report["settings"]
    lines = [
        f"## Regression gate: {headline(report)}",
        "",
        f"Candidate {_side(report['candidate'], True)} against baseline {_side(report['baseline'], True)}.",
        "",
    ]
    lines += _disturbed_md(report.get("disturbed") or {})
    if shown:
        lines += _md_table([_row(c) for c in shown]) + [""]
    noted = [c for c in passing if c["metric"] == "environment"]
    if noted:
        lines += ["Environment differences noted (not blocking):", ""]
        lines += [f"- {md(c['label'])}: {md(c['note'].removeprefix('noted: '))}" for c in noted] + [""]
    commands = _commands(shown)
    if commands:
        lines += ["### Reproduce the flagged runs", ""]
        lines += [f"- {md(label)} ({md_code(key)}): {md_code(cmd)}" for key, (label, cmd) in commands.items()] + [""]
    if passing:
        lines += [f"<details><summary>{len(passing)} passing checks</summary>", ""]
        lines += _md_table([_row(c) for c in passing]) + ["", "</details>", ""]
    lines += [
        f"Timed metrics: {s['statistic']}, {s['confidence']:.0%} {s['interval']} ({s['resamples']} resamples, "
        f"seed {s['seed']}); pass when the interval's worse bound is within the threshold, regression when the "
        "whole interval is beyond it, inconclusive otherwise. Counted metrics: the change against a tolerance."
    ]
    return "\n".join(lines) + "\n"


_STYLE = (
    "<style>.harness-gate table{border-collapse:collapse}.harness-gate td,.harness-gate th{padding:2px 8px;"
    "border-bottom:1px solid #ddd;text-align:left}.harness-gate .regression,.harness-gate .incomparable,"
    ".harness-gate .missing{background:#fde2e1}.harness-gate .inconclusive{background:#fff4ce}"
    ".harness-gate .improvement{background:#e3f4e1}</style>"
)


def html_fragment(report: Mapping[str, Any]) -> str:
    """A self-contained <section> for the HTML report: headline, every check (most severe first), commands."""
    e = html.escape
    out = [
        f'<section class="harness-gate" data-outcome="{e(report["outcome"])}">',
        _STYLE,
        f"<h2>Regression gate: {e(headline(report))}</h2>",
        f"<p>Candidate {e(_side(report['candidate']))} against baseline {e(_side(report['baseline']))}.</p>",
        "<table><thead><tr>" + "".join(f"<th>{e(h)}</th>" for h in HEADER) + "</tr></thead><tbody>",
    ]
    for c in report["checks"]:
        cells = "".join(f"<td>{e(x)}</td>" for x in _row(c))
        out.append(f'<tr class="{e(c["verdict"])}">{cells}</tr>')
    out.append("</tbody></table>")
    commands = _commands(report["checks"])
    if commands:
        out.append("<h3>Reproduce the flagged runs</h3><ul>")
        out += [
            f"<li>{e(label)} (<code>{e(key)}</code>): <code>{e(cmd)}</code></li>"
            for key, (label, cmd) in commands.items()
        ]
        out.append("</ul>")
    out.append("</section>")
    return "\n".join(out) + "\n"


def read_verdicts(path: str | Path) -> dict[str, Any]:
    """A verdicts.json written by the gate; raises ValueError if it is something else."""
    data = json.loads(Path(path).read_text())
    if not isinstance(data, dict) or data.get("schema") != VERDICTS_SCHEMA:
        raise ValueError(f"{path}: not a {VERDICTS_SCHEMA} file")
    return data
