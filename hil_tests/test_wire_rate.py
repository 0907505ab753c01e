"""The simulated UART at a real baud rate: commands still work and take at least the wire time."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from atm_host.link import DispenserClient
from atm_sim.board import SimBoard


@pytest.mark.sim_only
def test_115200_baud_wire_paces_the_link(tmp_path: Path) -> None:
    with SimBoard(workdir=tmp_path / "b", baud=115200) as board, DispenserClient.connect(board.port) as c:
        assert board.wire is not None
        c.cassette_info()  # settle the connection's own frames first
        to_host, to_board = board.wire.bytes_to_host, board.wire.bytes_to_board
        t0 = time.perf_counter()
        for _ in range(20):
            c.cassette_info()
        per_cmd = (time.perf_counter() - t0) / 20
        per_host = (board.wire.bytes_to_host - to_host) / 20
        per_board = (board.wire.bytes_to_board - to_board) / 20
        # A cassette_info exchange is a 10-byte command frame out and a 36-byte completion frame
        # back (read-only commands get no acknowledge; ACKs ride on the next frame), each byte 10 bits.
        assert per_host >= 36
        assert per_board >= 10
        assert per_cmd >= (per_host + per_board) * 10 / 115200
