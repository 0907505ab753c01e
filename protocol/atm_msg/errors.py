"""The contract package's one exception tree."""


class MsgError(Exception):
    """Base of every error the contract package raises on purpose."""


class TokenError(MsgError):
    """A QR withdrawal token is malformed, forged or expired."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason


class DenominationError(MsgError):
    """An amount cannot be paid from the cassettes' denominations and counts."""


class KeyFileError(MsgError):
    """An Ed25519 key file is missing, unreadable, not Ed25519, or would be overwritten."""


class BrokerSettingsError(MsgError):
    """Broker settings cannot be used (for example an unreadable password file)."""
