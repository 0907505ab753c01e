"""End-to-end authorisation: the bank's HMAC-SHA256 dispense/replenish tokens and the device's report.

Modelled on the XFS4IoT end-to-end security draft: the device issues a command nonce, the bank signs
what may be dispensed against that nonce with the device's own key, and the device checks it itself.
Each MAC input starts with a domain tag, so a token of one kind can never verify as another kind.

    dispense token MAC  = HMAC(key, b"ATM-DISPENSE-1" | device id | nonce | txid | notes[4] as <4H)
    replenish token MAC = HMAC(key, b"ATM-REPLENISH-1" | device id | nonce | denoms <4H | counts <4H)
    report MAC          = HMAC(key, b"ATM-REPORT-1" | REPORT_FMT fields except the MAC)
    maintenance MAC     = HMAC(key, b"ATM-MAINT-1" | device id | nonce | command code u8 | own args)
"""

import hashlib
import struct

from atm_wire.messages import (
    DISPENSE_TOKEN_FMT,
    MAC_LEN,
    MAINT_TOKEN_FMT,
    REPLENISH_TOKEN_FMT,
    REPORT_FMT,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence

TAG_DISPENSE = b"ATM-DISPENSE-1"
TAG_REPLENISH = b"ATM-REPLENISH-1"
TAG_REPORT = b"ATM-REPORT-1"
TAG_MAINT = b"ATM-MAINT-1"

DISPENSE_TOKEN_SIZE = struct.calcsize(DISPENSE_TOKEN_FMT)
REPLENISH_TOKEN_SIZE = struct.calcsize(REPLENISH_TOKEN_FMT)
REPORT_SIZE = struct.calcsize(REPORT_FMT)
MAINT_TOKEN_SIZE = struct.calcsize(MAINT_TOKEN_FMT)
_BLOCK = 64


def hmac_sha256(key: bytes, msg: bytes) -> bytes:
    """RFC 2104 HMAC with SHA-256 (MicroPython has no hmac module; the same code runs on the host)."""
    if len(key) > _BLOCK:
        key = hashlib.sha256(key).digest()
    ipad = bytearray(_BLOCK)
    opad = bytearray(_BLOCK)
    for i in range(_BLOCK):
        k = key[i] if i < len(key) else 0
        ipad[i] = k ^ 0x36
        opad[i] = k ^ 0x5C
    inner = hashlib.sha256(ipad)
    inner.update(msg)
    outer = hashlib.sha256(opad)
    outer.update(inner.digest())
    return outer.digest()


def equal_ct(a: "bytes | bytearray | memoryview", b: "bytes | bytearray | memoryview") -> bool:
    """Compare two byte strings in time that depends only on their length."""
    if len(a) != len(b):
        return False
    diff = 0
    for i in range(len(a)):
        diff |= a[i] ^ b[i]
    return diff == 0


def dispense_mac(key: bytes, device_id: bytes, nonce: bytes, txid: bytes, notes: "Sequence[int]") -> bytes:
    msg = TAG_DISPENSE + device_id + nonce + txid + struct.pack("<4H", notes[0], notes[1], notes[2], notes[3])
    return hmac_sha256(key, msg)


def sign_dispense(key: bytes, device_id: bytes, nonce: bytes, txid: bytes, notes: "Sequence[int]") -> bytes:
    """The bank's side: build the token the device will accept exactly once."""
    mac = dispense_mac(key, device_id, nonce, txid, notes)
    return struct.pack(
        DISPENSE_TOKEN_FMT, device_id, nonce, txid, notes[0], notes[1], notes[2], notes[3], mac
    )


def replenish_mac(
    key: bytes, device_id: bytes, nonce: bytes, denoms: "Sequence[int]", counts: "Sequence[int]"
) -> bytes:
    msg = (
        TAG_REPLENISH
        + device_id
        + nonce
        + struct.pack("<4H", denoms[0], denoms[1], denoms[2], denoms[3])
        + struct.pack("<4H", counts[0], counts[1], counts[2], counts[3])
    )
    return hmac_sha256(key, msg)


def sign_replenish(
    key: bytes, device_id: bytes, nonce: bytes, denoms: "Sequence[int]", counts: "Sequence[int]"
) -> bytes:
    mac = replenish_mac(key, device_id, nonce, denoms, counts)
    return struct.pack(
        REPLENISH_TOKEN_FMT,
        device_id,
        nonce,
        denoms[0],
        denoms[1],
        denoms[2],
        denoms[3],
        counts[0],
        counts[1],
        counts[2],
        counts[3],
        mac,
    )


def maint_mac(key: bytes, device_id: bytes, nonce: bytes, command: int, args: bytes) -> bytes:
    """MAC of a maintenance command: its wire code and its own argument bytes (without the token)."""
    return hmac_sha256(key, TAG_MAINT + device_id + nonce + bytes((command,)) + bytes(args))


def sign_maint(key: bytes, device_id: bytes, nonce: bytes, command: int, args: bytes) -> bytes:
    """The maintenance token (device id | nonce | MAC) the device accepts once, for that command and
    those arguments only; it goes on the wire after the command's own arguments."""
    return struct.pack(MAINT_TOKEN_FMT, device_id, nonce, maint_mac(key, device_id, nonce, command, args))


def report_mac(key: bytes, report_without_mac: "bytes | bytearray | memoryview") -> bytes:
    """MAC over the report's bytes up to (not including) the MAC field."""
    return hmac_sha256(key, TAG_REPORT + bytes(report_without_mac))


def verify_report(key: bytes, report: bytes) -> bool:
    """The bank's side: True when the device's present-status report is authentic."""
    if len(report) != REPORT_SIZE:
        return False
    body = report[: REPORT_SIZE - MAC_LEN]
    return equal_ct(report_mac(key, body), report[REPORT_SIZE - MAC_LEN :])
