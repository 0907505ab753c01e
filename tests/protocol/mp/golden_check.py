"""MicroPython (and CPython) check of the golden frame vectors: exit status 0 only when all match.

Run: micropython tests/protocol/mp/golden_check.py <repo root>
"""

# pyright: basic
# (MicroPython script: it imports atm_wire, which carries no annotations by design.)

import json
import sys

sys.path.insert(0, sys.argv[1] + "/protocol")

from atm_wire import auth
from atm_wire.crc import crc16
from atm_wire.frame import FrameParser, encode


def main(root: str) -> int:
    with open(root + "/tests/protocol/golden_frames.json") as f:
        doc = json.load(f)
    bad = 0
    if crc16(b"123456789") != 0x29B1:
        print("crc check value wrong")
        bad += 1
    stream = bytearray()
    for v in doc["frames"]:
        frame = encode(v["seq"], v["ack"], v["flags"], bytes.fromhex(v["payload"]))
        if frame.hex() != v["frame"]:
            print("encode mismatch", v["name"], frame.hex())
            bad += 1
        stream.extend(bytes.fromhex(v["frame"]))
    got = []

    def on_frame(buf: bytearray, n: int) -> None:
        got.append(bytes(buf[0:n]).hex())

    parser = FrameParser()
    # Feed with noise in front and in small chunks, as a UART delivers it.
    noise = b"\x00\x01\x06"  # bytes below MIN_FRAME are never a length
    parser.feed(noise, len(noise), on_frame)
    i = 0
    while i < len(stream):
        chunk = bytes(stream[i : i + 5])
        parser.feed(chunk, len(chunk), on_frame)
        i += 5
    want = [v["frame"] for v in doc["frames"]]
    if got != want:
        print("parser mismatch", len(got), len(want))
        bad += 1
    key = bytes.fromhex(doc["key"])
    token = auth.sign_dispense(
        key,
        bytes.fromhex(doc["device_id"]),
        bytes.fromhex(doc["nonce"]),
        bytes.fromhex(doc["txid"]),
        doc["notes"],
    )
    if token.hex() != doc["token"]:
        print("dispense token mismatch")
        bad += 1
    print(f"golden: {len(want)} vectors, {bad} mismatches")
    return 1 if bad else 0


sys.exit(main(sys.argv[1]))
