"""A file-backed block device with the RP2040 Pico's flash geometry, mountable with vfs.VfsLfs2."""

BLOCK_SIZE = 4096
BLOCK_COUNT = 212  # 848 KiB of littlefs, like a Pico's default filesystem


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
