"""The real firmware on the simulated board, its USB cable pulled and plugged back (pluggable board).

What the host sees is what a real USB unplug gives: EIO on the open port, the /dev/pts path gone,
ENOENT when reopening, then a new pty behind the same stable name (like /dev/serial/by-id/...).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from atm_host.link.errors import LinkError, PortError
from atm_host.link.reconnect import LinkDown, ReconnectingDispenser, serial_factory
from atm_sim.board import SimBoard, SimError
from atm_sim.control import ControlServer, control

WAIT_S = 30.0  # generous: a shared 2-core machine, a MicroPython interpreter booting


@pytest.fixture(params=[None, 115200], ids=["pty", "paced"])
def board(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SimBoard]:
    with SimBoard(workdir=tmp_path / "board", pluggable=True, baud=request.param) as b:
        yield b


def test_unplug_fails_the_port_and_replug_reopens_it_with_the_firmware_still_running(board: SimBoard) -> None:
    d = ReconnectingDispenser(serial_factory(board.stable_port, handshake_s=10), first_s=0.05, max_s=0.5)
    try:
        assert d.wait_connected(WAIT_S), d.last_error
        boot = d.info.boot_count
        old_path = board.port
        assert os.path.realpath(board.stable_port) == old_path
        board.unplug()
        assert not os.path.exists(old_path) and not os.path.lexists(board.stable_port)
        with pytest.raises(PortError):
            d.status()  # EIO: the call fails at once
        with pytest.raises(LinkDown):
            d.status()
        board.replug()
        assert os.path.realpath(board.stable_port) == board.port
        assert d.wait_connected(WAIT_S), d.last_error
        assert d.status().state_name == "idle"
        assert d.info.boot_count == boot  # the MCU never restarted: only the cable was out
        assert d.link_counters()["reopens"] == 1
    finally:
        d.close()


def test_a_bus_powered_board_reboots_when_plugged_back(tmp_path: Path) -> None:
    with SimBoard(workdir=tmp_path / "board", pluggable=True) as board:
        d = ReconnectingDispenser(serial_factory(board.stable_port, handshake_s=10), first_s=0.05, max_s=0.5)
        try:
            assert d.wait_connected(WAIT_S), d.last_error
            boot = d.info.boot_count
            board.unplug(power_off=True)
            assert not board.running()
            with pytest.raises(LinkError):
                d.status()
            board.replug()
            assert d.wait_connected(WAIT_S), d.last_error
            assert d.status().state_name == "idle"
            assert d.info.boot_count == boot + 1 and board.power_cuts == 1
        finally:
            d.close()


def test_the_control_channel_pulls_and_replugs_the_cable(tmp_path: Path) -> None:
    with SimBoard(workdir=tmp_path / "board", pluggable=True) as board:
        ctl = ControlServer(board).start()
        try:
            reply = control(ctl.port, "unplug")
            assert reply["ok"] and not board.plugged and not os.path.lexists(board.stable_port)
            reply = control(ctl.port, "replug")
            assert reply["ok"] and reply["result"]["port"] == board.port
            assert control(ctl.port, "unplug", power_off="yes")["ok"] is False
        finally:
            ctl.stop()


def test_a_fixed_board_cannot_be_unplugged(tmp_path: Path) -> None:
    board = SimBoard(workdir=tmp_path / "board")
    with pytest.raises(SimError):
        board.unplug()
    assert board.stable_port == board.port
