"""Reliable, ordered delivery over a lossy serial line: go-back-N with an adaptive retransmit timer.

Shared by firmware and host. The caller owns the clock (milliseconds in a wrapping TICKS_PERIOD space,
like MicroPython's time.ticks_ms) and the port (a write(buf, n) callable); nothing here blocks.

Rules (docs/protocol.md, "Link layer"):
- Each DATA frame carries SEQ; the receiver delivers it only when SEQ is the next expected number and
  acknowledges it (cumulative: the next number it expects). Every frame carries that number, so the
  acknowledgement rides on the next DATA frame the receiver sends; a separate ACK frame goes out only
  when none did: at the end of the read that brought the frame (ack_delay 0, the firmware: a command's
  answer is sent while it is delivered) or ack_delay ms later (the host: its next command carries it).
- A frame arriving out of order is dropped and answered with FLAG_NAK so the sender resends at once;
  so is a frame that arrives corrupted (bad CRC).
- Unacknowledged frames are resent, oldest first, when the retransmit timer (RFC 6298: SRTT + 4*RTTVAR,
  clamped to RTO_MIN..RTO_MAX, doubled on every timeout, Karn's rule) expires.
- SYN resets both directions to sequence 0; the peer answers SYNACK. A device sends SYN when it boots,
  so the host learns about every reset of the board.
- Either end resynchronises by itself when the peer's state no longer matches its own: a SYNACK it
  never asked for (someone else sent the peer a SYN), or a cumulative ACK outside [base, next] (the
  peer restarted its sequence numbers) makes it send its own SYN and report a reset (on_reset).
"""

from atm_wire.crc import crc16
from atm_wire.frame import (
    FLAG_DATA,
    FLAG_NAK,
    FLAG_SYN,
    FLAG_SYNACK,
    HEADER,
    MAX_FRAME,
    OVERHEAD,
    TRAILER,
    FrameParser,
    encode_into,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

TICKS_PERIOD = 1 << 30
_TICKS_HALF = TICKS_PERIOD >> 1
_TICKS_MASK = TICKS_PERIOD - 1

RTO_MIN = 25  # ms: Klipper's floor; below this a 115200 baud frame is still on the wire
RTO_MAX = 5000  # ms: cap for the doubled timer, so a reconnected cable recovers within 5 s
RTO_INITIAL = 250  # ms: before the first RTT sample (RFC 6298 says 1 s; a serial line is faster)
MAX_WINDOW = 16  # frames in flight; must stay far below 128 for the modular sequence compare
IDLE_RESYNC_MS = 100  # a partial frame with no byte for this long is dropped (the sender restarted)
NAK_QUIET_MS = 2  # a bad frame is NAKed once the line stayed quiet this long with no good frame behind it


def ticks_diff(a: int, b: int) -> int:
    """Signed difference a - b in the wrapping tick space."""
    return ((a - b + _TICKS_HALF) & _TICKS_MASK) - _TICKS_HALF


def seq_diff(a: int, b: int) -> int:
    """Signed difference a - b of two 8-bit sequence numbers."""
    return ((a - b + 128) & 0xFF) - 128


class Link:
    """One end of the link. deliver(buf, start, end) receives each in-order payload exactly once."""

    def __init__(
        self,
        write: "Callable[[bytearray, int], None]",
        deliver: "Callable[[bytearray, int, int], None]",
        window: int = 8,
        on_reset: "Callable[[], None] | None" = None,
        ack_delay: int = 0,
    ) -> None:
        if window not in (1, 2, 4, 8, 16):
            # Slots are seq % window: only a power of two keeps 255 and 0 in different slots.
            raise ValueError("window must be 1, 2, 4, 8 or 16")
        self._write = write
        self._deliver = deliver
        self._on_reset = on_reset
        self.window = window
        self._slot_mask = window - 1  # a frame's slot is seq % window
        self.ack_delay = ack_delay  # ms an acknowledgement may wait for a DATA frame to carry it
        self._ack_owed = False  # a delivered frame is not acknowledged yet
        self._ack_since = 0
        self.parser = FrameParser()
        self._slots = [bytearray(MAX_FRAME) for _ in range(window)]
        self._slot_len = [0] * window
        self._slot_sent = [0] * window
        self._slot_retx = [False] * window
        self._ctl = bytearray(OVERHEAD)
        self._base = 0  # oldest unacknowledged sequence number
        self._next = 0  # next sequence number to send
        self._expect = 0  # next sequence number expected from the peer
        self._timer_start = 0
        self._last_nak_resend = 0
        self._now = 0
        self._last_rx = 0
        self.idle_resyncs = 0
        self.srtt = -1
        self.rttvar = 0
        self.rto = RTO_INITIAL
        self.syn_pending = False
        self._synack_due = False  # our SYN is out and its SYNACK not seen yet (even once connected)
        self._syn_at = 0
        self.connected = False
        # Counters (reported by the firmware's COUNTERS command and the host's stats).
        self.tx_frames = 0
        self.rx_frames = 0
        self.retransmits = 0
        self.duplicates = 0
        self.out_of_order = 0
        self.resets = 0
        self.resyncs = 0  # restarts of our own after the peer's state stopped matching ours

    # ----- sending -------------------------------------------------------------------------------
    def in_flight(self) -> int:
        return (self._next - self._base) & 0xFF

    def can_send(self) -> bool:
        return self.connected and self.in_flight() < self.window

    def send(self, payload: "bytes | bytearray", plen: int, now: int) -> bool:
        """Queue and transmit one payload; False when the window is full or the link is not up."""
        seq = self._next
        if not self.connected or ((seq - self._base) & 0xFF) >= self.window:
            return False
        slot = seq & self._slot_mask
        buf = self._slots[slot]
        n = encode_into(buf, seq, self._expect, FLAG_DATA, payload, plen)
        self._slot_len[slot] = n
        self._slot_sent[slot] = now
        self._slot_retx[slot] = False
        if seq == self._base:
            self._timer_start = now  # nothing was in flight
        self._next = (seq + 1) & 0xFF
        self._ack_owed = False  # this frame carries the acknowledgement
        self._write(buf, n)
        self.tx_frames += 1
        return True

    def _send_control(self, flags: int) -> None:
        self._ack_owed = False  # every frame carries the acknowledgement
        n = encode_into(self._ctl, self._next, self._expect, flags, None, 0)
        self._write(self._ctl, n)

    def start(self, now: int) -> None:
        """Send SYN: ask the peer to restart both directions at sequence 0."""
        self._reset_state()
        self.syn_pending = True
        self._synack_due = True
        self._syn_at = now
        self._timer_start = now
        self._send_control(FLAG_SYN)

    def _resync(self, now: int) -> None:
        """The peer's link state no longer matches ours: start again with our own SYN, report a reset."""
        self.resyncs += 1
        self.start(now)
        if self._on_reset is not None:
            self._on_reset()

    def _reset_state(self) -> None:
        self._ack_owed = False
        self._base = 0
        self._next = 0
        self._expect = 0
        self.parser.reset()
        self.connected = False

    def _resend_from_base(self, now: int) -> None:
        seq = self._base
        while seq != self._next:
            slot = seq % self.window
            buf = self._slots[slot]
            n = self._slot_len[slot]
            if buf[2] != self._expect:
                # Refresh the piggybacked ACK in place: header byte 2, then the CRC.
                buf[2] = self._expect
                crc = crc16(buf, 0, n - TRAILER)
                buf[n - 3] = crc >> 8
                buf[n - 2] = crc & 0xFF
            self._slot_retx[slot] = True
            self._slot_sent[slot] = now
            self._ack_owed = False
            self._write(buf, n)
            self.retransmits += 1
            seq = (seq + 1) & 0xFF
        self._timer_start = now

    def poll(self, now: int) -> None:
        """Run the retransmit timer; call often (every loop on the MCU, every few ms on the host)."""
        if self.parser.errors_pending:
            self._nak_errors(now)
        if self._ack_owed and ticks_diff(now, self._ack_since) >= self.ack_delay:
            self._send_control(0)
        if self._synack_due and not self.syn_pending and ticks_diff(now, self._syn_at) > RTO_MAX:
            self._synack_due = False  # our SYN was overtaken by the peer's and its SYNACK lost
        if self.syn_pending:
            if ticks_diff(now, self._timer_start) >= self.rto:
                self.rto = min(self.rto * 2, RTO_MAX)
                self._timer_start = now
                self._send_control(FLAG_SYN)
            return
        if self.in_flight() and ticks_diff(now, self._timer_start) >= self.rto:
            self.rto = min(self.rto * 2, RTO_MAX)
            self._resend_from_base(now)

    # ----- receiving -----------------------------------------------------------------------------
    def feed(self, data: "bytes | bytearray | memoryview", n: int, now: int) -> None:
        """Consume bytes read from the port."""
        self._now = now
        parser = self.parser
        if ((now - self._last_rx + _TICKS_HALF) & _TICKS_MASK) - _TICKS_HALF > IDLE_RESYNC_MS and parser.have:
            self.idle_flush(now)
        self._last_rx = now
        parser.feed(data, n, self._on_frame)
        if self._ack_owed and self.ack_delay == 0:
            self._send_control(0)  # one acknowledgement for what this read delivered and no answer carried

    def _nak_errors(self, now: int) -> None:
        """A frame died on the line and no good one followed before the line went quiet: ask for a
        resend now instead of waiting out the peer's timer. Garbage in front of a good frame asks for
        nothing, also when the reads split them (the UART hands over what has arrived, so the garbage
        and the frame behind it can come in separate reads); continuous noise asks once it stops."""
        if ticks_diff(now, self._last_rx) < NAK_QUIET_MS:
            return
        self.parser.errors_pending = False
        if self.connected:
            self._send_control(FLAG_NAK)

    def idle_flush(self, now: int) -> None:
        """The line went quiet inside a partial frame: settle what is buffered (see FrameParser.flush)."""
        self._now = now
        self.idle_resyncs += 1
        self.parser.flush(self._on_frame)
        self.parser.errors_pending = False

    def _on_frame(self, buf: bytearray, length: int) -> None:
        """One good frame (the hot path of the firmware: arithmetic inline, few calls)."""
        flags = buf[3]
        self.rx_frames += 1
        if flags & (FLAG_SYN | FLAG_SYNACK):
            self._on_sync(flags)
            return
        if not self.connected:
            return
        now = self._now
        base = self._base
        acked = ((buf[2] - base + 128) & 0xFF) - 128
        if acked:
            if acked < 0 or acked > ((self._next - base) & 0xFF):
                # The peer acknowledges frames we never sent, or takes back acknowledged ones: it
                # restarted.
                self._resync(now)
                return
            self._process_ack(buf[2], now)
        if flags & FLAG_NAK and self._next != self._base:
            # Resend at once, but at most once per RTT so a burst of NAKs does not cause a storm.
            if ticks_diff(now, self._last_nak_resend) >= max(self.srtt, RTO_MIN):
                self._last_nak_resend = now
                self._resend_from_base(now)
        if not flags & FLAG_DATA:
            return
        d = ((buf[1] - self._expect + 128) & 0xFF) - 128
        if d == 0:
            self._expect = (self._expect + 1) & 0xFF
            if not self._ack_owed:
                self._ack_owed = True
                self._ack_since = now
            self._deliver(buf, HEADER, length - 3)
        elif d < 0:
            self.duplicates += 1
            self._owe_ack(now)  # our ACK was lost: repeat it
        else:
            self.out_of_order += 1
            self._send_control(FLAG_NAK)

    def _on_sync(self, flags: int) -> None:
        """A SYN or SYNACK frame."""
        now = self._now
        if flags & FLAG_SYN:
            # The peer restarted (or is connecting): restart both directions and confirm.
            self._reset_state()
            self.syn_pending = False
            self.connected = True
            self.resets += 1
            self._send_control(FLAG_SYNACK)
            if self._on_reset is not None:
                self._on_reset()
            return
        if flags & FLAG_SYNACK:
            if self.syn_pending:
                self.syn_pending = False
                self._synack_due = False
                self.connected = True
                self.rto = RTO_INITIAL
            elif self._synack_due:
                self._synack_due = False  # the answer to our SYN, after the peer's own SYN connected us
            elif self.connected:
                # A SYNACK we never asked for: someone else's SYN reset the peer's sequence numbers.
                self._resync(now)
            return

    def _owe_ack(self, now: int) -> None:
        if not self._ack_owed:
            self._ack_owed = True
            self._ack_since = now

    def _process_ack(self, ack: int, now: int) -> None:
        """Frames up to `ack` arrived (the caller checked that ack lies in (base, next])."""
        base = self._base
        mask = self._slot_mask
        retx = self._slot_retx
        while base != ack:
            slot = base & mask
            if not retx[slot]:
                self._sample_rtt(((now - self._slot_sent[slot] + _TICKS_HALF) & _TICKS_MASK) - _TICKS_HALF)
            base = (base + 1) & 0xFF
        self._base = base
        self._timer_start = now
        if self.srtt >= 0:
            # Progress: forget the back-off (RFC 9002 style), or Karn's rule could pin the timer at
            # RTO_MAX for as long as losses keep every window retransmitted.
            self.rto = min(max(self.srtt + 4 * self.rttvar, RTO_MIN), RTO_MAX)

    def _sample_rtt(self, rtt: int) -> None:
        if rtt < 0:
            return
        if self.srtt < 0:
            self.srtt = rtt
            self.rttvar = rtt // 2
        else:
            self.rttvar = (3 * self.rttvar + abs(self.srtt - rtt)) // 4
            self.srtt = (7 * self.srtt + rtt) // 8
        self.rto = min(max(self.srtt + 4 * self.rttvar, RTO_MIN), RTO_MAX)
