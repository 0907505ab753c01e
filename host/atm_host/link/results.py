"""Typed results of the dispenser's commands and events, decoded from the layouts in atm_wire.messages."""

from __future__ import annotations

import struct
from dataclasses import dataclass

from atm_wire import messages as m
from atm_wire import names

from atm_host.link.errors import MalformedMessage
from atm_host.link.wire import Field, unpack


def _int(v: Field) -> int:
    if not isinstance(v, int):
        raise MalformedMessage(f"expected an integer field, got {v!r}")
    return v


def _bytes(v: Field) -> bytes:
    if not isinstance(v, bytes):
        raise MalformedMessage(f"expected a bytes field, got {v!r}")
    return v


def _ints(values: tuple[Field, ...]) -> tuple[int, ...]:
    return tuple(_int(v) for v in values)


def _name(names: tuple[str, ...], code: int) -> str:
    return names[code] if 0 <= code < len(names) else f"code{code}"


@dataclass(frozen=True)
class Hello:
    """Completion of `hello`: who the device is and what it can do."""

    protocol_version: int
    firmware_version: tuple[int, int, int]
    device_id: bytes
    capabilities: int
    boot_count: int
    n_cassettes: int
    max_payload: int
    retract_timeout_ms: int
    max_notes: int  # presenter capacity: the most notes one dispense may stack (firmware MAX_NOTES)

    @property
    def firmware(self) -> str:
        major, minor, patch = self.firmware_version
        return f"{major}.{minor}.{patch}"

    def has(self, capability: int) -> bool:
        """True when the CAP_* bit is set."""
        return bool(self.capabilities & capability)


def parse_hello(data: bytes) -> Hello:
    v = unpack(m.COMMANDS[0][3], data, "hello")
    return Hello(
        protocol_version=_int(v[0]),
        firmware_version=(_int(v[1]), _int(v[2]), _int(v[3])),
        device_id=_bytes(v[4]),
        capabilities=_int(v[5]),
        boot_count=_int(v[6]),
        n_cassettes=_int(v[7]),
        max_payload=_int(v[8]),
        retract_timeout_ms=_int(v[9]),
        max_notes=_int(v[10]),
    )


@dataclass(frozen=True)
class Status:
    """Completion of `status`, as firmware/app.py packs it (`<BBBBBHHI`)."""

    state: int
    shutter: int
    door_open: int
    fault: int
    flags: int
    notes_stacked: int
    notes_presented: int
    uptime_s: int

    @property
    def state_name(self) -> str:
        return _name(names.STATE_NAMES, self.state)

    @property
    def shutter_name(self) -> str:
        return _name(names.SHUTTER_NAMES, self.shutter)

    @property
    def provisioned(self) -> bool:
        return bool(self.flags & m.STATUS_FLAG_PROVISIONED)

    @property
    def nonce_outstanding(self) -> bool:
        return bool(self.flags & m.STATUS_FLAG_NONCE)

    @property
    def locked(self) -> bool:
        return bool(self.flags & m.STATUS_FLAG_LOCKED)

    @property
    def tamper(self) -> bool:
        return bool(self.flags & m.STATUS_FLAG_TAMPER)


def parse_status(fmt: str, data: bytes) -> Status:
    return Status(*_ints(unpack(fmt, data, "status")))


@dataclass(frozen=True)
class Nonce:
    """Completion of `get_nonce`: the outstanding command nonce and how long it stays valid."""

    nonce: bytes
    lifetime_ms: int


@dataclass(frozen=True)
class DispenseResult:
    """Completion of `dispense`: notes stacked and rejected per cassette, REPORT_FLAG_* flags."""

    txid: bytes
    stacked: tuple[int, int, int, int]
    rejected: tuple[int, int, int, int]
    flags: int

    @property
    def total_stacked(self) -> int:
        return sum(self.stacked)

    @property
    def duplicate(self) -> bool:
        """The transaction had already been dispensed: nothing moved this time."""
        return bool(self.flags & m.REPORT_FLAG_DUPLICATE)


def _four(values: tuple[Field, ...]) -> tuple[int, int, int, int]:
    a, b, c, d = _ints(values)
    return (a, b, c, d)


def parse_dispense(fmt: str, data: bytes) -> DispenseResult:
    v = unpack(fmt, data, "dispense")
    return DispenseResult(_bytes(v[0]), _four(v[1:5]), _four(v[5:9]), _int(v[9]))


@dataclass(frozen=True)
class CassetteInfo:
    """Completion of `cassette_info` and `replenish`: per-cassette data and the bins' note counts."""

    denominations: tuple[int, int, int, int]
    counts: tuple[int, int, int, int]
    unit_status: tuple[int, int, int, int]
    reject_bin: int
    retract_bin: int

    @property
    def unit_status_names(self) -> tuple[str, ...]:
        return tuple(_name(names.UNIT_NAMES, s) for s in self.unit_status)


def parse_cassettes(fmt: str, data: bytes, what: str) -> CassetteInfo:
    v = unpack(fmt, data, what)
    return CassetteInfo(_four(v[0:4]), _four(v[4:8]), _four(v[8:12]), _int(v[12]), _int(v[13]))


@dataclass(frozen=True)
class Report:
    """The device's signed present-status report; `raw` is the exact bytes the bank verifies."""

    device_id: bytes
    txid: bytes
    nonce: bytes
    stacked: tuple[int, int, int, int]
    presented: int
    retracted: int
    rejected: int
    present_status: int
    flags: int
    mac: bytes
    raw: bytes

    @property
    def present_status_name(self) -> str:
        return _name(names.PRESENT_NAMES, self.present_status)

    @property
    def final(self) -> bool:
        return bool(self.flags & m.REPORT_FLAG_FINAL)

    @property
    def taken(self) -> bool:
        return bool(self.flags & m.REPORT_FLAG_TAKEN)

    def count_text(self, value: int) -> str:
        """A count as the bank prints it: '?' when the device cannot know it."""
        return "?" if value == m.UNKNOWN_COUNT else str(value)


def parse_report(data: bytes) -> Report:
    v = unpack(m.REPORT_FMT, data, "report")
    return Report(
        device_id=_bytes(v[0]),
        txid=_bytes(v[1]),
        nonce=_bytes(v[2]),
        stacked=_four(v[3:7]),
        presented=_int(v[7]),
        retracted=_int(v[8]),
        rejected=_int(v[9]),
        present_status=_int(v[10]),
        flags=_int(v[11]),
        mac=_bytes(v[12]),
        raw=bytes(data),
    )


def parse_counters(data: bytes) -> dict[str, int]:
    values = _ints(unpack(m.COUNTERS_FMT, data, "counters"))
    return dict(zip(m.COUNTER_NAMES, values, strict=True))


@dataclass(frozen=True)
class Event:
    """An unsolicited message from the device, with its name and its fields decoded by name."""

    name: str
    code: int
    req_id: int
    fields: tuple[Field, ...]
    data: bytes

    @property
    def txid(self) -> bytes | None:
        """The transaction id of item events (presented, taken, retracted, incomplete, recovery)."""
        first = self.fields[0] if self.fields else None
        return first if isinstance(first, bytes) and len(first) == m.TXID_LEN else None


def parse_event(name: str, code: int, fmt: str, req_id: int, data: bytes) -> Event:
    return Event(name, code, req_id, unpack(fmt, data, f"event {name}"), bytes(data))


REPORT_SIZE = struct.calcsize(m.REPORT_FMT)
