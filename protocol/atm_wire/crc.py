"""CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF, no reflection) as used by the frame trailer."""


def _make_table() -> "tuple[int, ...]":
    table: "list[int]" = []
    for byte in range(256):
        crc = byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else (crc << 1)
        table.append(crc & 0xFFFF)
    return tuple(table)


TABLE = _make_table()
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


_fast = None
try:
    # On MicroPython: the same loop compiled by the viper emitter (70x faster on the unix port).
    from atm_wire.fastcrc import crc16_range as _viper  # pyright: ignore[reportMissingImports, reportUnknownVariableType]

    _fast = _viper  # pyright: ignore[reportUnknownVariableType]
except ImportError:  # CPython (the host) has no `micropython` module: the plain loop above
    pass
