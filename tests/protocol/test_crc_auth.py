"""CRC-16/CCITT-FALSE check value and the MicroPython-friendly HMAC against CPython's hmac module."""

from __future__ import annotations

import binascii
import hashlib
import hmac
import struct
from typing import Any, cast

import atm_wire.auth as _auth
from atm_wire import crc as _crc
from atm_wire import messages as m
from hypothesis import given, settings
from hypothesis import strategies as st

auth: Any = cast(Any, _auth)
crc16: Any = cast(Any, _crc).crc16  # atm_wire.auth is MicroPython code without full annotations


def test_crc_check_value() -> None:
    assert crc16(b"123456789") == 0x29B1


def test_crc_slice_arguments() -> None:
    data = b"xx123456789yy"
    assert crc16(data, 2, 11) == 0x29B1


@given(st.binary(max_size=300))
@settings(max_examples=200, deadline=None)
def test_crc_matches_binascii(data: bytes) -> None:
    assert crc16(data) == binascii.crc_hqx(data, 0xFFFF)


@given(st.binary(max_size=150), st.binary(max_size=300))
@settings(max_examples=200, deadline=None)
def test_hmac_matches_cpython(key: bytes, msg: bytes) -> None:
    assert auth.hmac_sha256(key, msg) == hmac.new(key, msg, hashlib.sha256).digest()


def test_dispense_mac_inputs() -> None:
    key, dev, nonce, txid = bytes(range(32)), b"D" * 8, b"N" * 16, b"T" * 16
    token = auth.sign_dispense(key, dev, nonce, txid, (1, 2, 3, 4))
    expect = hmac.new(key, b"ATM-DISPENSE-1" + dev + nonce + txid + struct.pack("<4H", 1, 2, 3, 4), "sha256")
    assert token == dev + nonce + txid + struct.pack("<4H", 1, 2, 3, 4) + expect.digest()
    assert len(token) == struct.calcsize(m.DISPENSE_TOKEN_FMT) == 80


def test_report_verification_rejects_any_flipped_bit() -> None:
    key = bytes(range(32))
    body = struct.pack("<8s16s16s4HHHHBB", b"D" * 8, b"T" * 16, b"N" * 16, 1, 0, 0, 0, 1, 0, 0, 1, 3)
    report = body + auth.report_mac(key, body)
    assert auth.verify_report(key, report)
    for i in range(len(report)):
        bad = bytearray(report)
        bad[i] ^= 0x01
        assert not auth.verify_report(key, bytes(bad))
    assert not auth.verify_report(key, report[:-1])
