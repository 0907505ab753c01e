"""The journey's one exception tree: every failure the state machine raises on purpose is a JourneyError."""


class JourneyError(Exception):
    """Base of every error the journey raises on purpose."""


class JourneyConfigError(JourneyError):
    """The journey configuration is invalid (the message names the option)."""


class StepTimeout(JourneyError):  # noqa: N818 - names the state that timed out
    """A state ran past its timeout (the customer or a device did not answer in time)."""

    def __init__(self, state: str, timeout_s: float) -> None:
        super().__init__(f"{state}: no progress within {timeout_s:g} s")
        self.state = state
        self.timeout_s = timeout_s


class Cancelled(JourneyError):  # noqa: N818 - a signal, not a fault
    """The customer pressed cancel (or walked away and the machine cancelled for them)."""


class Refused(JourneyError):  # noqa: N818 - a decision, not a fault
    """The ATM's own checks refused the customer before or instead of the bank (code, customer message)."""

    def __init__(self, code: str, detail: str = "") -> None:
        super().__init__(f"{code}: {detail}" if detail else code)
        self.code = code
        self.detail = detail


class OutOfService(JourneyError):  # noqa: N818 - a condition, not a fault
    """The ATM cannot serve now (cassettes empty, dispenser fault, bank unreachable, tamper)."""

    def __init__(self, causes: list[str]) -> None:
        super().__init__("out of service: " + ", ".join(causes))
        self.causes = causes
