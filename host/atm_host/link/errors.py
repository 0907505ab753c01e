"""The dispenser link's exception tree: every failure a caller can see is a LinkError.

Names follow the interface agreed with the lead (LinkTimeout, DeviceReset, ...), hence the N818 waivers.
"""

from __future__ import annotations


class LinkError(Exception):
    """Base of every error raised by the dispenser link driver."""


class LinkClosed(LinkError):  # noqa: N818
    """The client was closed (or its port failed); no further requests are possible."""


class PortError(LinkError):
    """The serial port could not be opened, or reading/writing it failed."""


class LinkTimeout(LinkError):  # noqa: N818
    """No answer within the allowed time (handshake, acknowledge or completion)."""


class HandshakeError(LinkError):
    """The SYN/SYNACK exchange or the hello did not succeed."""


class ProtocolVersionMismatch(HandshakeError):  # noqa: N818
    """The device speaks another protocol version than this host."""

    def __init__(self, host_version: int, device_version: int) -> None:
        super().__init__(f"protocol version mismatch: host {host_version}, device {device_version}")
        self.host_version = host_version
        self.device_version = device_version


class DeviceReset(LinkError):  # noqa: N818
    """The device re-synchronised the link (it rebooted) while a request was in flight.

    The request may or may not have been executed: re-query the device's state (status, get_report)
    and never blindly re-send a dispense.
    """


class MalformedMessage(LinkError):  # noqa: N818
    """A message from the device does not match the layout declared in atm_wire.messages."""


class CommandRejected(LinkError):  # noqa: N818
    """The device refused the command in its acknowledge (nothing was started)."""

    def __init__(self, command: str, code: int, name: str) -> None:
        super().__init__(f"{command}: rejected by the device: {name} ({code})")
        self.command = command
        self.code = code
        self.name = name


class CommandFailed(LinkError):  # noqa: N818
    """The command ran but completed with a completion code other than success."""

    def __init__(self, command: str, code: int, name: str, data: bytes) -> None:
        super().__init__(f"{command}: failed: {name} ({code})")
        self.command = command
        self.code = code
        self.name = name
        self.data = data
