"""The flashable image on the emulated RP2040: the UF2 of `./atm flash --uf2` boots and answers."""

from __future__ import annotations

from pathlib import Path

import pytest
from atm_host.link import DispenserClient
from atm_sim.rp2040.board import RP2040Board, uf2_path
from atm_tools import flash, image


@pytest.mark.rp2040
def test_uf2_with_the_board_image_boots_and_answers_hello(tmp_path: Path) -> None:
    built = image.build(tmp_path / "build")
    assert max(built.used_blocks) < built.layout.raw_first_block
    uf2 = tmp_path / "atm.uf2"
    uf2.write_bytes(flash.make_uf2(uf2_path(), built))
    board = RP2040Board(workdir=tmp_path / "board", uf2=uf2)
    board.mech.load([10, 10, 10, 10])
    with board, DispenserClient.connect(board.port, timeout=30) as client:
        assert client.info.protocol_version >= 1
        assert client.status().state in (0, 1)


def test_image_fails_when_littlefs_would_use_the_raw_region(tmp_path: Path) -> None:
    lay = image.read_layout()
    buf = bytearray(b"\xff" * (lay.block_size * lay.fs_blocks))
    buf[lay.raw_first_block * lay.block_size] = 0
    with pytest.raises(image.ImageError, match="raw state region"):
        image.check_blocks(bytes(buf), lay)


def test_uf2_blocks_are_numbered_and_tagged_for_the_rp2040(tmp_path: Path) -> None:
    built = image.build(tmp_path / "build")
    data = flash.make_uf2(uf2_path(), built)
    blocks = flash._uf2_blocks(data)  # pyright: ignore[reportPrivateUsage]
    fs_base = image.XIP_BASE + image.FS_FLASH_OFFSET
    fs_blocks = [a for a, _ in blocks if a >= fs_base]
    assert len(fs_blocks) * flash.UF2_PAYLOAD == built.layout.raw_first_block * built.layout.block_size
    assert max(fs_blocks) < fs_base + built.layout.raw_first_block * built.layout.block_size
    assert int.from_bytes(data[28:32], "little") == flash.RP2040_FAMILY
    assert int.from_bytes(data[24:28], "little") == len(blocks)


@pytest.mark.rp2040
def test_flash_port_writes_the_image_over_the_usb_repl(tmp_path: Path) -> None:
    """A Pico with plain MicroPython (the filesystem formatted at its first boot) gets the image through
    `./atm flash --port`'s code over its USB REPL, verifies it block by block, resets and answers."""
    import time

    built = image.build(tmp_path / "build")
    board = RP2040Board(workdir=tmp_path / "board", uf2=uf2_path(), usb=True)
    board.mech.load([10, 10, 10, 10])
    with board:
        deadline = time.monotonic() + 60
        while ">>> " not in board.log() and time.monotonic() < deadline:
            time.sleep(0.2)  # MicroPython's REPL prompt on USB: booted, filesystem formatted
        assert ">>> " in board.log(), board.log()[-500:]
        res = flash.flash_port(board.usb_port, built)
        assert res["written"] == len(built.used_blocks), res
        with DispenserClient.connect(board.port, timeout=60) as client:
            assert client.status().state in (0, 1)
        assert board.boots >= 2  # machine.reset() restarted the chip with the flash kept
