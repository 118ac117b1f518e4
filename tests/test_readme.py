"""The README's promises: CI runs exactly the README's test command."""

from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_ci_runs_the_readme_test_command():
    ci = (REPO / ".ci" / "run").read_text().strip().splitlines()[-1].strip()
    assert "pytest" in ci
    assert f"    {ci}\n" in (REPO / "README.md").read_text()


def test_readme_main_command_runs_the_default():
    readme = (REPO / "README.md").read_text()
    assert "pip install torch==2.13.0 && pip install -e . && python -m harness\n" in readme
