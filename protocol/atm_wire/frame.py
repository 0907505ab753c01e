"""Frame layout, encoder and a streaming, allocation-free frame parser with resync after corruption.

A frame on the wire (all multi-byte fields big-endian; see docs/protocol.md):

    offset 0      LEN    total frame length in bytes, MIN_FRAME..MAX_FRAME
    offset 1      SEQ    sender's sequence number of this frame (0..255, wraps)
    offset 2      ACK    next sequence number the sender expects from its peer (cumulative ack)
    offset 3      FLAGS  FLAG_* bits below
    offset 4..    PAYLOAD (LEN - 7 bytes; empty for link-control frames)
    LEN-3, LEN-2  CRC    CRC-16/CCITT-FALSE over bytes 0 .. LEN-4
    LEN-1         SYNC   0x7E

After a bad frame the parser drops bytes up to and including the next SYNC byte (Klipper's rule).
"""

from atm_wire.crc import crc16

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

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
    i = 0
    while i < plen:
        buf[HEADER + i] = payload[i]  # type: ignore[index]  (plen > 0 implies a payload)
        i += 1
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
    """

    def __init__(self) -> None:
        self.buf = bytearray(MAX_FRAME)
        self.have = 0
        self.skipping = False
        self.frames_ok = 0
        self.crc_errors = 0
        self.bad_length = 0
        self.bytes_dropped = 0

    def reset(self) -> None:
        self.have = 0
        self.skipping = False

    def feed(
        self, data: "bytes | bytearray | memoryview", n: int, on_frame: "Callable[[bytearray, int], None]"
    ) -> None:
        """Consume data[0:n]; call on_frame(buf, length) for each good frame."""
        buf = self.buf
        i = 0
        while i < n:
            b = data[i]
            i += 1
            if self.skipping:
                self.bytes_dropped += 1
                if b == SYNC:
                    self.skipping = False
                continue
            if self.have == 0:
                if b < MIN_FRAME or b > MAX_FRAME:
                    # Not a plausible length byte (this also swallows stray SYNC bytes).
                    self.bad_length += 1
                    self.bytes_dropped += 1
                    continue
            buf[self.have] = b
            self.have += 1
            if self.have < MIN_FRAME or self.have < buf[0]:
                continue
            length = buf[0]
            self.have = 0
            crc = (buf[length - 3] << 8) | buf[length - 2]
            if buf[length - 1] != SYNC or crc != crc16(buf, 0, length - TRAILER) or buf[3] & ~FLAG_MASK:
                self.crc_errors += 1
                self.bytes_dropped += length
                # Resync: drop everything up to the next SYNC (unless this frame ended on one).
                self.skipping = buf[length - 1] != SYNC
                continue
            self.frames_ok += 1
            on_frame(buf, length)
