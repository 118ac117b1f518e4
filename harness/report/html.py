"""The self-contained HTML page: inline CSS, plots embedded as SVG data, a few lines of inline JS to sort
tables. It opens offline: nothing is fetched. Every string from configs, results or environments goes
through `esc` (HTML-escaped), so a model named `<script>...` is shown, never run.
"""

from __future__ import annotations

import base64
import html
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

EXTRA_BEGIN = "<!-- harness:extra-sections:begin (e.g. the CI regression gate's verdict) -->"
EXTRA_END = "<!-- harness:extra-sections:end -->"


@dataclass(frozen=True)
class Section:
    """A section another tool adds to the report (e.g. the CI gate's verdict). `title` is escaped here;
    `html` is inserted as it is, so its producer must escape what it shows (use `esc`)."""

    title: str
    html: str
    anchor: str = "extra"


def esc(value: Any) -> str:
    """Text → HTML-safe text (quotes included, so it is safe in attributes too)."""
    return html.escape("" if value is None else str(value), quote=True)


def missing(value: Any) -> bool:
    if value is None:
        return True
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def fmt(value: Any, digits: int = 3) -> str:
    """A number for people: 3 significant digits, thousands grouped; '–' for not measured."""
    if missing(value):
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        v = float(value)
        if v == 0 or not math.isfinite(v):
            return f"{v:g}"
        if abs(v) >= 1000 or v == int(v) and abs(v) >= 1:
            return f"{v:,.0f}" if abs(v) >= 100 else f"{v:,.{digits - 1}f}".rstrip("0").rstrip(".")
        if abs(v) < 1e-3:
            return f"{v:.{digits - 1}e}"
        return f"{v:.{digits}g}"
    return str(value)


def sort_key(value: Any) -> str:
    """data-v attribute: numbers as numbers, missing values last."""
    if missing(value):
        return ""
    if isinstance(value, bool):
        return str(int(value))
    if isinstance(value, (int, float)):
        return repr(float(value))
    return str(value)


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]], cls: str = "", sortable: bool = False) -> str:
    """An HTML table; each cell is (shown text, sort value) or plain text; everything escaped."""
    attrs = f' class="{esc(cls)}"' if cls else ""
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = []
    for row in rows:
        row_cls = ""
        if isinstance(row, dict):
            row_cls, row = row.get("cls", ""), row["cells"]
        cells = []
        for cell, header in zip(row, [*headers, *[""] * len(row)], strict=False):
            shown, key, raw = (cell + (False,))[:3] if isinstance(cell, tuple) else (cell, cell, False)
            text = shown if raw else esc(shown)
            # data-label: a narrow screen shows each cell under its header's name (CSS, table.compact)
            cells.append(f'<td data-v="{esc(sort_key(key))}" data-label="{esc(header)}">{text}</td>')
        body.append(f'<tr class="{esc(row_cls)}">' + "".join(cells) + "</tr>")
    sort_attr = ' data-sortable="1"' if sortable else ""
    return f"<table{attrs}{sort_attr}><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def svg_img(svg: str, alt: str) -> str:
    """An SVG as an <img> data URI: self-contained, and nothing inside it can run as script."""
    data = base64.b64encode(svg.encode("utf-8")).decode("ascii")
    return f'<img class="plot" alt="{esc(alt)}" src="data:image/svg+xml;base64,{data}">'


def code(command: str) -> str:
    return f"<code>{esc(command)}</code>"


def code_cell(command: str) -> tuple[str, str, bool]:
    """A table cell showing a command in monospace (already-escaped markup, sorted by the text)."""
    return (code(command), command, True)


CSS = """
:root { --fg:#202124; --muted:#5f6368; --line:#dadce0; --front:#1f6fd1; --bad:#d93025; --warn:#b06000; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--fg);
       margin: 0 auto; padding: 24px 32px 64px; max-width: 1400px; background: #fff; }
h1 { font-size: 24px; margin: 0 0 4px; } h2 { font-size: 19px; margin: 36px 0 8px; border-bottom: 1px solid
var(--line); padding-bottom: 4px; } h3 { font-size: 16px; margin: 22px 0 6px; }
.meta, .muted { color: var(--muted); } .note { background: #fef7e0; border-left: 4px solid var(--warn);
padding: 6px 10px; margin: 6px 0; } .bad { color: var(--bad); font-weight: 600; }
nav a { margin-right: 14px; } code { font: 12px/1.3 ui-monospace, Menlo, Consolas, monospace;
background: #f1f3f4; padding: 1px 4px; border-radius: 3px; word-break: break-all; }
table { border-collapse: collapse; margin: 6px 0 12px; font-size: 13px; }
th, td { border: 1px solid var(--line); padding: 3px 7px; text-align: left; vertical-align: top; }
th { background: #f1f3f4; position: sticky; top: 0; }
table[data-sortable] th { cursor: pointer; user-select: none; } table[data-sortable] th:hover { background: #e8eaed; }
th.asc::after { content: " \\25B2"; } th.desc::after { content: " \\25BC"; }
tr.disturbed td:first-child { box-shadow: inset 5px 0 var(--warn); }
tr.front td { background: #e8f0fe; } tr.failing td { background: #fce8e6; } tr.notok td { color: var(--muted); }
.wide { overflow-x: auto; max-width: 100%; } img.plot { max-width: 100%; height: auto; display: block;
margin: 8px 0 16px; border: 1px solid var(--line); }
.cards { display: flex; flex-wrap: wrap; gap: 12px; } .card { border: 1px solid var(--line); border-radius: 6px;
padding: 8px 12px; min-width: 150px; } .card b { display: block; font-size: 20px; }
td code { white-space: nowrap; word-break: normal; }
.charts { display: grid; grid-template-columns: minmax(0, 1fr) minmax(0, 1fr); gap: 8px 16px; margin: 8px 0; }
.chart { border: 1px solid var(--line); border-radius: 6px; min-width: 0; } .chart.hero { grid-column: 1 / -1; }
.answer { font-size: 15px; background: #e8f0fe; border-left: 4px solid var(--front); padding: 4px 12px;
margin: 8px 0; } details > summary { cursor: pointer; color: var(--muted); margin: 6px 0; }
table.runs td:nth-child(-n+2) { white-space: nowrap; }
@media (max-width: 800px) {
  body { padding: 12px 12px 48px; } .charts { grid-template-columns: minmax(0, 1fr); } nav a { display: inline-block; }
  table.compact thead { display: none; } table.compact, table.compact tbody, table.compact tr { display: block; }
  table.compact tr { border: 1px solid var(--line); margin: 0 0 8px; } table.compact td { display: block; border: 0;
  border-bottom: 1px solid #f1f3f4; } table.compact td::before { content: attr(data-label) ": "; font-weight: 600; }
  td code { white-space: normal; word-break: break-all; }
}
.legend span { display: inline-block; padding: 1px 8px; margin-right: 8px; border: 1px solid var(--line); }
"""

# Sort a table by the clicked column (numbers numerically, missing values last); no dependencies.
JS = """
document.querySelectorAll("table[data-sortable]").forEach(function (t) {
  t.querySelectorAll("th").forEach(function (th, col) {
    th.addEventListener("click", function () {
      var asc = !th.classList.contains("asc");
      t.querySelectorAll("th").forEach(function (h) { h.classList.remove("asc", "desc"); });
      th.classList.add(asc ? "asc" : "desc");
      var body = t.tBodies[0], rows = Array.prototype.slice.call(body.rows);
      rows.sort(function (a, b) {
        var x = a.cells[col].getAttribute("data-v"), y = b.cells[col].getAttribute("data-v");
        if (x === "" || y === "") { return (x === "") - (y === ""); }
        var nx = parseFloat(x), ny = parseFloat(y), d;
        d = (!isNaN(nx) && !isNaN(ny) && String(nx) !== "NaN") ? nx - ny : x.localeCompare(y);
        return asc ? d : -d;
      });
      rows.forEach(function (r) { body.appendChild(r); });
    });
  });
});
document.documentElement.setAttribute("data-report-js", "ready");  // the browser test checks it ran
"""


def page(
    title: str, subtitle: str, nav: Sequence[tuple[str, str]], body: Sequence[str], extra: Sequence[Section]
) -> str:
    """The whole document. `body` parts are already-escaped HTML; `extra` sections go in their marked place."""
    links = "".join(f'<a href="#{esc(a)}">{esc(t)}</a>' for a, t in nav)
    extra_html = "".join(f'<section id="{esc(s.anchor)}"><h2>{esc(s.title)}</h2>{s.html}</section>' for s in extra)
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        # nothing may be fetched: an offline page, and no icon request that would log an error
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; img-src data:; '
        "style-src 'unsafe-inline'; script-src 'unsafe-inline'\">"
        '<link rel="icon" href="data:,">'
        f"<title>{esc(title)}</title><style>{CSS}</style></head><body>"
        f'<h1>{esc(title)}</h1><p class="meta">{esc(subtitle)}</p><nav>{links}</nav>'
        + "".join(body[:1])
        + f"\n{EXTRA_BEGIN}\n{extra_html}\n{EXTRA_END}\n"
        + "".join(body[1:])
        + f"<script>{JS}</script></body></html>\n"
    )
