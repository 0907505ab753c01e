"""Format a flash image and copy a firmware tree into it, as `mpremote fs cp -r` does on a board.

Usage: micropython flashtool.py IMAGE SRC_DIR [--format]
Files under SRC_DIR keep their relative paths under /flash. Existing files are replaced; data files
the firmware wrote (journal, key, nonce epoch) are kept unless --format is given.
"""

import os
import sys

import flashdev
import vfs


def _copy(src, dst):
    for name, kind, *_ in os.ilistdir(src):
        s = src + "/" + name
        d = dst + "/" + name
        if kind == 0x4000:
            try:
                os.mkdir(d)
            except OSError:
                pass
            _copy(s, d)
        else:
            with open(s, "rb") as fi, open(d, "wb") as fo:
                while True:
                    chunk = fi.read(1024)
                    if not chunk:
                        break
                    fo.write(chunk)


def main():
    image, src = sys.argv[1], sys.argv[2]
    fmt = "--format" in sys.argv
    try:
        open(image, "rb").close()
    except OSError:
        fmt = True
    if fmt:
        blank = b"\xff" * flashdev.BLOCK_SIZE
        with open(image, "wb") as f:
            for _ in range(flashdev.FS_BLOCKS):
                f.write(blank)
    dev = flashdev.FileBlockDev(image)
    if fmt:
        vfs.VfsLfs2.mkfs(dev)
    vfs.mount(vfs.VfsLfs2(dev), "/flash")
    _copy(src, "/flash")
    vfs.umount("/flash")


main()
