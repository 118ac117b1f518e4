"""`python -m harness [overrides]` — compose → validate → launch (one fresh process per run) → write."""

import os
import sys

from harness import app, cli
from harness.errors import ConfigError


def main() -> None:
    app.register()
    try:
        total = cli.prevalidate(sys.argv[1:])
    except ConfigError as exc:
        print(f"harness: error: {exc}", file=sys.stderr)
        sys.exit(2)
    os.environ[app.SWEEP_TOTAL_ENV] = str(total)
    app.hydra_main()


if __name__ == "__main__":
    main()
