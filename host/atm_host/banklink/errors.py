"""The bank link's one exception tree."""


class BankLinkError(Exception):
    """Base of every error the bank link raises on purpose."""


class NotConnectedError(BankLinkError):
    """The broker is not reachable now."""


class BankTimeoutError(BankLinkError):
    """The bank did not answer in time (the request may be retried with the same id)."""


class OutboxError(BankLinkError):
    """The outbox database failed."""


class OfflineCheckError(BankLinkError):
    """The ATM's own checks refused the token or the amount before asking the bank."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
