"""`./atm flash`: build the board image; write it to a board over its USB REPL, or into a UF2 file.

--port PORT   writes the littlefs blocks below the raw state region through mpremote's raw REPL with
              rp2.Flash (blank blocks are erased where the board's are not blank), checks each block's
              sha256 on the board, then resets it. The raw state region (journal, key, counters) is left
              as it is unless --erase-state (a first install). PORT is anything pyserial opens.
--uf2 OUT     writes the shared MicroPython UF2 plus the same littlefs blocks at 0x100A0000 (one file
              for a board in BOOTSEL mode); the raw state region is not in it, so it survives too.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import struct
import sys
import time
from pathlib import Path
from typing import Any

from atm_tools import image as img

UF2_MAGIC0, UF2_MAGIC1, UF2_MAGIC_END = 0x0A324655, 0x9E5D5157, 0x0AB16F30
UF2_FLAG_FAMILY = 0x00002000
RP2040_FAMILY = 0xE48BFF56
UF2_PAYLOAD = 256


class FlashError(Exception):
    """The board could not be flashed or the image does not verify."""


def _default_uf2() -> Path:
    from atm_sim.rp2040.board import uf2_path

    return uf2_path()


def _uf2_blocks(data: bytes) -> list[tuple[int, bytes]]:
    """(target address, payload) of every block of a UF2 file."""
    out: list[tuple[int, bytes]] = []
    for off in range(0, len(data) - 511, 512):
        m0, m1, _flags, addr, size, _no, _total, _fam = struct.unpack_from("<8I", data, off)
        if (m0, m1) != (UF2_MAGIC0, UF2_MAGIC1):
            raise FlashError(f"not a UF2 block at offset {off}")
        out.append((addr, data[off + 32 : off + 32 + size]))
    return out


def fs_part(built: img.BoardImage) -> bytes:
    """The littlefs blocks the board gets: every block below the raw state region."""
    return built.littlefs[: built.layout.raw_first_block * built.layout.block_size]


def make_uf2(micropython_uf2: Path, built: img.BoardImage) -> bytes:
    """MicroPython's UF2 followed by the littlefs blocks at XIP_BASE + 0xA0000, renumbered as one file."""
    blocks = _uf2_blocks(micropython_uf2.read_bytes())
    fs_end = img.FS_FLASH_OFFSET + built.layout.fs_blocks * built.layout.block_size
    for addr, _ in blocks:
        if img.XIP_BASE + img.FS_FLASH_OFFSET <= addr < img.XIP_BASE + fs_end:
            raise FlashError(f"{micropython_uf2} writes into the filesystem region at 0x{addr:08x}")
    part = fs_part(built)
    base = img.XIP_BASE + img.FS_FLASH_OFFSET
    blocks += [(base + o, part[o : o + UF2_PAYLOAD]) for o in range(0, len(part), UF2_PAYLOAD)]
    out = bytearray()
    for no, (addr, payload) in enumerate(blocks):
        head = struct.pack(
            "<8I", UF2_MAGIC0, UF2_MAGIC1, UF2_FLAG_FAMILY, addr, len(payload), no, len(blocks), RP2040_FAMILY
        )
        out += head + payload.ljust(476, b"\x00") + struct.pack("<I", UF2_MAGIC_END)
    return bytes(out)


# ----- over the REPL ---------------------------------------------------------------------------------
_PRELUDE = """
import rp2, machine, hashlib, binascii
try:
    machine.WDT(timeout=8000).feed()
except Exception:
    pass
_f = rp2.Flash()
_b = bytearray(4096)
def _feed():
    try:
        machine.WDT(timeout=8000).feed()
    except Exception:
        pass
"""


def _block_hashes(transport: Any, lay: img.Layout) -> list[str]:
    code = (
        "_feed()\n"
        f"for _i in range({lay.raw_first_block}):\n"
        "    _f.readblocks(_i, _b)\n"
        "    print(binascii.hexlify(hashlib.sha256(_b).digest()).decode())\n"
    )
    out: bytes = transport.exec(code)
    return out.decode().split()


def flash_port(port: str, built: img.BoardImage, erase_state: bool = False) -> dict[str, int]:
    """Write the image's littlefs blocks to the board at `port`; returns what was written."""
    from mpremote.transport_serial import SerialTransport  # pyright: ignore[reportMissingTypeStubs]

    lay = built.layout
    bs = lay.block_size
    part = fs_part(built)
    want = [hashlib.sha256(part[b * bs : (b + 1) * bs]).hexdigest() for b in range(lay.raw_first_block)]
    t: Any = SerialTransport(port, baudrate=115200)  # mpremote is untyped
    try:
        # The firmware's main.py catches the first Ctrl-C (it stops the motors and waits for the
        # watchdog); the second one reaches the REPL. Then a raw REPL after a soft reset (main.py does
        # not run in it). The watchdog cannot be stopped on the RP2040: every step feeds it.
        t.serial.write(b"\r\x03")
        time.sleep(0.3)
        t.serial.write(b"\x03")
        time.sleep(0.3)
        t.enter_raw_repl(soft_reset=True)
        t.exec(_PRELUDE)
        have = _block_hashes(t, lay)
        if len(have) != lay.raw_first_block:
            raise FlashError(f"the board listed {len(have)} blocks, expected {lay.raw_first_block}")
        written = erased = 0
        blank = hashlib.sha256(b"\xff" * bs).hexdigest()
        for b in range(lay.raw_first_block):
            if have[b] == want[b]:
                continue
            if want[b] == blank:
                t.exec(f"_feed()\n_f.ioctl(6, {b})\n")
                erased += 1
                continue
            data = base64.b64encode(part[b * bs : (b + 1) * bs]).decode()
            t.exec(f"_feed()\n_f.writeblocks({b}, binascii.a2b_base64('{data}'))\n")
            written += 1
        if erase_state:
            t.exec(
                "_feed()\n"
                f"_r = rp2.Flash(start={lay.raw_first_block * bs}, len={lay.raw_blocks * bs})\n"
                f"for _i in range({lay.raw_blocks}):\n"
                "    _r.ioctl(6, _i)\n"
            )
        have = _block_hashes(t, lay)
        bad = [b for b in range(lay.raw_first_block) if have[b] != want[b]]
        if bad:
            raise FlashError(f"blocks {bad} differ on the board after writing")
        t.serial.write(b"import machine\r\nmachine.reset()\r\n\x04")
        return {"written": written, "erased": erased, "unchanged": lay.raw_first_block - written - erased}
    finally:
        try:
            t.close()
        except Exception:  # the board reset under us
            pass


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="atm flash", description="build the board image and write it")
    ap.add_argument("--port", help="the board's USB REPL (a tty path or any pyserial URL)")
    ap.add_argument("--uf2", type=Path, help="write a UF2 (MicroPython + the board image) to this file")
    ap.add_argument("--micropython-uf2", type=Path, help="the MicroPython UF2 (default: the shared one)")
    ap.add_argument(
        "--erase-state", action="store_true", help="also erase the raw state region (first install)"
    )
    ap.add_argument("--build-dir", type=Path, default=img.REPO / "build" / "board")
    args = ap.parse_args(argv)
    built = img.build(args.build_dir)
    files = sum(1 for p in built.tree.rglob("*") if p.is_file())
    print(
        f"board image: {files} files in {args.build_dir / 'tree'}, "
        f"littlefs blocks used {len(built.used_blocks)} "
        f"(highest {max(built.used_blocks)}; raw state region from block {built.layout.raw_first_block})"
    )
    try:
        if args.uf2:
            uf2 = make_uf2(args.micropython_uf2 or _default_uf2(), built)
            args.uf2.write_bytes(uf2)
            print(f"wrote {args.uf2}: {len(uf2) // 512} UF2 blocks, family 0x{RP2040_FAMILY:08x}")
        if args.port:
            res = flash_port(args.port, built, erase_state=args.erase_state)
            print(f"flashed {args.port}: {res}; the board resets")
    except (FlashError, img.ImageError) as exc:
        print(f"atm flash: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
