"""Contributor sessions: `nox -s tests`, `nox -s lint`, `nox -s lock`, `nox -s lowest`, `nox -s benchmarks`,
`nox -s fixed_cost`, `nox -s gate_noise`, `nox -s microbench`, `nox -s mutation`, `nox -s adaptive_repeats`,
`nox -s sweep_wall`."""

import json
import os
import re
import resource
import sys
import time
from pathlib import Path

import nox

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10: the same parser, from PyPI
    import tomli as tomllib

nox.options.sessions = ["lint", "tests"]
TORCH = "torch==2.13.0"  # the CPU wheel on these machines; install it first so nothing pulls a CUDA build
LOCK = "constraints.txt"  # the exact versions CI tests: the README's commands install with -c constraints.txt
# the libraries whose floors in pyproject.toml `nox -s lowest` installs and tests
KEY_LIBRARIES = ("transformers", "torchao", "datasets", "hydra-core", "codecarbon")
# pip-compile over every extra; torch is left out (installed first, its build chosen by the user: the CPU wheel
# here, a CUDA build on a GPU machine), so the lock never asks for another torch; the project itself is left out
LOCK_COMMAND = [
    "pip-compile",
    "--quiet",
    "--all-extras",
    "--strip-extras",
    "--no-emit-index-url",
    "--no-emit-find-links",
    "--unsafe-package",
    "torch",
    "--unsafe-package",
    "harness",  # the extras name harness[test] and harness[serving]: the project itself, not a pin
    "--output-file",
    LOCK,
    "pyproject.toml",
]


@nox.session
def tests(session: nox.Session) -> None:
    """The suite on the locked versions (what CI runs)."""
    session.install(TORCH)
    session.install("-c", LOCK, "-e", ".[test]")
    session.run("python", "-m", "pytest", *session.posargs)


@nox.session
def lock(session: nox.Session) -> None:
    """Refresh constraints.txt to the newest versions pyproject.toml's ranges allow (pip-compile --upgrade), then
    run the suite on them: drift fails here, not in a user's install. Commit constraints.txt when it passes."""
    session.install("pip-tools>=7.4")
    session.run(*LOCK_COMMAND, "--upgrade")
    session.install(TORCH)
    session.install("-c", LOCK, "-e", ".[test]")
    session.run("python", "-m", "pip", "check")
    session.run("python", "-m", "pytest", *session.posargs)


def floors(pyproject: Path = Path("pyproject.toml")) -> dict[str, str]:
    """{library: its lowest allowed version} for KEY_LIBRARIES, read from pyproject.toml's `>=` bounds."""
    deps = tomllib.loads(pyproject.read_text())["project"]["dependencies"]
    out = {}
    for dep in deps:
        m = re.match(r"([A-Za-z0-9_.-]+)\s*(?:\[[^]]*\])?\s*>=\s*([0-9][^,;\s]*)", dep)
        if m and m.group(1).lower() in KEY_LIBRARIES:
            out[m.group(1).lower()] = m.group(2)
    missing = set(KEY_LIBRARIES) - set(out)
    if missing:
        raise ValueError(f"pyproject.toml gives no >= floor for {sorted(missing)}")
    return out


@nox.session
def lowest(session: nox.Session) -> None:
    """The floors are tested, not assumed: each key library at the lowest version pyproject.toml allows (the
    rest as pip resolves them), then the suite. A failure here means: fix the code or raise the floor."""
    pins = Path(session.create_tmp()) / "floors.txt"
    pins.write_text("".join(f"{name}=={version}\n" for name, version in floors().items()))
    session.log("floors: " + ", ".join(f"{n}=={v}" for n, v in floors().items()))
    session.install(TORCH)
    session.install("-c", str(pins), "-e", ".[test]")
    session.run("python", "-m", "pip", "check")
    session.run("python", "-m", "pytest", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    session.install("ruff>=0.6")
    session.run("ruff", "check", "harness", "hydra_plugins", "tests", "benchmarks", "noxfile.py")
    session.run("ruff", "format", "--check", "harness", "hydra_plugins", "tests", "benchmarks", "noxfile.py")


@nox.session
def benchmarks(session: nox.Session) -> None:
    """Harness overhead vs bare loops (inference and training), tracker overhead, per-run fixed cost, MFU."""
    session.install(TORCH)
    session.install("-c", LOCK, "-e", ".[test]")
    session.run("python", "benchmarks/overhead.py", *session.posargs)
    session.run("python", "benchmarks/training.py")


def _benchmark_script(session: nox.Session, script: str) -> None:
    """A benchmark that drives the real CLI: the package alone (no test extra), then benchmarks/<script>."""
    session.install(TORCH)
    session.install("-c", LOCK, "-e", ".")
    session.run("python", f"benchmarks/{script}", *session.posargs)


@nox.session
def fixed_cost(session: nox.Session) -> None:
    """Per-run fixed cost, preload vs spawn, alternated in one run; and their throughput, memory and quality."""
    _benchmark_script(session, "fixed_cost.py")


@nox.session
def sweep_wall(session: nox.Session) -> None:
    """A 24-run sweep's wall time, preload vs spawn, alternated."""
    _benchmark_script(session, "sweep_wall.py")


@nox.session
def adaptive_repeats(session: nox.Session) -> None:
    """Wall time of a 12-run sweep to reach ±2 % with repeats=auto vs the fixed count that reaches the same spread."""
    _benchmark_script(session, "adaptive_repeats.py")


@nox.session
def gate_noise(session: nox.Session) -> None:
    """Does the regression gate separate A-vs-A from a real slowdown here? 20 trials; summary as JSON."""
    _benchmark_script(session, "gate_noise.py")


@nox.session
def microbench(session: nox.Session) -> None:
    """pytest-benchmark micro-benchmarks of the gate's statistics (skipped by the default test run)."""
    session.install(TORCH)
    session.install("-c", LOCK, "-e", ".[test]")
    session.run("python", "-m", "pytest", "benchmarks/test_gate_bootstrap.py", "--benchmark-only", *session.posargs)


def _children_cpu_s() -> float:
    """User + system CPU seconds of this process's finished children (and theirs, once each was waited for)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


# Per mutated file: mutants, checked, killed, timeout, survived, no tests, killed share; run in the session's
# environment, where mutmut's own table of exit codes (mutmut.stats.status_by_exit_code) can be imported.
_BY_MODULE = """
import json, pathlib, sys
from mutmut.stats import status_by_exit_code as status
out = {}
for meta in sorted(pathlib.Path("mutants").glob("harness/**/*.py.meta")):
    got = [status[c] for c in json.loads(meta.read_text())["exit_code_by_key"].values()]
    row = {"mutants": len(got), "checked": sum(g != "not checked" for g in got)}
    for key, name in (("killed", "killed"), ("timeout", "timeout"), ("survived", "survived"), ("no_tests", "no tests")):
        row[key] = got.count(name)
    done = row["killed"] + row["timeout"]
    row["killed_share"] = round(done / row["checked"], 4) if row["checked"] else None
    out[str(meta.relative_to("mutants")).removesuffix(".meta")] = row
pathlib.Path(sys.argv[1]).write_text(json.dumps(out))
"""


@nox.session
def mutation(session: nox.Session) -> None:
    """mutmut over the pure modules, judged by the fast unit tests ([tool.mutmut] in pyproject.toml); not in CI.
    Writes the score to mutants/score.json and prints the survivors (docs/testing.md)."""
    session.install(TORCH)
    session.install("-c", LOCK, "-e", ".[test]")
    session.install("mutmut>=3.8,<4")  # [tool.mutmut] uses 3.8's keys (source_paths, only_mutate, ...)
    session.run("rm", "-rf", "mutants", external=True)  # a fresh run: mutmut would resume an old one
    jobs = str(len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)
    started, cpu_before = time.time(), _children_cpu_s()
    session.run("mutmut", "run", "--max-children", jobs, *session.posargs)
    minutes = (time.time() - started) / 60
    # CPU seconds of mutmut and every test process it forked: what the run costs whatever the load
    # (on an idle machine the wall time is at least cpu_s / children)
    cpu_s = _children_cpu_s() - cpu_before
    session.run("mutmut", "export-cicd-stats")
    stats = json.loads(Path("mutants/mutmut-cicd-stats.json").read_text())
    # mutants that ran (a run by name leaves the others unchecked, still counted in "total")
    # a mutant no selected test reaches is not killed: it counts against the score
    judged = sum(stats[k] for k in ("killed", "survived", "timeout", "suspicious", "segfault", "no_tests"))
    score = {
        **stats,
        # a mutant that made the tests time out was detected too (as Stryker counts it); suspicious ones were not
        "killed_share": (stats["killed"] + stats["timeout"]) / judged if judged else None,
        "checked": judged,
        "minutes": round(minutes, 1),
        "cpu_s": round(cpu_s),
        "children": int(jobs),
    }
    session.run("python", "-c", _BY_MODULE, "mutants/by_module.json")
    score["by_module"] = json.loads(Path("mutants/by_module.json").read_text())
    Path("mutants/score.json").write_text(json.dumps(score, indent=2) + "\n")
    session.log(f"mutation score: {score['killed_share']:.1%} of {judged} mutants killed in {minutes:.1f} min")
    session.run("mutmut", "results", success_codes=[0, 1])  # the survivors, one per line
