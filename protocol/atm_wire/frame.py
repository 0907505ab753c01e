"""Frame layout, encoder and a streaming, allocation-free frame parser with resync after corruption.

A frame on the wire (all multi-byte fields big-endian; see docs/protocol.md):

    offset 0      LEN    total frame length in bytes, MIN_FRAME..MAX_FRAME
    offset 1      SEQ    sender's sequence number of this frame (0..255, wraps)
    offset 2      ACK    next sequence number the sender expects from its peer (cumulative ack)
    offset 3      FLAGS  FLAG_* bits below
    offset 4..    PAYLOAD (LEN - 7 bytes; empty for link-control frames)
    LEN-3, LEN-2  CRC    CRC-16/CCITT-FALSE over bytes 0 .. LEN-4
    LEN-1         SYNC   0x7E

After a bad candidate the parser gives up only its first byte and rescans the rest, and a SYNC byte
is also tried as the end of a frame that began behind garbage (see FrameParser).
"""

from atm_wire.crc import crc16

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

try:
    # On MicroPython: a viper loop (machine code, no allocation).
    from atm_wire.fastcrc import copy_into as _copy  # pyright: ignore[reportMissingImports, reportUnknownVariableType]
except ImportError:  # CPython (the host): a slice copy

    def _copy(
        dst: bytearray, dst_off: int, src: "bytes | bytearray | memoryview", src_off: int, n: int
    ) -> None:
        dst[dst_off : dst_off + n] = src[src_off : src_off + n]


SYNC = 0x7E
HEADER = 4
TRAILER = 3
OVERHEAD = HEADER + TRAILER
MIN_FRAME = OVERHEAD
# The largest message (a signed present report) needs 93 bytes of payload. Keeping LEN below SYNC
# (0x7E = 126) means a stray sync byte can never be taken for a length and stall the parser.
MAX_FRAME = 125
MAX_PAYLOAD = MAX_FRAME - OVERHEAD

FLAG_DATA = 0x01  # carries a payload and consumes a sequence number
FLAG_SYN = 0x02  # link reset request: both directions restart at sequence 0
FLAG_SYNACK = 0x04  # answer to a SYN
FLAG_NAK = 0x08  # receiver saw a gap: retransmit from ACK now
FLAG_MASK = 0x0F


def encode_into(
    buf: bytearray, seq: int, ack: int, flags: int, payload: "bytes | bytearray | None" = None, plen: int = 0
) -> int:
    """Write one frame into buf (>= plen + OVERHEAD bytes) and return its length."""
    n = plen + OVERHEAD
    if n > MAX_FRAME:
        raise ValueError("payload too long")
    buf[0] = n
    buf[1] = seq & 0xFF
    buf[2] = ack & 0xFF
    buf[3] = flags
    if plen:
        _copy(buf, HEADER, payload, 0, plen)  # type: ignore[arg-type]  (plen > 0 implies a payload)
    crc = crc16(buf, 0, n - TRAILER)
    buf[n - 3] = crc >> 8
    buf[n - 2] = crc & 0xFF
    buf[n - 1] = SYNC
    return n


def encode(seq: int, ack: int, flags: int, payload: bytes = b"") -> bytes:
    """Convenience encoder for tests and the host: returns the frame as bytes."""
    buf = bytearray(len(payload) + OVERHEAD)
    encode_into(buf, seq, ack, flags, payload, len(payload))
    return bytes(buf)


class FrameParser:
    """Feeds bytes in, calls on_frame(buf, length) for every frame with a good CRC and sync byte.

    The frame handed to on_frame lives in the parser's own buffer and is valid only during the call.

    Resynchronisation (docs/protocol.md, "Framing"): a candidate frame starts at any byte that is a
    plausible length. Its header is checked as soon as it is in (flags; a frame without FLAG_DATA is a
    7-byte control frame), so most garbage dies within four bytes. A candidate that fails its header or
    CRC gives up only its first byte: the bytes after it are scanned again, so a good frame behind
    the garbage is still found. A SYNC byte that arrives while a long garbage candidate is still
    waiting for its length is checked as the end of a frame that started later in the buffer.
    """

    def __init__(self) -> None:
        self.buf = bytearray(MAX_FRAME)
        self.have = 0
        self.frames_ok = 0
        self.crc_errors = 0
        self.bad_length = 0
        self.bytes_dropped = 0
        self.errors_pending = False  # a bad candidate seen since the last good frame (the link NAKs)

    def reset(self) -> None:
        self.have = 0

    def flush(self, on_frame: "Callable[[bytearray, int], None]") -> None:
        """The line went quiet inside a candidate: give it up, deliver good frames behind it."""
        while self.have:
            self.crc_errors += 1
            self.errors_pending = True
            self._drop(1)
            self._scan(on_frame)

    def _drop(self, k: int) -> None:
        """Forget the first k buffered bytes, then skip bytes that cannot start a frame."""
        buf = self.buf
        have = self.have
        self.bytes_dropped += k
        while k < have and (buf[k] < MIN_FRAME or buf[k] > MAX_FRAME):
            k += 1
            self.bytes_dropped += 1
            self.bad_length += 1
        i = 0
        while k < have:
            buf[i] = buf[k]
            i += 1
            k += 1
        self.have = i

    def _header_bad(self) -> bool:
        buf = self.buf
        return bool(buf[3] & ~FLAG_MASK) or (not buf[3] & FLAG_DATA and buf[0] != MIN_FRAME)

    def _valid_at(self, start: int, length: int) -> bool:
        buf = self.buf
        end = start + length
        if buf[end - 1] != SYNC:
            return False
        crc = (buf[end - 3] << 8) | buf[end - 2]
        return crc == crc16(buf, start, end - TRAILER)

    def _scan(self, on_frame: "Callable[[bytearray, int], None]") -> None:
        """Settle the buffered bytes: deliver complete good frames, drop bad candidates one byte at a time."""
        buf = self.buf
        while self.have:
            have = self.have
            if have >= HEADER and self._header_bad():
                self.crc_errors += 1
                self.errors_pending = True
                self._drop(1)
                continue
            length = buf[0]
            if have < MIN_FRAME or have < length:
                if have > MIN_FRAME and buf[have - 1] == SYNC:
                    self._tail(on_frame)
                return
            if self._valid_at(0, length):
                self.frames_ok += 1
                self.errors_pending = False
                on_frame(buf, length)
                self._drop_frame(length)
                continue
            self.crc_errors += 1
            self.errors_pending = True
            self._drop(1)

    def _drop_frame(self, length: int) -> None:
        """Forget a delivered frame (not counted as dropped), then what cannot start the next one."""
        self.bytes_dropped -= length
        self._drop(length)

    def _tail(self, on_frame: "Callable[[bytearray, int], None]") -> None:
        """A SYNC ended the buffer inside a long candidate: does a good frame end here, behind garbage?"""
        buf = self.buf
        have = self.have
        j = 1
        while j <= have - MIN_FRAME:
            length = have - j
            if buf[j] == length and self._valid_at(j, length):
                self.crc_errors += 1  # the garbage candidate in front of it
                self._drop(j)
                self.frames_ok += 1
                self.errors_pending = False
                on_frame(buf, length)
                self.have = 0
                return
            j += 1

    def feed(
        self, data: "bytes | bytearray | memoryview", n: int, on_frame: "Callable[[bytearray, int], None]"
    ) -> None:
        """Consume data[0:n]; call on_frame(buf, length) for each good frame."""
        buf = self.buf
        i = 0
        while i < n:
            b = data[i]
            have = self.have
            if have == 0:
                if b < MIN_FRAME or b > MAX_FRAME:
                    # Not a plausible length byte (this also swallows stray SYNC bytes).
                    self.bad_length += 1
                    self.bytes_dropped += 1
                    i += 1
                    continue
                end = i + b
                if (
                    end <= n
                    and data[end - 1] == SYNC
                    and not data[i + 3] & ~FLAG_MASK
                    and (data[i + 3] & FLAG_DATA or b == MIN_FRAME)
                    and ((data[end - 3] << 8) | data[end - 2]) == crc16(data, i, end - TRAILER)
                ):
                    # Fast path: a whole good frame in this read is checked where it lies, then
                    # copied once and delivered. Anything else goes byte by byte (below).
                    _copy(buf, 0, data, i, b)
                    i = end
                    self.frames_ok += 1
                    self.errors_pending = False
                    on_frame(buf, b)
                    self.have = 0
                    continue
            i += 1
            buf[have] = b
            have += 1
            self.have = have
            if have == HEADER or (have >= MIN_FRAME and (have >= buf[0] or b == SYNC)):
                self._scan(on_frame)


try:
    # On MicroPython: the same parser with its byte loop in viper (machine code, no allocation).
    from atm_wire import fastframe as _fast  # pyright: ignore[reportMissingImports, reportUnknownVariableType, reportAttributeAccessIssue]

    FrameParser = _fast.FrameParser  # pyright: ignore[reportUnknownMemberType, reportUnknownVariableType, reportAssignmentType]
except ImportError:  # CPython (the host): the plain parser above
    pass
