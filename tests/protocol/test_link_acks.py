"""Where acknowledgements go (docs/protocol.md, "Link layer"): on the next DATA frame when there is one,
a separate ACK frame only when none carried it (firmware: at the end of the read; host: ack_delay ms)."""

from __future__ import annotations

from atm_wire.frame import FLAG_DATA, FLAG_NAK, FrameParser, encode
from atm_wire.link import Link


class End:
    """One end of the link with its frames on the wire recorded."""

    def __init__(self, ack_delay: int = 0, answer: bool = False) -> None:
        self.sent: list[bytes] = []
        self.delivered: list[bytes] = []
        self.answer = answer  # answer every delivered payload at once, as the firmware does
        self.link = Link(self._write, self._deliver, 4, None, ack_delay)
        self.link.connected = True

    def _write(self, buf: bytearray, n: int) -> None:
        self.sent.append(bytes(buf[:n]))

    def _deliver(self, buf: bytearray, start: int, end: int) -> None:
        payload = bytes(buf[start:end])
        self.delivered.append(payload)
        if self.answer:
            self.link.send(b"re:" + payload, 3 + len(payload), 0)

    def frames(self) -> list[tuple[int, int, int, bytes]]:
        """(seq, ack, flags, payload) of everything sent so far."""
        out: list[tuple[int, int, int, bytes]] = []
        parser = FrameParser()
        for raw in self.sent:
            parser.feed(raw, len(raw), lambda b, n: out.append((b[1], b[2], b[3], bytes(b[4 : n - 3]))))
        return out


def test_an_answer_sent_while_delivering_carries_the_ack_and_no_ack_frame_goes_out() -> None:
    dev = End(answer=True)
    f = encode(0, 0, FLAG_DATA, b"cmd")
    dev.link.feed(f, len(f), 10)
    frames = dev.frames()
    assert frames == [(0, 1, FLAG_DATA, b"re:cmd")]  # one frame: the answer, acknowledging seq 0


def test_one_ack_frame_for_a_read_of_several_frames_nobody_answers() -> None:
    dev = End()
    data = encode(0, 0, FLAG_DATA, b"a") + encode(1, 0, FLAG_DATA, b"b") + encode(2, 0, FLAG_DATA, b"c")
    dev.link.feed(data, len(data), 10)
    assert dev.delivered == [b"a", b"b", b"c"]
    assert dev.frames() == [(0, 3, 0, b"")]  # a single cumulative ACK at the end of the read


def test_the_host_waits_ack_delay_for_its_next_frame_to_carry_the_ack() -> None:
    host = End(ack_delay=3)
    f = encode(0, 0, FLAG_DATA, b"completion")
    host.link.feed(f, len(f), 100)
    host.link.poll(101)
    host.link.poll(102)
    assert host.sent == []  # still waiting for a DATA frame to carry it
    host.link.send(b"next command", 12, 102)
    assert host.frames() == [(0, 1, FLAG_DATA, b"next command")]
    host.link.poll(200)
    assert len(host.sent) == 1  # the command carried it: nothing more owed


def test_the_host_sends_the_ack_frame_once_ack_delay_has_passed() -> None:
    host = End(ack_delay=3)
    f = encode(0, 0, FLAG_DATA, b"completion")
    host.link.feed(f, len(f), 100)
    host.link.poll(102)
    assert host.sent == []
    host.link.poll(103)
    assert host.frames() == [(0, 1, 0, b"")]
    host.link.poll(110)
    assert len(host.sent) == 1  # owed once, sent once


def test_a_duplicate_is_acknowledged_again_and_a_gap_is_naked_at_once() -> None:
    dev = End()
    first = encode(0, 0, FLAG_DATA, b"a")
    dev.link.feed(first, len(first), 10)
    dev.link.feed(first, len(first), 11)  # our ACK was lost: the peer resent
    gap = encode(5, 0, FLAG_DATA, b"z")
    dev.link.feed(gap, len(gap), 12)
    assert dev.delivered == [b"a"]
    assert dev.frames() == [(0, 1, 0, b""), (0, 1, 0, b""), (0, 1, FLAG_NAK, b"")]
    assert dev.link.duplicates == 1 and dev.link.out_of_order == 1


def test_a_lost_answer_is_resent_with_the_current_ack() -> None:
    dev = End(answer=True)
    f = encode(0, 0, FLAG_DATA, b"cmd")
    dev.link.feed(f, len(f), 0)
    g = encode(1, 0, FLAG_DATA, b"two")  # the peer never got our answer (its ack stays 0)
    dev.link.feed(g, len(g), 5)
    dev.link.poll(dev.link.rto + 5)  # the retransmit timer resends both answers
    resent = dev.frames()[2:]
    assert [(s, a, p) for s, a, _, p in resent] == [(0, 2, b"re:cmd"), (1, 2, b"re:two")]
