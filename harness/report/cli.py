"""`python -m harness report <results dir> [more dirs]` — (re)build the HTML report, across sweeps too."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from harness.report.build import build
from harness.report.pareto import DEFAULT_OBJECTIVES, parse_objective


def _parser() -> argparse.ArgumentParser:
    defaults = "; ".join(
        f"{w}: " + ", ".join(f"{o.columns[0]}:{o.sense}" for o in objs) for w, objs in DEFAULT_OBJECTIVES.items()
    )
    p = argparse.ArgumentParser(
        prog="python -m harness report",
        description="Build reports/<sweep>/index.html (+ runs.csv) from the result files of one or more sweeps.",
    )
    p.add_argument("dirs", nargs="+", type=Path, help="results/<sweep> folders (or any folder with result.json files)")
    p.add_argument("--out", type=Path, default=None, help="output folder (default: reports/<sweep>[+<sweep>...])")
    p.add_argument("--reports-dir", type=Path, default=Path("reports"), help="where default output folders go")
    p.add_argument(
        "--objective",
        action="append",
        default=None,
        metavar="COLUMN:min|max",
        help=f"an objective of the front (repeat for N); replaces the defaults ({defaults})",
    )
    p.add_argument(
        "--quality-floor",
        type=float,
        default=None,
        help="relative quality below this is off the front (default: the runs' quality.floor, else 0.99)",
    )
    p.add_argument(
        "--served-tokens",
        type=float,
        default=None,
        metavar="N",
        help="project serving cost per 1 M tokens plus the weights' training cost amortised over N served tokens",
    )
    p.add_argument(
        "--served-examples",
        type=float,
        default=None,
        metavar="N",
        help="classify runs: rank on what the weights cost to make plus N examples at their USD per 1k examples",
    )
    return p


def main(argv: list[str]) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        objectives = [parse_objective(s) for s in args.objective] if args.objective else None
    except ValueError as exc:
        parser.error(str(exc))
    if args.quality_floor is not None and not 0 <= args.quality_floor <= 1:
        parser.error(f"--quality-floor {args.quality_floor} is not valid: must be between 0 and 1")
    if args.served_tokens is not None and not args.served_tokens > 0:
        parser.error(f"--served-tokens {args.served_tokens:g} is not valid: must be > 0 (tokens served)")
    if args.served_examples is not None and not args.served_examples > 0:
        parser.error(f"--served-examples {args.served_examples:g} is not valid: must be > 0 (examples served)")
    missing = [str(d) for d in args.dirs if not d.is_dir()]
    if missing:
        parser.error(f"no such folder: {', '.join(missing)}")
    try:
        index = build(
            args.dirs,
            args.out,
            objectives,
            args.quality_floor,
            reports_dir=args.reports_dir,
            served_tokens=args.served_tokens,
            served_examples=args.served_examples,
        )
    except FileNotFoundError as exc:
        print(f"harness report: error: {exc}", file=sys.stderr)
        return 1
    print(f"report: {index}")
    return 0
