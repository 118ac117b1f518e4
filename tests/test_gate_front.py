"""`gate --front`: known answers on hand-built result files written by the project's own writers."""

from __future__ import annotations

import pytest
from conftest import run_cli
from gate_helpers import make, read_json, write

from harness.gate import baseline as baseline_mod
from harness.gate import front, settings

MIB = 2**20


def point(precision: str, speedup: float, mem_mib: float, seed: int, status: str = "ok") -> dict:
    """A run whose decode throughput is 900 × speedup tok/s (per repeat and in metrics) at mem_mib peak RSS."""
    m = {"decode_tok_per_s": 900.0 * speedup, "peak_rss_bytes": int(mem_mib * MIB)}
    return make(f"precision={precision}", slowdown=1 / speedup, seed=seed, metrics=m, status=status)


def sides(tmp_path, base: list[dict], cand: list[dict]):
    b, c = write(tmp_path / "base", *base), write(tmp_path / "cand", *cand)
    return baseline_mod.load_side([str(b)], "--baseline"), baseline_mod.load_side([str(c)], "--candidate")


# baseline front: fp32 (900 tok/s, 200 MiB) and bf16 (1800 tok/s, 400 MiB): a trade-off, both on the front
BASE = [("fp32", 1.0, 200), ("bf16", 2.0, 400)]


def verdicts(tmp_path, cand: list[tuple], status: dict | None = None) -> dict[str, tuple[str, str]]:
    base = [point(p, s, m, seed=i) for i, (p, s, m) in enumerate(BASE)]
    status = status or {}
    cands = [point(p, s, m, seed=10 + i, status=status.get(p, "ok")) for i, (p, s, m) in enumerate(cand)]
    b, c = sides(tmp_path, base, cands)
    checks, section = front.front_checks(b, c, settings.load("default", []))
    assert [o["column"] for o in section["workloads"]["inference"]["objectives"]] == [
        "decode_tok_per_s",
        "peak_memory_bytes",
    ]
    return {(ch.label.split()[1], ch.verdict): ch.note for ch in checks}


def test_same_front_passes(tmp_path):
    got = verdicts(tmp_path, BASE)
    assert set(got) == {("fp32", "pass"), ("bf16", "pass")}
    assert got[("bf16", "pass")].endswith("(itself)")


def test_a_slower_point_is_lost_and_named(tmp_path):
    got = verdicts(tmp_path, [("fp32", 1.0, 200), ("bf16", 1.3, 400)])  # bf16 fell from 1800 to 1170 tok/s
    assert set(got) == {("fp32", "pass"), ("bf16", "regression")}
    note = got[("bf16", "regression")]
    assert note.startswith("dominates every point near it: tiny bf16 bs=1 seq=128 gpus=1 (is worse on decode")
    assert "1800 vs 1170" in note and "fp32" not in note  # fp32 trades memory for speed: not near


def test_within_noise_is_covered(tmp_path):
    # 3 % slower and 40 MiB more: both within the gate's thresholds (5 %; max(2 %, 64 MiB))
    got = verdicts(tmp_path, [("fp32", 1.0, 200), ("bf16", 1.94, 440)])
    assert set(got) == {("fp32", "pass"), ("bf16", "pass")}


def test_a_moved_trade_off_is_inconclusive(tmp_path):
    # bf16 now faster and hungrier: no candidate point covers the old bf16, none is dominated by it
    got = verdicts(tmp_path, [("fp32", 1.0, 200), ("bf16", 3.0, 700)])
    assert got.keys() == {("fp32", "pass"), ("bf16", "inconclusive")}
    assert got[("bf16", "inconclusive")].startswith("the front moved")


def test_a_failed_point_is_lost(tmp_path):
    got = verdicts(tmp_path, BASE, status={"bf16": "oom"})
    assert set(got) == {("fp32", "pass"), ("bf16", "regression")}
    assert got[("bf16", "regression")].startswith("its configuration is not eligible on the other side")


def test_a_new_dominating_point_is_an_improvement(tmp_path):
    got = verdicts(tmp_path, [("fp32", 1.0, 200), ("bf16", 2.0, 400), ("fp16", 2.6, 400)])
    assert got[("fp16", "improvement")].startswith("dominates every point near it: tiny bf16")
    assert got[("bf16", "pass")].endswith("(itself)")  # still as good as it was: covered by itself


@pytest.mark.e2e
def test_cli_front_exit_1_with_the_points_named(tmp_path):
    base = write(tmp_path / "base", *[point(p, s, m, seed=i) for i, (p, s, m) in enumerate(BASE)])
    cand = write(tmp_path / "cand", point("fp32", 1.0, 200, seed=5), point("bf16", 1.3, 400, seed=6))
    proc = run_cli("gate", "--front", "--baseline", str(base), "--candidate", str(cand), cwd=tmp_path, timeout=120)
    assert proc.returncode == 1, proc.stderr
    rep = read_json(cand / "verdicts.json")
    rows = [c for c in rep["checks"] if c["metric"] == "front"]
    assert [(c["label"], c["verdict"]) for c in rows] == [
        ("tiny bf16 bs=1 seq=128 gpus=1", "regression"),
        ("tiny fp32 bs=1 seq=128 gpus=1", "pass"),
    ]
    assert sorted(rep["front"]["workloads"]["inference"]["baseline_front"]) == sorted(c["key"] for c in rows)
    assert any(c["metric"] == "decode_tok_per_s" and c["verdict"] == "regression" for c in rep["checks"])
    assert "| regression | tiny bf16 bs=1 seq=128 gpus=1 | front |" in proc.stdout


def test_a_candidate_run_predicted_not_to_fit_is_inconclusive_not_a_regression(tmp_path):
    from harness.gate import compare

    b, c = sides(tmp_path, [point("fp32", 1.0, 200, seed=1)], [point("fp32", 1.0, 200, seed=2, status="predicted-oom")])
    (status,) = [ch for ch in compare.compare(b, c, settings.load("default", [])) if ch.metric == "status"]
    assert status.verdict == "inconclusive" and "measure it with feasibility.force=true" in status.note
