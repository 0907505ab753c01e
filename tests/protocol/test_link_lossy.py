"""Two atm_wire Links over an in-memory line that corrupts bytes, drops and duplicates frames."""

from __future__ import annotations

import random
import struct
from collections import deque
from typing import Any

import pytest
from atm_wire.link import Link


class Line:
    """One direction of a serial line with a virtual clock: FIFO, 1-4 ms latency, with faults."""

    def __init__(self, rng: random.Random, corrupt: float, drop: float, dup: float) -> None:
        self.rng, self.corrupt, self.drop, self.dup = rng, corrupt, drop, dup
        self.queue: deque[tuple[int, bytes]] = deque()
        self.now = 0
        self.last_due = 0

    def write(self, buf: Any, n: int) -> None:
        frame = bytearray(buf[:n])
        if self.rng.random() < self.drop:
            return
        for i in range(n):
            if self.rng.random() < self.corrupt:
                frame[i] ^= 1 << self.rng.randrange(8)
        copies = 2 if self.rng.random() < self.dup else 1
        for _ in range(copies):
            self.last_due = max(self.last_due, self.now + self.rng.randint(1, 4))
            self.queue.append((self.last_due, bytes(frame)))

    def due(self, now: int) -> bytes:
        out = bytearray()
        while self.queue and self.queue[0][0] <= now:
            out += self.queue.popleft()[1]
        return bytes(out)


def run(
    seed: int, n: int, *, corrupt: float, drop: float, dup: float, limit_ms: int = 600_000
) -> tuple[list[int], list[int], Any, Any, int]:
    rng = random.Random(seed)
    ab, ba = Line(rng, corrupt, drop, dup), Line(rng, corrupt, drop, dup)
    got_a: list[int] = []
    got_b: list[int] = []

    def into(got: list[int]) -> Any:
        def deliver(buf: bytearray, start: int, end: int) -> None:
            got.append(struct.unpack_from("<I", buf, start)[0])

        return deliver

    a: Any = Link(ab.write, into(got_a))
    b: Any = Link(ba.write, into(got_b))
    sent_a = sent_b = 0
    now = 0
    a.start(now)
    while (len(got_a) < n or len(got_b) < n) and now < limit_ms:
        # Step 1 ms while bytes are on the line, else jump ahead 5 ms (timers only need that much).
        now += 1 if ab.queue or ba.queue else 5
        ab.now = ba.now = now
        for link, line in ((b, ab), (a, ba)):
            data = line.due(now)
            if data:
                link.feed(data, len(data), now)
        while sent_a < n and a.send(struct.pack("<I", sent_a) + bytes(sent_a % 40), 4 + sent_a % 40, now):
            sent_a += 1
        while sent_b < n and b.send(struct.pack("<I", sent_b), 4, now):
            sent_b += 1
        a.poll(now)
        b.poll(now)
    return got_a, got_b, a, b, now


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_lossy_line_delivers_everything_once_in_order(seed: int) -> None:
    n = 600
    got_a, got_b, a, b, _ = run(seed, n, corrupt=0.01, drop=0.01, dup=0.02, limit_ms=3_600_000)
    assert got_b == list(range(n))  # A -> B
    assert got_a == list(range(n))  # B -> A
    assert a.retransmits + b.retransmits > 0
    assert a.parser.crc_errors + b.parser.crc_errors > 0
    assert a.duplicates + b.duplicates > 0


def test_clean_line_needs_no_retransmits() -> None:
    got_a, got_b, a, b, _ = run(9, 300, corrupt=0.0, drop=0.0, dup=0.0)
    assert got_a == got_b == list(range(300))
    assert a.retransmits == b.retransmits == 0
    assert 1 <= a.srtt <= 10 and a.rto >= 25


def test_throughput_under_one_percent_byte_errors() -> None:
    # At 1% byte corruption a 40-byte frame is lost 1 time in 3. Every NAK-driven resend marks the
    # whole window as retransmitted, so Karn's rule leaves no RTT sample, the doubled RTO never comes
    # back down, and each loss the NAK path misses costs a full RTO_MAX (5 s).
    got_a, got_b, _, _, elapsed = run(2, 1500, corrupt=0.01, drop=0.01, dup=0.02, limit_ms=3_600_000)
    assert len(got_a) == len(got_b) == 1500
    assert elapsed < 120_000  # 1,500 small messages each way in under 2 virtual minutes
