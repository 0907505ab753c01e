"""The frame parser in plain Python (CPython: the host and the tests); MicroPython uses fastframe."""

from atm_wire.crc import crc16
from atm_wire.frame import FLAG_DATA, FLAG_MASK, HEADER, MAX_FRAME, MIN_FRAME, SYNC, TRAILER

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable


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
                    buf[0:b] = data[i:end]
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
