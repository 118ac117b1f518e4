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
