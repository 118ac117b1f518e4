"""One root error for the harness, and the few kinds the runner tells apart."""


class HarnessError(Exception):
    """Root of every error the harness raises on purpose."""


class ConfigError(HarnessError):
    """Bad user input: names the dotted key, the bad value and what is valid."""

    def __init__(self, key: str, value: object, valid: str):
        self.key, self.value, self.valid = key, value, valid
        super().__init__(f"{key}={value} is not valid: {valid}")


class UnsupportedError(HarnessError):
    """The device/software cannot run this combination; recorded as status `unsupported`."""


class Interrupted(BaseException):
    """SIGINT (Ctrl-C) or SIGTERM reached the sweep. A BaseException, like KeyboardInterrupt, so that no
    `except Exception` on the way (Hydra's included) swallows it."""

    def __init__(self, signum: int):
        self.signum = signum
        super().__init__(f"signal {signum}")


class SweepStopped(BaseException):
    """The sweep stops here; `message` is its one line to the user, `exit_code` the process's exit code."""

    def __init__(self, message: str, exit_code: int):
        self.message, self.exit_code = message, exit_code
        super().__init__(message)
