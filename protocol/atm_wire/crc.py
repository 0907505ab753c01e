"""CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF, no reflection) as used by the frame trailer."""


def _make_table() -> "tuple[int, ...]":
    table: "list[int]" = []
    for byte in range(256):
        crc = byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else (crc << 1)
        table.append(crc & 0xFFFF)
    return tuple(table)


_TABLE = _make_table()


def crc16(buf: "bytes | bytearray | memoryview", start: int = 0, end: int = -1) -> int:
    """Return the CRC of buf[start:end] without slicing (no allocation)."""
    if end < 0:
        end = len(buf)
    crc = 0xFFFF
    table = _TABLE
    i = start
    while i < end:
        crc = ((crc << 8) & 0xFFFF) ^ table[((crc >> 8) ^ buf[i]) & 0xFF]
        i += 1
    return crc
