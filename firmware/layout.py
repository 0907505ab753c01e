"""The board's flash layout, shared by the firmware, the simulated board and the image builder.

The storage region starts at flash offset 0xA0000 and holds FS_BLOCKS 4 KiB erase blocks. littlefs
spans all of them (the rp2 port's frozen _boot.py reformats a filesystem of any other size), but only
the first RAW_FIRST_BLOCK blocks ever hold files; the last RAW_BLOCKS blocks are the journal's raw
record log (journal.py), which littlefs never allocates because nothing is written to littlefs at
run time (the image is built and flashed whole; see docs/deployment.md).
"""

from micropython import const

FLASH_STORAGE_OFFSET = const(0xA0000)  # byte offset of the storage region in the 2 MiB flash
BLOCK_SIZE = const(4096)  # erase block (sector) of the W25Q16-class part
PAGE_SIZE = const(256)  # program page: a page is programmed once after its block is erased
FS_BLOCKS = const(352)  # blocks in the storage region, all of them littlefs's as far as it knows
RAW_FIRST_BLOCK = const(320)  # first block of the raw journal region, counted from the region start
RAW_BLOCKS = const(32)  # the journal's ring of erase blocks
