"""The bank package's one exception tree."""


class BankError(Exception):
    """Base of every error the bank package raises on purpose."""


class ConfigError(BankError):
    """A configuration file or option is invalid; the message names the option."""


class TokenError(BankError):
    """A QR withdrawal token is malformed, forged or expired."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason


class StoreError(BankError):
    """The bank database failed or holds something inconsistent."""


class KeyStoreError(BankError):
    """A device key is missing, malformed or already provisioned."""


class DenominationError(BankError):
    """An amount cannot be paid from the cassettes' denominations and counts."""
