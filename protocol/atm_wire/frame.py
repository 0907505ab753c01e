"""Frame layout, encoder and a streaming, allocation-free frame parser with resync after corruption.

FrameParser is atm_wire.fastframe's (viper) on MicroPython and atm_wire.pyframe's on CPython.

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
    buf: bytearray, seq: int, ack: int, flags: int, payload: "bytes | bytearray | None", plen: int
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


try:
    # On MicroPython: the same encoder as one viper call (the link sends every frame through it).
    from atm_wire.fastcrc import encode_frame as encode_into  # pyright: ignore[reportMissingImports, reportUnknownVariableType]
except ImportError:  # CPython (the host): the Python encoder above
    pass


def encode(seq: int, ack: int, flags: int, payload: bytes = b"") -> bytes:
    """Convenience encoder for tests and the host: returns the frame as bytes."""
    buf = bytearray(len(payload) + OVERHEAD)
    encode_into(buf, seq, ack, flags, payload, len(payload))
    return bytes(buf)


if TYPE_CHECKING:
    from atm_wire.pyframe import FrameParser
else:
    try:
        # On MicroPython: the byte loop in viper (machine code, no allocation); the Python parser is
        # then never loaded (its bytecode would take heap on the chip).
        from atm_wire.fastframe import FrameParser
    except ImportError:  # CPython (the host): the plain parser
        from atm_wire.pyframe import FrameParser

__all__ = ["FrameParser"]
