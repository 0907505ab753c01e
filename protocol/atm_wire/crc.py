"""CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF, no reflection) as used by the frame trailer."""

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence


def _make_table() -> "tuple[int, ...]":
    table: "list[int]" = []
    for byte in range(256):
        crc = byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else (crc << 1)
        table.append(crc & 0xFFFF)
    return tuple(table)


_fast = None
_viper_table = None
try:
    # On MicroPython: the loop compiled by the viper emitter (70x faster on the unix port), and its
    # table as a 512-byte array (the frame parser shares it; a tuple of ints would take 2 KB of heap).
    from atm_wire.fastcrc import TABLE as _t  # pyright: ignore[reportMissingImports, reportUnknownVariableType]
    from atm_wire.fastcrc import crc16_range as _viper  # pyright: ignore[reportMissingImports, reportUnknownVariableType]

    _fast = _viper  # pyright: ignore[reportUnknownVariableType]
    _viper_table = _t  # pyright: ignore[reportUnknownVariableType]
except ImportError:  # CPython (the host) has no `micropython` module: the plain loop below
    pass
TABLE: "Sequence[int]" = _make_table() if _viper_table is None else _viper_table  # pyright: ignore[reportUnknownVariableType]
del _make_table  # built once: its code need not stay on the chip's heap
_TABLE = TABLE


def crc16(buf: "bytes | bytearray | memoryview", start: int = 0, end: int = -1) -> int:
    """Return the CRC of buf[start:end] without slicing (no allocation)."""
    if end < 0:
        end = len(buf)
    if _fast is not None:
        return _fast(buf, start, end)
    crc = 0xFFFF
    table = _TABLE
    i = start
    while i < end:
        crc = ((crc << 8) & 0xFFFF) ^ table[((crc >> 8) ^ buf[i]) & 0xFF]
        i += 1
    return crc
