"""Simulated `rp2` module for the unix port: rp2.Flash over the board's flash image, with NOR rules.

Like the RP2040's QSPI flash (W25Q16-class): an erase sets a 4 KiB block to 0xFF; a program works
on whole 256-byte pages and can only clear bits (the result is old AND new: programming a page that
is not erased is not silently fixed, it is counted in `reprograms`). Every erase and program first
asks the harness (machine.flash_op), which may cut the power there: before the operation, or in
its middle, after only the first bytes were programmed or erased (a torn page, a torn erase).
`start`/`len` are byte offsets in the storage region, which is the image file (layout.py).
"""

import os

import machine

_BLOCK = 4096
_PAGE = 256
_PROGRAM = 1
_ERASE = 2


class Flash:
    def __init__(self, *, start=-1, len=-1):
        path = os.getenv("ATM_SIM_FLASH")
        if not path:
            raise OSError("ATM_SIM_FLASH not set: not running under the simulated board harness")
        self._f = open(path, "r+b")
        self._base = 0 if start < 0 else start
        size = len if len > 0 else 0
        if self._base % _BLOCK or size % _BLOCK:
            raise ValueError("start and len must be whole blocks")
        self._blocks = size // _BLOCK
        self._old = bytearray(_BLOCK)
        self._ff = b"\xff" * _BLOCK
        self.reprograms = 0  # programs that met bits already cleared (a firmware bug on real flash)

    def _addr(self, block, offset):
        if block < 0 or block >= self._blocks:
            raise OSError(22)  # EINVAL: outside this device
        return self._base + block * _BLOCK + offset

    def readblocks(self, block, buf, offset=0):
        self._f.seek(self._addr(block, offset))
        self._f.readinto(buf)

    def writeblocks(self, block, buf, offset=None):
        if offset is None:
            self._erase(block)
            offset = 0
        self._program(block, buf, offset)

    def ioctl(self, op, arg=0):
        if op == 4:
            return self._blocks
        if op == 5:
            return _BLOCK
        if op == 6:
            self._erase(arg)
            return 0
        return 0

    def _erase(self, block):
        addr = self._addr(block, 0)
        tear = machine.flash_op(_ERASE, block)
        self._f.seek(addr)
        if tear:
            self._f.write(memoryview(self._ff)[: tear - 1])
            self._f.flush()
            machine.flash_torn()
        self._f.write(self._ff)
        self._f.flush()

    def _program(self, block, buf, offset):
        n = len(buf)
        if offset % _PAGE or n % _PAGE or offset + n > _BLOCK:
            raise OSError(22)  # the SDK programs whole, aligned pages of one block
        addr = self._addr(block, offset)
        tear = machine.flash_op(_PROGRAM, block)
        old = memoryview(self._old)[:n]
        self._f.seek(addr)
        self._f.readinto(old)
        met = False
        for i in range(n):
            b = buf[i]
            if b != 0xFF and old[i] != 0xFF:
                met = True
            old[i] &= b
        if met:
            self.reprograms += 1
        self._f.seek(addr)
        if tear:
            self._f.write(old[: tear - 1])
            self._f.flush()
            machine.flash_torn()
        self._f.write(old)
        self._f.flush()
