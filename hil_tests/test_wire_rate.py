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
        t0 = time.perf_counter()
        for _ in range(20):
            c.cassette_info()
        per_cmd = (time.perf_counter() - t0) / 20
        # A cassette_info exchange puts at least 8+12+12+38 bytes on the wire: 70 bytes * 87 us.
        assert per_cmd >= 70 * 10 / 115200
        assert board.wire.bytes_to_host > 20 * 38 and board.wire.bytes_to_board > 20 * 10
