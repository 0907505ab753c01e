"""The CRC-16 loop and the parser's frame copy compiled by MicroPython's viper emitter (machine code).

MicroPython only (viper types, ptr8/ptr16): atm_wire.crc imports it when it can and keeps its plain
Python loop otherwise (CPython, the host). Same table, same results (tests/protocol/mp/fuzz_check.py
runs both runtimes on the same frames).
"""

# pyright: basic, reportMissingImports=false, reportMissingModuleSource=false, reportUndefinedVariable=false
# pyright: reportAttributeAccessIssue=false
# pyright: reportInvalidTypeForm=false, reportOptionalMemberAccess=false

# ruff: noqa: F821  (ptr8 and ptr16 are viper built-ins)

import array

import micropython


def _make_table():
    t = array.array("H", bytes(512))
    for byte in range(256):
        crc = byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else (crc << 1)
        t[byte] = crc & 0xFFFF
    return t


TABLE = _make_table()  # the same values as atm_wire.crc's table on CPython (tests/protocol/mp)
_T16 = TABLE
del _make_table  # built once: its code need not stay on the heap


@micropython.viper
def crc16_range(buf, start: int, end: int) -> int:
    """CRC-16/CCITT-FALSE of buf[start:end] (a bytes-like object with a buffer)."""
    p = ptr8(buf)
    t = ptr16(_T16)
    crc = 0xFFFF
    i = start
    while i < end:
        crc = ((crc << 8) & 0xFFFF) ^ t[((crc >> 8) ^ p[i]) & 0xFF]
        i += 1
    return crc


@micropython.viper
def encode_frame(buf, seq: int, ack: int, flags: int, payload, plen: int) -> int:
    """atm_wire.frame.encode_into in one machine-code call: header, payload copy, CRC, trailer."""
    n = plen + 7
    if n > 125:
        raise ValueError("payload too long")
    b = ptr8(buf)
    b[0] = n
    b[1] = seq & 0xFF
    b[2] = ack & 0xFF
    b[3] = flags
    if plen:
        s = ptr8(payload)
        i = 0
        while i < plen:
            b[4 + i] = s[i]
            i += 1
    t = ptr16(TABLE)
    crc = 0xFFFF
    i = 0
    end = n - 3
    while i < end:
        crc = ((crc << 8) & 0xFFFF) ^ t[((crc >> 8) ^ b[i]) & 0xFF]
        i += 1
    b[end] = crc >> 8
    b[end + 1] = crc & 0xFF
    b[end + 2] = 0x7E
    return n


@micropython.viper
def copy_into(dst, dst_off: int, src, src_off: int, n: int):
    """dst[dst_off:dst_off + n] = src[src_off:src_off + n] without allocating (the frame parser)."""
    d = ptr8(dst)
    s = ptr8(src)
    i = 0
    while i < n:
        d[dst_off + i] = s[src_off + i]
        i += 1
