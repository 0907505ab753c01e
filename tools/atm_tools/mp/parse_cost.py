"""MicroPython: microseconds per byte through atm_wire's FrameParser.feed and through crc16 alone.

Run: micropython parse_cost.py <repo root> [frames]   prints "<feed us/byte> <crc us/byte>".
The frames are what the link carries most: 40-byte data frames, fed in 64-byte reads.
"""

# pyright: basic, reportAttributeAccessIssue=false

import sys
import time

sys.path.insert(0, sys.argv[1] + "/protocol")

from atm_wire.crc import crc16
from atm_wire.frame import FLAG_DATA, FrameParser, encode

n = int(sys.argv[2]) if len(sys.argv) > 2 else 3000
one = encode(5, 3, FLAG_DATA, bytes(range(33)))
stream = bytearray(one * 64)
got = [0]


def on_frame(buf, length):
    got[0] += 1


p = FrameParser()
mv = memoryview(stream)
chunks = len(stream) // 64
rounds = max(1, n // 64)
t0 = time.ticks_us()
for _ in range(rounds):
    for i in range(chunks):
        p.feed(mv[i * 64 : i * 64 + 64], 64, on_frame)
feed_us = time.ticks_diff(time.ticks_us(), t0) / (rounds * len(stream))
assert got[0] == rounds * 64, got[0]
t0 = time.ticks_us()
for _ in range(rounds):
    crc16(stream, 0, len(stream))
crc_us = time.ticks_diff(time.ticks_us(), t0) / (rounds * len(stream))
print(f"{feed_us:.4f} {crc_us:.4f}")
