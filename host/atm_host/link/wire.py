"""Typed views of the atm_wire declarations: command/event specs, message encoding and decoding."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import cast

from atm_wire import messages as m
from atm_wire import names

from atm_host.link.errors import MalformedMessage

Field = int | bytes


@dataclass(frozen=True)
class CommandSpec:
    """One row of atm_wire.messages.COMMANDS."""

    name: str
    code: int
    args_fmt: str
    completion_fmt: str


@dataclass(frozen=True)
class EventSpec:
    """One row of atm_wire.messages.EVENTS."""

    name: str
    code: int
    fmt: str


COMMANDS: tuple[CommandSpec, ...] = tuple(CommandSpec(*row) for row in m.COMMANDS)
EVENTS: tuple[EventSpec, ...] = tuple(EventSpec(*row) for row in m.EVENTS)
COMMAND_BY_NAME: dict[str, CommandSpec] = {c.name: c for c in COMMANDS}
COMMAND_BY_CODE: dict[int, CommandSpec] = {c.code: c for c in COMMANDS}
EVENT_BY_CODE: dict[int, EventSpec] = {e.code: e for e in EVENTS}
EVENT_BY_NAME: dict[str, EventSpec] = {e.name: e for e in EVENTS}


def completion_name(code: int) -> str:
    """The XFS4IoT-style name of a completion (or acknowledge result) code."""
    return str(names.completion_name(code))


def unpack(fmt: str, data: bytes, what: str) -> tuple[Field, ...]:
    """struct.unpack with a MalformedMessage on a length mismatch."""
    if len(data) != struct.calcsize(fmt):
        raise MalformedMessage(f"{what}: {len(data)} data bytes, layout {fmt!r} needs {struct.calcsize(fmt)}")
    return cast(tuple[Field, ...], struct.unpack(fmt, data))


def pack_args(spec: CommandSpec, *fields: Field) -> bytes:
    """Pack a command's arguments with its declared layout; ValueError when they do not fit it."""
    try:
        return struct.pack(spec.args_fmt, *fields)
    except struct.error as exc:
        raise ValueError(
            f"{spec.name}: bad arguments {fields!r} for layout {spec.args_fmt!r}: {exc}"
        ) from exc


def encode_command(spec: CommandSpec, req_id: int, body: bytes) -> bytes:
    """Build a command payload: [code][req_id u16 LE][args already packed with the command's layout]."""
    need = struct.calcsize(spec.args_fmt)
    if len(body) != need:
        raise ValueError(
            f"{spec.name}: arguments are {len(body)} bytes, layout {spec.args_fmt!r} needs {need}"
        )
    return struct.pack(m.HDR, spec.code, req_id) + body


@dataclass(frozen=True)
class Acknowledge:
    """[0x40][req_id][cmd code][result]."""

    req_id: int
    command: int
    result: int


@dataclass(frozen=True)
class Completion:
    """[0x41][req_id][cmd code][completion code][data]."""

    req_id: int
    command: int
    code: int
    data: bytes


@dataclass(frozen=True)
class RawEvent:
    """[event code][req_id or 0][data]."""

    code: int
    req_id: int
    data: bytes


Incoming = Acknowledge | Completion | RawEvent


def decode(payload: bytes) -> Incoming:
    """Classify and split one payload from the device; MalformedMessage when it is not a device message."""
    if len(payload) < m.HDR_SIZE:
        raise MalformedMessage(f"payload of {len(payload)} bytes is shorter than the header")
    code, req_id = struct.unpack_from(m.HDR, payload, 0)
    if code == m.MSG_ACKNOWLEDGE:
        if len(payload) != m.ACK_SIZE:
            raise MalformedMessage(f"acknowledge of {len(payload)} bytes (expected {m.ACK_SIZE})")
        _, _, cmd, result = struct.unpack(m.ACK_FMT, payload)
        return Acknowledge(req_id, cmd, result)
    if code == m.MSG_COMPLETION:
        if len(payload) < m.COMPLETION_SIZE:
            raise MalformedMessage(f"completion of {len(payload)} bytes is too short")
        _, _, cmd, ccode = struct.unpack_from(m.COMPLETION_FMT, payload, 0)
        return Completion(req_id, cmd, ccode, bytes(payload[m.COMPLETION_SIZE :]))
    if code in EVENT_BY_CODE:
        return RawEvent(code, req_id, bytes(payload[m.HDR_SIZE :]))
    raise MalformedMessage(f"unknown message code 0x{code:02x}")
