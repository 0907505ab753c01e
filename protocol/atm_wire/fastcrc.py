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

from atm_wire.crc import TABLE

_T16 = array.array("H", TABLE)


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
def copy_into(dst, dst_off: int, src, src_off: int, n: int):
    """dst[dst_off:dst_off + n] = src[src_off:src_off + n] without allocating (the frame parser)."""
    d = ptr8(dst)
    s = ptr8(src)
    i = 0
    while i < n:
        d[dst_off + i] = s[src_off + i]
        i += 1
