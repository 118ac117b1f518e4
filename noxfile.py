"""Contributor sessions: `nox -s tests`, `nox -s lint`, `nox -s benchmarks`, `nox -s gate_noise`,
`nox -s microbench`."""

import nox

nox.options.sessions = ["lint", "tests"]
TORCH = "torch==2.13.0"  # the CPU wheel on these machines; install it first so nothing pulls a CUDA build


@nox.session
def tests(session: nox.Session) -> None:
    session.install(TORCH)
    session.install("-e", ".[test]")
    session.run("python", "-m", "pytest", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    session.install("ruff>=0.6")
    session.run("ruff", "check", "harness", "tests", "benchmarks", "noxfile.py")
    session.run("ruff", "format", "--check", "harness", "tests", "benchmarks", "noxfile.py")


@nox.session
def benchmarks(session: nox.Session) -> None:
    """Harness overhead vs bare loops (inference and training), tracker overhead, per-run fixed cost, MFU."""
    session.install(TORCH)
    session.install("-e", ".[test]")
    session.run("python", "benchmarks/overhead.py", *session.posargs)
    session.run("python", "benchmarks/training.py")


@nox.session
def gate_noise(session: nox.Session) -> None:
    """Does the regression gate separate A-vs-A from a real slowdown here? 20 trials; summary as JSON."""
    session.install(TORCH)
    session.install("-e", ".")
    session.run("python", "benchmarks/gate_noise.py", *session.posargs)


@nox.session
def microbench(session: nox.Session) -> None:
    """pytest-benchmark micro-benchmarks of the gate's statistics (skipped by the default test run)."""
    session.install(TORCH)
    session.install("-e", ".[test]")
    session.run("python", "-m", "pytest", "benchmarks/test_gate_bootstrap.py", "--benchmark-only", *session.posargs)
