"""Host-side driver of the dispenser link: typed requests, events and errors over pyserial."""

from atm_host.link.client import ClientStats, DispenserClient, open_port
from atm_host.link.errors import (
    CommandFailed,
    CommandRejected,
    DeviceReset,
    HandshakeError,
    LinkClosed,
    LinkError,
    LinkTimeout,
    MalformedMessage,
    PortError,
    ProtocolVersionMismatch,
)
from atm_host.link.events import EventSubscription
from atm_host.link.results import CassetteInfo, DispenseResult, Event, Hello, Nonce, Report, Status
from atm_host.link.transport import LinkStats

__all__ = [
    "CassetteInfo",
    "ClientStats",
    "CommandFailed",
    "CommandRejected",
    "DeviceReset",
    "DispenseResult",
    "DispenserClient",
    "Event",
    "EventSubscription",
    "HandshakeError",
    "Hello",
    "LinkClosed",
    "LinkError",
    "LinkStats",
    "LinkTimeout",
    "MalformedMessage",
    "Nonce",
    "PortError",
    "ProtocolVersionMismatch",
    "Report",
    "Status",
    "open_port",
]
