"""Garbage on the line in front of a frame: the frame behind it still arrives, first time."""

from __future__ import annotations

import random

from atm_host.link import DispenserClient
from atm_host.link.client import open_port

from hil_tests.rig import HIL_PORT, Rig


class GarblingPort:
    """Wraps a serial port: every write the host makes is preceded by 1..24 random bytes of noise."""

    def __init__(self, inner, rng: random.Random) -> None:
        self._inner = inner
        self._rng = rng
        self.garbage = 0

    @property
    def in_waiting(self) -> int:
        return int(self._inner.in_waiting)

    def read(self, size: int = 1, /) -> bytes:
        return self._inner.read(size)

    def write(self, b: bytes, /) -> int | None:
        junk = bytes(self._rng.getrandbits(8) for _ in range(self._rng.randint(1, 24)))
        self.garbage += len(junk)
        self._inner.write(junk + b)
        return len(b)

    def close(self) -> None:
        self._inner.close()


def test_frames_behind_garbage_complete_first_time(rig: Rig) -> None:
    url = HIL_PORT or (rig.board.port if rig.board is not None else "")
    rig.client.close()
    port = GarblingPort(open_port(url), random.Random(11))
    client = DispenserClient(port)
    rig.client = client
    client.handshake(timeout=20)
    before = client.counters()
    first = client.stats().link.retransmits
    for _ in range(200):
        assert client.status().provisioned
    after = client.counters()
    stats = client.stats()
    # Every command frame (and every ACK frame) of the 200 had noise in front of it ...
    assert port.garbage > 200
    assert after["bytes_dropped"] > before["bytes_dropped"]
    # ... and yet the device took each one the first time: the host never had to resend a frame.
    assert stats.link.retransmits - first == 0, stats.link
