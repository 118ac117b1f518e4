"""`python -m harness [overrides]` — compose → validate → launch (one fresh process per run) → write.

`python -m harness <command> ...` runs a sub-command instead (e.g. `report`, `gate`): each is a module
with `main(argv) -> exit code`, listed in COMMANDS.

Exit codes of a sweep: 0 every run ended with a result (whatever its status), 1 the sweep stopped on a
fault of the machine (a full disk) or a bug, 2 bad input (nothing ran), 128 + N stopped by signal N
(130 Ctrl-C, 143 SIGTERM). After 1 or 128 + N, the same command again resumes the sweep.
"""

import importlib
import os
import signal
import sys

from harness import app, cli, guard
from harness.errors import ConfigError, Interrupted, SweepStopped

COMMANDS: dict[str, str] = {"report": "harness.report.cli", "gate": "harness.gate.cli"}  # name -> main(argv) -> int


def _sweep(argv: list[str]) -> None:
    try:
        total = cli.prevalidate(argv)
    except ConfigError as exc:
        print(f"harness: error: {exc}", file=sys.stderr)
        sys.exit(2)
    os.environ[app.SWEEP_TOTAL_ENV] = str(total)
    # Hydra prints any exception from a run as a traceback; with this it passes them on to us instead
    os.environ.setdefault("HYDRA_FULL_ERROR", "1")
    app.hydra_main()


def main() -> None:
    argv = sys.argv[1:]
    if argv and argv[0] in COMMANDS:
        sys.exit(importlib.import_module(COMMANDS[argv[0]]).main(argv[1:]))
    argv = sys.argv[1:] = cli.normalise_argv(argv)  # Hydra reads sys.argv itself
    app.register()
    guard.install_signal_handlers()
    try:
        _sweep(argv)
    except SweepStopped as stop:
        print(stop.message, file=sys.stderr, flush=True)
        sys.exit(stop.exit_code)
    except Interrupted as exc:  # outside a run (composing, between runs): nothing to record
        name = signal.Signals(exc.signum).name
        print(f"harness: interrupted by {name}; run the same command again to resume", file=sys.stderr)
        sys.exit(128 + exc.signum)
    except OSError as exc:  # a results folder that cannot be created or written, a full disk
        print(app.disk_full_message(exc), file=sys.stderr, flush=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
