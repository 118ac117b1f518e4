"""`python -m harness gate` — compare a candidate result set with a baseline; the exit code is the verdict.

    python -m harness gate --baseline results/baseline.json --candidate results/ci [key=value ...]
    python -m harness gate --candidate results/main --save-baseline results/baseline.json
    python -m harness gate --candidate results/ci --export-pytest-benchmark bench.json
    python -m harness gate --front --baseline results/base --candidate results/ci   # + the Pareto fronts

Exit codes: 0 pass, 1 regression, 2 usage error (or disturbed runs with --refuse-disturbed), 3 inconclusive
(0 with --allow-inconclusive), 4 incomparable environment or missing run/metric.
Details: README.md ("Regression gate"), docs/gate.md.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import NoReturn

from harness import results
from harness.errors import ConfigError
from harness.gate import baseline as baseline_mod
from harness.gate import compare, export, front, render, settings
from harness.gate.baseline import GateInputError, Side

PROG = "python -m harness gate"
VERDICTS_FILE, SUMMARY_FILE = "verdicts.json", "summary.md"


class _Parser(argparse.ArgumentParser):
    """argparse with the harness's one-line errors and exit code 2."""

    def error(self, message: str) -> NoReturn:
        print(f"harness gate: error: {message}", file=sys.stderr)
        sys.exit(compare.EXIT_CODES["usage"])


def parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog=PROG,
        description="Compare a candidate result set with a baseline; the exit code is the verdict.",
        epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--baseline",
        action="append",
        metavar="PATH",
        help="results folder, result.json or baseline file (repeatable; runs with one key are pooled)",
    )
    p.add_argument("--candidate", action="append", metavar="PATH", help="results folder or file (repeatable)")
    p.add_argument("--config", default="default", help="gate settings: a name in conf/gate/ or a YAML file")
    p.add_argument("--out", type=Path, help="folder for verdicts.json and summary.md (default: the candidate's)")
    p.add_argument(
        "--allow-inconclusive", action="store_true", help="inconclusive verdicts warn (exit 0) instead of exit 3"
    )
    p.add_argument(
        "--refuse-disturbed",
        action="store_true",
        help="refuse (exit 2) when a run of either side was measured beside other load (interference.disturbed)",
    )
    p.add_argument(
        "--front",
        action="store_true",
        help="also judge the Pareto fronts: a baseline front point the candidate lost beyond noise is a regression",
    )
    p.add_argument("--save-baseline", type=Path, metavar="FILE", help="store the candidate results as a baseline")
    p.add_argument(
        "--export-pytest-benchmark", type=Path, metavar="FILE", help="write the candidate in pytest-benchmark JSON"
    )
    p.add_argument("overrides", nargs="*", metavar="key=value", help="gate settings, e.g. confidence=0.9")
    return p


def _default_out(candidate: list[str]) -> Path:
    first = Path(candidate[0])
    return first if first.is_dir() else first.parent


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def _check_writable(flag: str, path: Path | None, folder: bool = False) -> None:
    """Refuse an output that cannot be written before anything is compared (exit 2, not a traceback)."""
    if path is None:
        return
    if not folder and path.is_dir():
        raise ConfigError(flag, path, "is a folder; give a file name")
    if folder and path.exists() and not path.is_dir():
        raise ConfigError(flag, path, "is a file; give a folder")
    target = path if folder else path.parent
    existing = next(p for p in [target, *target.absolute().parents] if p.exists())
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(flag, path, f"cannot be written ({existing} is not a writable folder)")


def _disturbed(base: Side | None, candidate: Side, refuse: bool) -> dict[str, list]:
    """The disturbed runs of each side (verdicts.json `disturbed`), named in a warning; with --refuse-disturbed
    they make the inputs unusable, as a damaged result does (exit 2, before anything is compared or saved)."""
    found = {"baseline": baseline_mod.disturbed(base) if base else [], "candidate": baseline_mod.disturbed(candidate)}
    if any(found.values()):
        line = baseline_mod.disturbed_line(found)
        if refuse:
            raise GateInputError(f"--refuse-disturbed: {line}")
        print(f"harness gate: warning: {line}; --refuse-disturbed refuses such inputs", file=sys.stderr)
    return found


def main(argv: list[str]) -> int:
    """The gate's exit code; 1 means a regression and nothing else (any other failure is 2)."""
    args = parser().parse_args(argv)
    try:
        return _main(args)
    except (ConfigError, GateInputError) as exc:
        print(f"harness gate: error: {exc}", file=sys.stderr)
    except OSError as exc:  # an output that failed while being written (a full disk, say)
        print(f"harness gate: error: cannot write {exc.filename or ''} ({exc.strerror or exc})", file=sys.stderr)
    return compare.EXIT_CODES["usage"]


def _main(args: argparse.Namespace) -> int:
    try:
        _check_writable("--out", args.out, folder=True)
        _check_writable("--save-baseline", args.save_baseline)
        _check_writable("--export-pytest-benchmark", args.export_pytest_benchmark)
        gate_settings = settings.load(args.config, args.overrides)
        if not args.candidate:
            raise ConfigError("--candidate", None, "required: a results folder, result.json or baseline file")
        if not (args.baseline or args.save_baseline or args.export_pytest_benchmark):
            raise ConfigError("--baseline", None, "required (or --save-baseline FILE / --export-pytest-benchmark FILE)")
        candidate = baseline_mod.load_side(args.candidate, "--candidate")
        base = baseline_mod.load_side(args.baseline, "--baseline") if args.baseline else None
        found = _disturbed(base, candidate, args.refuse_disturbed)
        if args.save_baseline:
            record = baseline_mod.save_baseline(candidate, args.save_baseline, gate_settings.environment.strict)
    except (ConfigError, GateInputError) as exc:
        print(f"harness gate: error: {exc}", file=sys.stderr)
        return compare.EXIT_CODES["usage"]

    if args.save_baseline:
        git = record.get("git") or {}
        print(
            f"baseline: {args.save_baseline} ({len(record['results'])} runs, commit {git.get('commit', '?')[:10]}"
            f"{', DIRTY checkout' if git.get('dirty') else ''})",
            file=sys.stderr,
        )
    if args.export_pytest_benchmark:
        doc = export.to_pytest_benchmark(candidate.all_results())
        results.write_atomic(args.export_pytest_benchmark, doc)
        n = len(doc["benchmarks"])
        print(f"pytest-benchmark: {args.export_pytest_benchmark} ({n} benchmarks)", file=sys.stderr)
    if base is None:
        return 0

    checks = compare.compare(base, candidate, gate_settings)
    front_section = None
    if args.front:
        front_list, front_section = front.front_checks(base, candidate, gate_settings)
        checks = compare.ordered([*checks, *front_list])
    rep = compare.report(checks, base, candidate, gate_settings, args.allow_inconclusive)
    rep["disturbed"] = found
    if front_section is not None:
        rep["front"] = front_section
    out = args.out or _default_out(args.candidate)
    results.write_atomic(out / VERDICTS_FILE, rep)
    text = render.markdown(rep)
    _write(out / SUMMARY_FILE, text)
    print(text)
    warn = " (inconclusive allowed: a warning)" if args.allow_inconclusive and rep["outcome"] == "inconclusive" else ""
    print(f"harness gate: {render.headline(rep)}{warn}; {out / VERDICTS_FILE}, {out / SUMMARY_FILE}", file=sys.stderr)
    return rep["exit_code"]
