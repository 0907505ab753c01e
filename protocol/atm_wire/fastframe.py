"""The frame parser's byte loop compiled by MicroPython's viper emitter: resync, CRC, copy, no allocation.

MicroPython only (viper types, ptr8/ptr16/ptr32): atm_wire.frame exports FrameParser from here when it
can and the plain Python one of atm_wire.pyframe otherwise (CPython, the host). The rules are the
same, step for step (docs/protocol.md, "Framing"); tests/protocol/mp/fuzz_check.py compares the
counters of both runtimes. Its state (bytes held, counters, a delivery to finish) lives in an int
array, so the Python around the viper loop runs once per delivered frame and once per read, never
per byte.
"""

# pyright: basic, reportMissingImports=false, reportMissingModuleSource=false, reportUndefinedVariable=false
# pyright: reportAttributeAccessIssue=false, reportRedeclaration=false
# pyright: reportInvalidTypeForm=false, reportOptionalMemberAccess=false, reportIndexIssue=false

# ruff: noqa: F821  (ptr8, ptr16 and ptr32 are viper built-ins)

import array

import micropython
from micropython import const

from atm_wire.fastcrc import TABLE as _T16

_SYNC = const(0x7E)
_HEADER = const(4)
_MIN = const(7)
_MAX = const(125)
_FLAG_DATA = const(0x01)
_NOT_FLAGS = const(0xF0)

# Indices into the state array.
_HAVE = const(0)
_OK = const(1)
_CRC = const(2)
_BAD = const(3)
_DROP = const(4)
_PEND = const(5)
_RESUME = const(6)  # length of a frame delivered from the buffer's head: forget it on the next call
_FLUSH = const(7)  # settle everything buffered (the line went quiet)
_POS = const(8)  # next byte of the data being fed
_START = const(9)  # where the candidate starts in the buffer (it ends at _HAVE)
_N_STATE = const(10)
_CAP = const(192)  # buffer bytes: a candidate (< 125) moves to the front at most once per 67 appended


@micropython.viper
def _run(buf, st, data, n: int) -> int:
    """Consume data[st[_POS]:n] into buf; stop at the first good frame and return its length (0: done).

    The frame is at buf[0:length] when this returns; the caller delivers it and calls again."""
    b8 = ptr8(buf)
    s = ptr32(st)
    d = ptr8(data)
    t = ptr16(_T16)
    have = s[_HAVE]
    st0 = s[_START]
    i = s[_POS]
    ok = s[_OK]
    crce = s[_CRC]
    bad = s[_BAD]
    dropped = s[_DROP]
    pend = s[_PEND]
    flush = s[_FLUSH]
    k = 0
    scan = 0
    deliver = 0
    resume = 0
    r = s[_RESUME]
    if r:
        # The frame delivered last time sat at the buffer's head (not counted as dropped).
        dropped -= r
        k = r
        scan = 1
    while True:
        if scan:
            scan = 0
            tail = 0
            while True:
                if k:
                    # Forget the first k bytes of the candidate, then every byte that cannot start a
                    # frame: the candidate's start moves on, nothing is shifted (see _compact).
                    dropped += k
                    st0 += k
                    while st0 < have and (b8[st0] < _MIN or b8[st0] > _MAX):
                        st0 += 1
                        dropped += 1
                        bad += 1
                    k = 0
                    if st0 >= have:
                        st0 = 0
                        have = 0
                    if tail:
                        # A good frame that ended at a SYNC behind a garbage candidate.
                        ok += 1
                        pend = 0
                        deliver = tail
                        q = 0
                        while q < tail:
                            b8[q] = b8[st0 + q]
                            q += 1
                        st0 = 0
                        have = 0
                        break
                cnt = have - st0
                if cnt == 0:
                    break
                if cnt >= _HEADER:
                    f = b8[st0 + 3]
                    if (f & _NOT_FLAGS) or ((f & _FLAG_DATA) == 0 and b8[st0] != _MIN):
                        crce += 1
                        pend = 1
                        k = 1
                        continue
                length = b8[st0]
                if cnt < _MIN or cnt < length:
                    if cnt > _MIN and b8[have - 1] == _SYNC:
                        j = 1
                        while j <= cnt - _MIN:
                            ln = cnt - j
                            if b8[st0 + j] == ln:
                                e = st0 + j + ln
                                crc = 0xFFFF
                                q = st0 + j
                                while q < e - 3:
                                    crc = ((crc << 8) & 0xFFFF) ^ t[((crc >> 8) ^ b8[q]) & 0xFF]
                                    q += 1
                                if crc == ((b8[e - 3] << 8) | b8[e - 2]):
                                    crce += 1  # the garbage candidate in front of it
                                    k = j
                                    tail = ln
                                    break
                            j += 1
                        if tail:
                            continue
                    break
                good = 0
                e = st0 + length
                if b8[e - 1] == _SYNC:
                    crc = 0xFFFF
                    q = st0
                    while q < e - 3:
                        crc = ((crc << 8) & 0xFFFF) ^ t[((crc >> 8) ^ b8[q]) & 0xFF]
                        q += 1
                    if crc == ((b8[e - 3] << 8) | b8[e - 2]):
                        good = 1
                if good:
                    ok += 1
                    pend = 0
                    deliver = length
                    resume = length
                    if st0:
                        # Deliver from the buffer's head: move the candidate (and what follows it) there.
                        q = 0
                        while st0 < have:
                            b8[q] = b8[st0]
                            q += 1
                            st0 += 1
                        have = q
                        st0 = 0
                    break
                crce += 1
                pend = 1
                k = 1
            if deliver:
                break
        if i >= n:
            if flush and have:
                crce += 1
                pend = 1
                k = 1
                scan = 1
                continue
            flush = 0
            break
        b = d[i]
        if have == st0:
            st0 = 0
            have = 0
            if b < _MIN or b > _MAX:
                # Not a plausible length byte (this also swallows stray SYNC bytes).
                bad += 1
                dropped += 1
                i += 1
                continue
            e = i + b
            if e <= n and d[e - 1] == _SYNC:
                f = d[i + 3]
                if (f & _NOT_FLAGS) == 0 and ((f & _FLAG_DATA) or b == _MIN):
                    crc = 0xFFFF
                    q = i
                    while q < e - 3:
                        crc = ((crc << 8) & 0xFFFF) ^ t[((crc >> 8) ^ d[q]) & 0xFF]
                        q += 1
                    if crc == ((d[e - 3] << 8) | d[e - 2]):
                        # A whole good frame in this read: checked where it lies, copied once.
                        q = 0
                        while q < b:
                            b8[q] = d[i + q]
                            q += 1
                        i = e
                        ok += 1
                        pend = 0
                        deliver = b
                        break
        elif have == _CAP:
            # The candidate reached the buffer's end: move it to the front (at most once per _MAX
            # bytes appended, so resynchronising costs O(1) per byte, not a shift per byte).
            q = 0
            while st0 < have:
                b8[q] = b8[st0]
                q += 1
                st0 += 1
            have = q
            st0 = 0
        i += 1
        b8[have] = b
        have += 1
        cnt = have - st0
        if cnt == _HEADER or (cnt >= _MIN and (cnt >= b8[st0] or b == _SYNC)):
            scan = 1
    s[_HAVE] = have
    s[_START] = st0
    s[_POS] = i
    s[_OK] = ok
    s[_CRC] = crce
    s[_BAD] = bad
    s[_DROP] = dropped
    s[_PEND] = pend
    s[_FLUSH] = flush
    s[_RESUME] = resume
    return deliver


class FrameParser:
    """atm_wire.frame.FrameParser on MicroPython: the same interface, rules and counters."""

    def __init__(self):
        self.buf = bytearray(_CAP)
        self._st = array.array("i", bytes(4 * _N_STATE))

    @property
    def have(self):
        return self._st[_HAVE] - self._st[_START]

    @property
    def frames_ok(self):
        return self._st[_OK]

    @property
    def crc_errors(self):
        return self._st[_CRC]

    @property
    def bad_length(self):
        return self._st[_BAD]

    @property
    def bytes_dropped(self):
        return self._st[_DROP]

    @property
    def errors_pending(self):
        return self._st[_PEND] != 0

    @errors_pending.setter
    def errors_pending(self, value):
        self._st[_PEND] = 1 if value else 0

    def reset(self):
        st = self._st
        st[_HAVE] = 0
        st[_START] = 0
        st[_RESUME] = 0

    def feed(self, data, n, on_frame):
        """Consume data[0:n]; call on_frame(buf, length) for each good frame."""
        st = self._st
        buf = self.buf
        st[_POS] = 0
        while True:
            length = _run(buf, st, data, n)
            if not length:
                return
            on_frame(buf, length)

    def flush(self, on_frame):
        """The line went quiet inside a candidate: give it up, deliver good frames behind it."""
        st = self._st
        buf = self.buf
        st[_POS] = 0
        st[_FLUSH] = 1
        while True:
            length = _run(buf, st, buf, 0)
            if not length:
                return
            on_frame(buf, length)
