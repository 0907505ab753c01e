"""Boot the simulated board: mount the littlefs flash image at /flash, then run its main.py."""

import os
import sys

import flashdev
import machine
import vfs

image = os.getenv("ATM_SIM_FLASH")
dev = flashdev.FileBlockDev(image, machine.flash_write_hook)
vfs.mount(vfs.VfsLfs2(dev), "/flash")
os.chdir("/flash")
sys.path.insert(0, "/flash/lib")
sys.path.insert(0, "/flash")
import main  # noqa: E402,F401  (the firmware's entry point runs on import, as on the board)
