"""A file-backed block device with the RP2040 Pico's flash geometry, mountable with vfs.VfsLfs2.

The image file is the storage region of firmware/layout.py: FS_BLOCKS blocks, of which littlefs uses
the first RAW_FIRST_BLOCK (code only, written when the image is flashed); the rest is the journal's
raw region, reached through rp2.Flash (rp2.py). On the chip the littlefs superblock says FS_BLOCKS
(the rp2 port reformats any other size); here the unix port mounts it with RAW_FIRST_BLOCK, so no file
can ever be allocated in the raw region.
"""

BLOCK_SIZE = 4096
FS_BLOCKS = 352  # firmware/layout.py (atm_sim.board checks that they agree)
BLOCK_COUNT = 320  # RAW_FIRST_BLOCK: littlefs's part of the storage region


class FileBlockDev:
    def __init__(self, path, hook=None):
        self._f = open(path, "r+b")
        self._hook = hook

    def readblocks(self, block, buf, offset=0):
        self._f.seek(block * BLOCK_SIZE + offset)
        self._f.readinto(buf)

    def writeblocks(self, block, buf, offset=None):
        if self._hook is not None:
            self._hook(block)
        if offset is None:
            # Whole-block write after an erase (the extended interface calls ioctl 6 first).
            offset = 0
        self._f.seek(block * BLOCK_SIZE + offset)
        self._f.write(buf)
        self._f.flush()

    def ioctl(self, op, arg):
        if op == 4:
            return BLOCK_COUNT
        if op == 5:
            return BLOCK_SIZE
        if op == 6:
            if self._hook is not None:
                self._hook(arg)
            self._f.seek(arg * BLOCK_SIZE)
            self._f.write(b"\xff" * BLOCK_SIZE)
            self._f.flush()
            return 0
        return 0
