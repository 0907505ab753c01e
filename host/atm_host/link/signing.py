"""Typed entry points to atm_wire.auth (tokens the bank signs, the report it verifies) for host code."""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import Any, cast

from atm_wire import auth as _auth
from atm_wire import messages as _m

_a = cast(Any, _auth)  # atm_wire.auth leaves `notes`/`denoms`/`counts` unannotated for MicroPython


def sign_dispense(key: bytes, device_id: bytes, nonce: bytes, txid: bytes, notes: Sequence[int]) -> bytes:
    """The dispense token the device accepts once: device id, nonce, txid, notes[4], HMAC-SHA256."""
    return bytes(_a.sign_dispense(key, device_id, nonce, txid, tuple(notes)))


def sign_replenish(
    key: bytes, device_id: bytes, nonce: bytes, denoms: Sequence[int], counts: Sequence[int]
) -> bytes:
    """The replenish token: device id, nonce, denominations[4], counts[4], HMAC-SHA256."""
    return bytes(_a.sign_replenish(key, device_id, nonce, tuple(denoms), tuple(counts)))


def dispense_mac(key: bytes, device_id: bytes, nonce: bytes, txid: bytes, notes: Sequence[int]) -> bytes:
    return bytes(_a.dispense_mac(key, device_id, nonce, txid, tuple(notes)))


def report_mac(key: bytes, body: bytes) -> bytes:
    return bytes(_a.report_mac(key, body))


def verify_report(key: bytes, report: bytes) -> bool:
    """True when the device's signed present-status report is authentic (constant-time compare)."""
    return bool(_a.verify_report(key, report))


def equal_ct(a: bytes, b: bytes) -> bool:
    return bool(_a.equal_ct(a, b))


MAINT_OWN_ARGS: dict[str, str] = dict(_m.MAINT_COMMANDS)
"""Maintenance command name -> the layout of its own arguments (the token follows them on the wire)."""


def sign_maint(key: bytes, device_id: bytes, nonce: bytes, command: int, args: bytes) -> bytes:
    """A maintenance token (device id, nonce, HMAC) for one command code and its own argument bytes."""
    return bytes(_a.sign_maint(key, device_id, nonce, command, args))


def maint_token(key: bytes, device_id: bytes, nonce: bytes, name: str, *fields: int) -> bytes:
    """The maintenance token for command `name` with these own arguments (e.g. the cassette of count)."""
    if name not in MAINT_OWN_ARGS:
        raise ValueError(
            f"{name} takes no maintenance token (maintenance commands: {sorted(MAINT_OWN_ARGS)})"
        )
    code = next(row[1] for row in _m.COMMANDS if row[0] == name)
    return sign_maint(key, device_id, nonce, code, struct.pack(MAINT_OWN_ARGS[name], *fields))
