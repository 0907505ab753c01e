"""Fuzz FrameParser + Link with random and mutated frames on MicroPython (or CPython); exit 1 on a crash.

Run: micropython tests/protocol/mp/fuzz_check.py <repo root> [frames] [seed]
"""

# pyright: basic
# (MicroPython script: it imports atm_wire, which carries no annotations by design.)

import sys

sys.path.insert(0, sys.argv[1] + "/protocol")

from atm_wire.frame import (
    FLAG_DATA,
    FLAG_SYN,
    MAX_PAYLOAD,
    FrameParser,
    encode,
)
from atm_wire.link import TICKS_PERIOD, Link


class Rng:
    """xorshift32: the same sequence on both runtimes (their `random` modules differ)."""

    def __init__(self, seed: int) -> None:
        self.s = (seed or 1) & 0xFFFFFFFF

    def next(self) -> int:
        s = self.s
        s ^= (s << 13) & 0xFFFFFFFF
        s ^= s >> 17
        s ^= (s << 5) & 0xFFFFFFFF
        self.s = s
        return s

    def below(self, n: int) -> int:
        return self.next() % n


def random_frame(rng: Rng) -> bytearray:
    plen = rng.below(40) if rng.below(8) else rng.below(MAX_PAYLOAD + 1)
    payload = bytes(rng.below(256) for _ in range(plen))
    if rng.below(2):
        # Plausible traffic: DATA frames near the start of the sequence space, so some get delivered.
        return bytearray(encode(rng.below(4), rng.below(4), FLAG_DATA, payload))
    return bytearray(encode(rng.below(256), rng.below(256), rng.below(16), payload))


def mutate(rng: Rng, f: bytearray) -> bytearray:
    kind = rng.below(6)
    if kind == 0 and len(f):
        f[rng.below(len(f))] ^= 1 << rng.below(8)  # bit flip
    elif kind == 1:
        f = f[: rng.below(len(f) + 1)]  # truncated
    elif kind == 2:
        k = rng.below(len(f) + 1)
        f = f[:k] + bytearray([rng.below(256)]) + f[k:]  # extra byte
    elif kind == 3 and len(f):
        f[0] = rng.below(256)  # wrong length byte
    elif kind == 4:
        f = bytearray(rng.below(256) for _ in range(rng.below(64)))  # garbage
    return f


def main(root: str, n_frames: int, seed: int) -> int:
    rng = Rng(seed)
    sent = [0]
    delivered = [0]

    def write(buf: bytearray, n: int) -> None:
        sent[0] += 1
        if n < 7 or n > 255 or buf[n - 1] != 0x7E:
            raise AssertionError("Link wrote a malformed frame")

    def deliver(buf: bytearray, start: int, end: int) -> None:
        if end - start > MAX_PAYLOAD or start != 4:
            raise AssertionError("bad delivery bounds")
        delivered[0] += 1

    link = Link(write, deliver, 8)
    parser_only = FrameParser()
    parsed = [0]

    def on_frame(buf: bytearray, n: int) -> None:
        if n != buf[0]:
            raise AssertionError("frame length mismatch")
        parsed[0] += 1

    now = 0
    link.start(now)
    for i in range(n_frames):
        f = random_frame(rng)
        if rng.below(3):
            f = mutate(rng, f)
        if i % 500 == 0:
            f = bytearray(encode(0, 0, FLAG_SYN))  # let the link come up again and again
        data = bytes(f)
        parser_only.feed(data, len(data), on_frame)
        link.feed(data, len(data), now)
        if rng.below(4) == 0 and link.can_send():
            k = rng.below(20)
            link.send(b"x" * k, k, now)
        now = (now + rng.below(300)) % TICKS_PERIOD
        link.poll(now)
    # The link must still work: after a resync, a SYN and one DATA frame are delivered.
    link.parser.reset()
    before = delivered[0]
    for frame in (encode(0, 0, FLAG_SYN), encode(0, 0, FLAG_DATA, b"ok")):
        link.feed(frame, len(frame), now)
    if delivered[0] != before + 1:
        print("link did not recover")
        return 1
    p = link.parser
    print(
        f"fuzz: {n_frames} inputs, {p.frames_ok} frames ok, {p.crc_errors} crc errors,"
        f" {delivered[0]} delivered, {sent[0]} written, parser-only {parsed[0]}"
    )
    return 0 if parsed[0] > 0 and p.crc_errors > 0 else 1


_args = sys.argv
sys.exit(main(_args[1], int(_args[2]) if len(_args) > 2 else 20000, int(_args[3]) if len(_args) > 3 else 1))
