"""Golden frame vectors (golden_frames.json): identical bytes on CPython and on MicroPython."""

from __future__ import annotations

import binascii
import json
from pathlib import Path
from typing import Any, cast

import atm_wire.auth as _auth
import pytest
from atm_wire.frame import FrameParser, encode
from mp_runner import run_cpython, run_mp

GOLDEN: dict[str, Any] = json.loads((Path(__file__).parent / "golden_frames.json").read_text())
FRAMES: list[dict[str, Any]] = GOLDEN["frames"]

auth: Any = cast(Any, _auth)  # atm_wire.auth is MicroPython code without full annotations


@pytest.mark.parametrize("v", FRAMES, ids=[f["name"] for f in FRAMES])
def test_encode_matches_golden(v: dict[str, Any]) -> None:
    assert encode(v["seq"], v["ack"], v["flags"], bytes.fromhex(v["payload"])).hex() == v["frame"]


@pytest.mark.parametrize("v", FRAMES, ids=[f["name"] for f in FRAMES])
def test_golden_layout_by_hand(v: dict[str, Any]) -> None:
    """Checks each vector against the byte layout itself, with an independent CRC (binascii)."""
    frame = bytes.fromhex(v["frame"])
    payload = bytes.fromhex(v["payload"])
    assert frame[0] == len(frame) == len(payload) + 7
    assert tuple(frame[1:4]) == (v["seq"], v["ack"], v["flags"])
    assert frame[4:-3] == payload and frame[-1] == 0x7E
    assert int.from_bytes(frame[-3:-1], "big") == binascii.crc_hqx(frame[:-3], 0xFFFF)


def test_parser_yields_golden_frames_in_order() -> None:
    got: list[str] = []
    parser: Any = FrameParser()

    def on_frame(buf: bytearray, n: int) -> None:
        got.append(bytes(buf[:n]).hex())

    stream = b"".join(bytes.fromhex(v["frame"]) for v in FRAMES)
    for i in range(0, len(stream), 3):
        chunk = stream[i : i + 3]
        parser.feed(chunk, len(chunk), on_frame)
    assert got == [v["frame"] for v in FRAMES]


def test_golden_dispense_token() -> None:
    token = auth.sign_dispense(
        bytes.fromhex(GOLDEN["key"]),
        bytes.fromhex(GOLDEN["device_id"]),
        bytes.fromhex(GOLDEN["nonce"]),
        bytes.fromhex(GOLDEN["txid"]),
        GOLDEN["notes"],
    )
    assert token.hex() == GOLDEN["token"]
    dispense = next(v for v in FRAMES if v["name"] == "dispense")
    assert dispense["payload"].endswith(GOLDEN["token"])


def test_golden_on_micropython() -> None:
    result = run_mp("golden_check.py")
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{len(FRAMES)} vectors, 0 mismatches" in result.stdout


def test_golden_script_on_cpython_too() -> None:
    result = run_cpython("golden_check.py")
    assert result.returncode == 0, result.stdout + result.stderr
