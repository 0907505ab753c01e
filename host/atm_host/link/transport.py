"""Runs an atm_wire Link over a pyserial port: a reader thread that feeds it and drives its timer."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, cast

from atm_wire.link import TICKS_PERIOD, Link

from atm_host.link.errors import HandshakeError, LinkClosed, LinkTimeout, PortError

# The reader blocks at most this long in read(): it bounds the retransmit timer's resolution (RTO_MIN
# is 25 ms) and how fast close() returns.
READ_TIMEOUT_S = 0.005
# One read takes what the OS has buffered, at most this much (a few frames at 921600 baud).
READ_CHUNK = 4096
# A sender writes a frame in one go (255 bytes take 22 ms at 115200 baud). A partial frame that gets no
# more bytes for this long is a fragment (the tail of a frame sent before a reset, or a length byte
# hit by noise) and is dropped; otherwise a wrong length byte (up to 255) would stall a quiet link
# until that many more bytes had arrived.
IDLE_RESYNC_S = 0.1
# An acknowledgement waits this long for the host's next frame to carry it (the firmware's retransmit
# floor is 25 ms): a board answering a stream of commands then parses no separate ACK frames.
ACK_DELAY_MS = 3
# pyserial's error when select() said "readable" and read() found nothing: a vanished device, or another
# process that opened the same line and took the bytes. Only this many in a row with no read between
# them make it a dead port (a vanished device repeats it at once, forever).
EMPTY_READY = "returned no data"
EMPTY_READY_MAX = 200


class Port(Protocol):
    """What the link needs from a pyserial port (Serial, a socket:// or loop:// instance)."""

    @property
    def in_waiting(self) -> int: ...

    def read(self, size: int = 1, /) -> bytes: ...

    def write(self, b: bytes, /) -> int | None: ...

    def close(self) -> None: ...


class _WireParser(Protocol):
    have: int
    frames_ok: int
    crc_errors: int
    bad_length: int
    bytes_dropped: int

    def reset(self) -> None: ...


class _WireLink(Protocol):
    """The typed face of atm_wire.link.Link (which carries no annotations, to stay MicroPython code)."""

    parser: _WireParser
    connected: bool
    tx_frames: int
    rx_frames: int
    retransmits: int
    duplicates: int
    out_of_order: int
    resets: int
    resyncs: int
    srtt: int
    rto: int

    def start(self, now: int) -> None: ...

    def send(self, payload: bytes, plen: int, now: int) -> bool: ...

    def feed(self, data: bytes, n: int, now: int) -> None: ...

    def poll(self, now: int) -> None: ...

    def idle_flush(self, now: int) -> None: ...


def now_ms() -> int:
    """Milliseconds in atm_wire's wrapping tick space (like MicroPython's time.ticks_ms)."""
    return int(time.monotonic() * 1000) & (TICKS_PERIOD - 1)


@dataclass(frozen=True)
class LinkStats:
    """Link-layer counters of the host's end (the device reports its own through `counters`)."""

    tx_frames: int
    rx_frames: int
    retransmits: int
    duplicates: int
    out_of_order: int
    resets: int
    resyncs: int
    frames_ok: int
    crc_errors: int
    bad_length: int
    bytes_dropped: int
    idle_resyncs: int
    srtt_ms: int
    rto_ms: int


_RESET = object()


class SerialLink:
    """Thread-safe owner of one port and one Link; payloads and resets are handed out in wire order."""

    def __init__(
        self,
        port: Port,
        on_payload: Callable[[bytes], None],
        on_reset: Callable[[], None],
        on_error: Callable[[Exception], None],
        window: int = 8,
    ) -> None:
        self._port = port
        self._on_payload = on_payload
        self._on_reset = on_reset
        self._on_error = on_error
        self._cond = threading.Condition()
        self._inbox: list[object] = []
        self._error: Exception | None = None
        self._closing = False
        self._last_rx = time.monotonic()
        self._idle_resyncs = 0
        self.shared_reads = 0  # reads another opener of the line won (see EMPTY_READY)
        self._link = cast(_WireLink, Link(self._write, self._deliver, window, self._reset_seen, ACK_DELAY_MS))
        self._thread = threading.Thread(target=self._run, name="atm-link-reader", daemon=True)
        self._thread.start()

    # ----- callbacks from atm_wire.Link (called with self._cond held) ----------------------------
    def _write(self, buf: bytearray, n: int) -> None:
        try:
            self._port.write(bytes(buf[:n]))
        except Exception as exc:  # pyserial raises SerialException, OSError, ValueError when closed
            self._error = PortError(f"write failed: {exc}")

    def _deliver(self, buf: bytearray, start: int, end: int) -> None:
        self._inbox.append(bytes(buf[start:end]))

    def _reset_seen(self) -> None:
        self._inbox.append(_RESET)

    # ----- reader thread ------------------------------------------------------------------------
    def _run(self) -> None:
        empty_ready = 0
        while True:
            try:
                data = self._port.read(max(1, min(self._port.in_waiting, READ_CHUNK)))
                empty_ready = 0
            except Exception as exc:
                if self._closing:
                    return
                if EMPTY_READY in str(exc) and empty_ready < EMPTY_READY_MAX:
                    # Another program read the bytes first (a second opener of the same line): not a
                    # dead port unless it goes on with nothing read in between.
                    empty_ready += 1
                    self.shared_reads += 1
                    time.sleep(READ_TIMEOUT_S)
                    data = b""
                else:
                    self._fail(PortError(f"read failed: {exc}"))
                    return
            with self._cond:
                if self._closing:
                    return
                now = now_ms()
                if data:
                    self._last_rx = time.monotonic()
                    self._link.feed(data, len(data), now)
                elif self._link.parser.have and time.monotonic() - self._last_rx > IDLE_RESYNC_S:
                    self._link.idle_flush(now)
                    self._idle_resyncs += 1
                self._link.poll(now)
                inbox, self._inbox = self._inbox, []
                error = self._error
                self._cond.notify_all()
            for item in inbox:
                if item is _RESET:
                    self._on_reset()
                elif isinstance(item, bytes):
                    self._on_payload(item)
            if error is not None:
                self._fail(error)
                return

    def _fail(self, error: Exception) -> None:
        with self._cond:
            self._error = error
            self._cond.notify_all()
        self._on_error(error)

    # ----- caller side --------------------------------------------------------------------------
    def _check(self) -> None:
        if self._error is not None:
            raise self._error
        if self._closing:
            raise LinkClosed("link closed")

    def handshake(self, timeout_s: float) -> None:
        """Send SYN and wait for the SYNACK (or for the device's own SYN)."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            self._check()
            self._link.start(now_ms())
            while not self._link.connected:
                self._check()
                left = deadline - time.monotonic()
                if left <= 0:
                    raise HandshakeError(f"no SYNACK from the device within {timeout_s:.1f} s")
                self._cond.wait(left)

    def send(self, payload: bytes, timeout_s: float) -> None:
        """Queue one payload for reliable delivery; waits while the window is full or the link is down."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while True:
                self._check()
                if self._link.send(payload, len(payload), now_ms()):
                    if self._error is not None:
                        raise self._error
                    return
                left = deadline - time.monotonic()
                if left <= 0:
                    raise LinkTimeout(f"could not send within {timeout_s:.1f} s (window full or link down)")
                self._cond.wait(left)

    @property
    def connected(self) -> bool:
        with self._cond:
            return self._link.connected

    def stats(self) -> LinkStats:
        with self._cond:
            link = self._link
            parser = link.parser
            return LinkStats(
                tx_frames=link.tx_frames,
                rx_frames=link.rx_frames,
                retransmits=link.retransmits,
                duplicates=link.duplicates,
                out_of_order=link.out_of_order,
                resets=link.resets,
                resyncs=link.resyncs,
                frames_ok=parser.frames_ok,
                crc_errors=parser.crc_errors,
                bad_length=parser.bad_length,
                bytes_dropped=parser.bytes_dropped,
                idle_resyncs=self._idle_resyncs,
                srtt_ms=link.srtt,
                rto_ms=link.rto,
            )

    def close(self) -> None:
        """Stop the reader thread and close the port (idempotent)."""
        with self._cond:
            if self._closing:
                return
            self._closing = True
            self._cond.notify_all()
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout=1.0)
        try:
            self._port.close()
        except Exception:  # closing a port that already failed may raise again: nothing left to do
            pass
