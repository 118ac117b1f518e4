"""The seams: each workload's keys come from its scenario, unchanged; the launcher side imports no torch;
no import circle among the run core's modules."""

from __future__ import annotations

import json
from pathlib import Path

import seams_golden

GOLDEN = json.loads((Path(__file__).parent / "data" / "seams_golden.json").read_text())


def test_keys_hashes_and_slugs_are_those_of_before_the_move():
    # tests/data/seams_golden.json was written at 5e07a75, when harness/results.py branched on workload names
    assert seams_golden.compute() == GOLDEN
