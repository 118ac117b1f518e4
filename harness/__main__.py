"""`python -m harness [overrides]` — compose → validate → launch (one fresh process per run) → write.

`python -m harness <command> ...` runs a sub-command instead (e.g. `report`, `gate`): each is a module
with `main(argv) -> exit code`, listed in COMMANDS.
"""

import importlib
import os
import sys

from harness import app, cli
from harness.errors import ConfigError

COMMANDS: dict[str, str] = {"report": "harness.report.cli", "gate": "harness.gate.cli"}  # name -> main(argv) -> int


def main() -> None:
    argv = sys.argv[1:]
    if argv and argv[0] in COMMANDS:
        sys.exit(importlib.import_module(COMMANDS[argv[0]]).main(argv[1:]))
    app.register()
    try:
        total = cli.prevalidate(argv)
    except ConfigError as exc:
        print(f"harness: error: {exc}", file=sys.stderr)
        sys.exit(2)
    os.environ[app.SWEEP_TOTAL_ENV] = str(total)
    app.hydra_main()


if __name__ == "__main__":
    main()
