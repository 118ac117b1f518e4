"""What a person sees, in headless Chromium at 1400 px and at 390 px: the answer sentence, the hero chart's
points and front (plotly's own data, read from the DOM), hover text, no horizontal overflow, no text under
10 px, no overlapping chart labels. Screenshots are kept beside the report in the test's tmp folder
(pytest keeps the last runs' folders: /tmp/pytest-of-<user>/pytest-current/)."""

from __future__ import annotations

import json
import re

import pytest
from synthetic import disturb, write
from test_report_answer import run
from test_report_browser import CHROMIUM, chromium, console_messages

from harness.report import build

pytestmark = pytest.mark.skipif(CHROMIUM is None and not __import__("os").environ.get("CI"), reason="no chromium")

# Runs after plotly has drawn: writes what the page shows into <pre id="probe"> for --dump-dom to carry out.
PROBE = """<script>
window.addEventListener("load", function () { setTimeout(function () {
  var out = {width: window.innerWidth, overflow: document.documentElement.scrollWidth - window.innerWidth};
  var small = [];
  document.querySelectorAll("body *").forEach(function (el) {
    var own = Array.prototype.some.call(el.childNodes, function (n) {
      return n.nodeType === 3 && n.textContent.trim(); });
    if (!own || !el.getClientRects().length) { return; }  // no text of its own, or not shown (closed <details>)
    var px = parseFloat(getComputedStyle(el).fontSize);
    if (px < 10) { small.push(el.tagName + " " + px + "px: " + el.textContent.trim().slice(0, 40)); }
  });
  out.small = small;
  out.answer = document.querySelector(".answer").innerText;
  var gd = document.getElementById("w-inference-0");
  out.traces = gd.data.map(function (t) { return {name: t.name, mode: t.mode, x: t.x, y: t.y}; });
  var boxes = Array.prototype.map.call(gd.querySelectorAll(".annotation"), function (a) {
    var r = a.getBoundingClientRect(); return [r.left, r.top, r.right, r.bottom, a.textContent]; });
  out.annotations = boxes;
  var i = gd.data.findIndex(function (t) { return t.name === "small · bf16"; });
  var p = gd.data[i].x.indexOf(Math.max.apply(null, gd.data[i].x));  // bs=1 (bs=4 is cheaper, disturbed)
  Plotly.Fx.hover(gd, [{curveNumber: i, pointNumber: p}]);
  out.hover = gd.querySelector(".hoverlayer").textContent;
  parent.postMessage(JSON.stringify(out), "*");
}, 300); });
</script></body>"""
# Headless Chromium's window is at least 500 px wide: narrower views are an iframe of that width, whose page
# posts what it sees to this one (file:// pages are of different origins, so a message, not a DOM read).
FRAME = """<!DOCTYPE html><html><body style="margin:0"><iframe src="{src}" width="{width}" height="{height}"
style="border:0"></iframe><script>window.addEventListener("message", function (e) {{
var pre = document.createElement("pre"); pre.id = "probe"; pre.textContent = e.data; document.body.appendChild(pre);
}});</script></body></html>"""


def _framed(report, page: str, width: int, height: int):
    frame = report.parent / f"frame-{width}-{page}"
    frame.write_text(FRAME.format(src=page, width=width, height=height))
    return frame


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    root = tmp_path_factory.mktemp("view")
    records = [
        run("tiny", "fp32", 3.12, 500.0),
        run("tiny", "bf16", 3.121, 400.0),
        run("tiny", "int8", 3.5, 2000.0, verdict="fail"),
        run("small", "fp32", 2.932, 150.0),
        run("small", "bf16", 2.931, 200.0),
        run("small", "int8", 2.9298, 100.0),
        disturb(run("small", "bf16", 2.93, 1000.0, batch_size=4)),
    ]
    return build([write(root / "results", "2026-12-04_20-22-35", records)], out_dir=root / "report")


def _probe(report, tmp_path, width: int) -> dict:
    page = report.parent / "probe.html"
    page.write_text(report.read_text().replace("</body>", PROBE))
    frame = _framed(report, page.name, width, 900)
    proc = chromium(frame, tmp_path / "profile", "--window-size=1420,920", "--virtual-time-budget=5000", "--dump-dom")
    assert console_messages(proc.stderr) == [], console_messages(proc.stderr)
    found = re.search(r"<pre id=\"probe\">(.*?)</pre>", proc.stdout, re.S)
    assert found, proc.stdout[-3000:]
    return json.loads(found.group(1).replace("&amp;", "&"))


def _overlap(a, b) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


@pytest.mark.parametrize("width", [1400, 390])
def test_what_a_person_sees(report, tmp_path, width):
    seen = _probe(report, tmp_path, width)
    assert seen["width"] == width and seen["overflow"] <= 0, seen["overflow"]  # no table wider than the page
    assert seen["small"] == []  # no text under 10 px, chart ticks included
    assert "Best quality per dollar: small bf16 bs=1 seq=128 gpus=1:" in seen["answer"]
    assert "3 configurations tie for the best held-out loss" in seen["answer"]
    assert "Not recommended: 1 below the quality floor (tiny int8" in seen["answer"]
    points = [t for t in seen["traces"] if t["mode"] == "markers"]
    assert len(points) == 6 and sum(len(t["x"]) for t in points) == 7  # every model × precision, one chart
    (front,) = [t for t in seen["traces"] if t["mode"] == "lines"]
    assert front["y"] == pytest.approx([3.12, 2.931, 2.9298])  # tiny fp32 → small bf16 → small int8
    assert [a[4] for a in seen["annotations"]] == ["knee", "recommended"] or len(seen["annotations"]) == 1
    boxes = seen["annotations"]
    assert not any(_overlap(a, b) for i, a in enumerate(boxes) for b in boxes[i + 1 :])
    hover = seen["hover"]
    assert "small bf16 bs=1 seq=128 gpus=1" in hover and "held-out loss (nats): 2.931 [2.881, 2.981]" in hover
    assert "python -m harness model=small precision=bf16" in hover and "USD/1M tok: 3.47 USD" in hover


@pytest.mark.parametrize("width", [1400, 390])
def test_screenshot(report, tmp_path, width):
    shot = report.parent / f"screenshot-{width}.png"
    frame = _framed(report, report.name, width, 3000)
    proc = chromium(frame, tmp_path / "profile", f"--window-size={max(width, 500)},3000", "--virtual-time-budget=5000",
                    f"--screenshot={shot}")  # fmt: skip
    assert proc.returncode == 0 and shot.stat().st_size > 20_000, proc.stderr[-2000:]
    assert console_messages(proc.stderr) == []
