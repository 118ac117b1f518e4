"""Contributor sessions: `nox -s tests`, `nox -s lint`, `nox -s benchmarks`."""

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
