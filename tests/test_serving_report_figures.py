"""The serving section's TTFT-by-turn, cache hit/miss and server-gauge figures, from real result records
(results.make_result, results.write_atomic) with made-up figures; and what a person sees of them in headless
Chromium at 1400 and 390 px (no horizontal overflow, no text under 10 px, each figure's points and n)."""

from __future__ import annotations

import copy
import json
import re

import pytest
from synthetic import ENV, config, dist
from test_report_browser import CHROMIUM, chromium, console_messages
from test_report_view import _framed

from harness import results
from harness.report import aggregate, serving_figures, serving_plots
from harness.report.build import build


def _serving(root, rate, ttft_p50, **figures):
    cfg = config(workload={**config()["workload"], "name": "serving"})
    cfg["serving"] = copy.deepcopy(cfg["serving"])
    cfg["serving"].update(rate=rate, dataset=figures.pop("dataset", "random"))
    metrics = {
        "ttft_s": dist(ttft_p50, ttft_p50 * 3),
        "tpot_s": dist(0.01, 0.02),
        "request_throughput_req_per_s": rate * 0.95,
        "offered_rate_req_per_s": rate,
        **figures,
    }
    record = results.make_result(cfg, "ok", None, ENV, metrics=metrics)
    results.write_atomic(root / "sw" / results.run_slug(cfg) / results.RESULT_FILE, record)


TURNS = [
    {"turn": 1, "n": 8, "p50": 0.020, "p90": 0.03, "p99": 0.040, "mean": 0.02},
    {"turn": 2, "n": 8, "p50": 0.030, "p90": 0.04, "p99": 0.050, "mean": 0.03},
    {"turn": 3, "n": 5, "p50": 0.045, "p90": 0.05, "p99": 0.060, "mean": 0.045},
]


def _all_figures(root):
    for rate, kv in ((1.0, 0.25), (4.0, 0.8)):
        _serving(
            root, rate, 0.02 * rate, dataset="sharegpt", ttft_s_by_turn=TURNS if rate == 1.0 else None,
            prompt_tokens_cached=400, prefix_cache_hit_rate=0.4,
            ttft_s_cache_hit=dist(0.010 * rate, 0.02 * rate, n=12), ttft_s_cache_miss=dist(0.030 * rate, 0.06, n=9),
            server_waiting_requests_mean=0.5 * rate, server_waiting_requests_max=2 * rate,
            server_running_requests_mean=1.5 * rate, server_kv_cache_usage_max=kv, server_metrics_samples=7,
        )  # fmt: skip


def test_known_answers_of_each_figure(tmp_path):
    _all_figures(tmp_path / "res")
    frame = aggregate.load_frame([tmp_path / "res"])
    assert json.loads(frame["ttft_s_by_turn"].dropna().iloc[0]) == TURNS  # a list survives as JSON text
    rows = serving_plots._lines(frame)
    turn = serving_figures.by_turn(rows, lambda r: "conv")
    p50, p99 = turn.data
    assert p50.x == (1, 2, 3) and p50.y == pytest.approx((20.0, 30.0, 45.0)) and p50.text == ("n=8", "n=8", "n=5")
    assert p99.y == pytest.approx((40.0, 50.0, 60.0)) and p99.line.dash == "dot"
    hit, miss = serving_figures.cache_hit_miss(rows, serving_plots._line).data
    assert hit.name.endswith(" hits") and miss.name.endswith(" misses")
    assert hit.x == (1.0, 4.0) and hit.y == pytest.approx((10.0, 40.0)) and hit.text == ("n=12", "n=12")
    assert miss.y == pytest.approx((30.0, 120.0)) and miss.text == ("n=9", "n=9")
    queue, kv = serving_figures.server_queue(rows, serving_plots._line)
    waiting_mean, waiting_max, running = queue.data
    assert waiting_mean.y == pytest.approx((0.5, 2.0)) and waiting_max.y == pytest.approx((2.0, 8.0))
    assert running.y == pytest.approx((1.5, 6.0)) and running.text == ("n=7", "n=7")
    assert kv.data[0].x == (1.0, 4.0) and kv.data[0].y == pytest.approx((25.0, 80.0))  # a fraction, shown as %
    page = build([tmp_path / "res"], out_dir=tmp_path / "rep").read_text()
    for div in ("serving-turns", "serving-cache", "serving-server-0", "serving-server-1"):
        assert f'id="{div}"' in page
    assert "No TTFT by turn" not in page and "reported no cached tokens" not in page
    assert page.count("plotly.js v") == 1  # plotly's script inlined once per page


def test_a_sentence_where_a_figure_is_absent(tmp_path):
    _serving(tmp_path / "res", 2.0, 0.05)
    _serving(tmp_path / "res2", 2.0, 0.05, server_metrics_samples=4)  # scraped, but no known gauge there
    page = build([tmp_path / "res"], out_dir=tmp_path / "rep").read_text()
    assert "No TTFT by turn: no run replayed conversations (serving.dataset=sharegpt)." in page
    assert "No prefix-cache hit vs miss TTFT: the engine reported no cached tokens" in page
    assert "No server queue or KV-cache figure: serving.metrics_url was not scraped." in page
    assert 'id="serving-turns"' not in page and 'id="serving-cache"' not in page
    page = build([tmp_path / "res2"], out_dir=tmp_path / "rep2").read_text()
    assert "the engine&#x27;s metrics page had none of the known gauges" in page


# Runs after plotly has drawn: what the page shows, posted to the frame around it (see test_report_view).
PROBE = """<script>
window.addEventListener("load", function () { setTimeout(function () {
  var out = {width: window.innerWidth, overflow: document.documentElement.scrollWidth - window.innerWidth};
  var small = [];
  document.querySelectorAll("body *").forEach(function (el) {
    var own = Array.prototype.some.call(el.childNodes, function (n) {
      return n.nodeType === 3 && n.textContent.trim(); });
    if (!own || !el.getClientRects().length) { return; }
    var px = parseFloat(getComputedStyle(el).fontSize);
    if (px < 10) { small.push(el.tagName + " " + px + "px: " + el.textContent.trim().slice(0, 40)); }
  });
  out.small = small;
  out.figures = {};
  ["serving-turns", "serving-cache", "serving-server-0", "serving-server-1"].forEach(function (id) {
    var gd = document.getElementById(id);
    var box = gd.getBoundingClientRect();
    out.figures[id] = {width: box.width, right: box.right, texts: gd.querySelectorAll(".textpoint").length,
      y: gd.data.map(function (t) { return t.y; })};
  });
  parent.postMessage(JSON.stringify(out), "*");
}, 300); });
</script></body>"""


@pytest.mark.skipif(CHROMIUM is None and not __import__("os").environ.get("CI"), reason="no chromium")
@pytest.mark.parametrize("width", [1400, 390])
def test_what_a_person_sees(tmp_path, width):
    _all_figures(tmp_path / "res")
    report = build([tmp_path / "res"], out_dir=tmp_path / "rep")
    page = report.parent / "probe.html"
    page.write_text(report.read_text().replace("</body>", PROBE))
    frame = _framed(report, page.name, width, 900)
    proc = chromium(frame, tmp_path / "profile", "--window-size=1420,920", "--virtual-time-budget=5000", "--dump-dom")
    assert console_messages(proc.stderr) == [], console_messages(proc.stderr)
    found = re.search(r"<pre id=\"probe\">(.*?)</pre>", proc.stdout, re.S)
    assert found, proc.stdout[-3000:]
    seen = json.loads(found.group(1).replace("&amp;", "&"))
    assert seen["width"] == width and seen["overflow"] <= 0, seen["overflow"]
    assert seen["small"] == []  # no text under 10 px, the n labels and ticks included
    figs = seen["figures"]
    assert figs["serving-turns"]["y"][0] == pytest.approx([20.0, 30.0, 45.0])
    assert figs["serving-server-1"]["y"][0] == pytest.approx([25.0, 80.0])
    for fig in figs.values():
        assert 0 < fig["width"] and fig["right"] <= width and fig["texts"] >= 2  # drawn, inside, n shown
