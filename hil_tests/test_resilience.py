"""The link under noise, a host restart mid-dispense, and a power cut at every step of a dispense."""

from __future__ import annotations

import random
import threading
import time
from pathlib import Path

import pytest
from atm_host.link import CommandFailed, DeviceReset, DispenserClient, LinkError
from atm_host.link.client import open_port
from atm_sim.board import SimBoard
from atm_wire import messages as m

from hil_tests.rig import CUT_MODES, HIL_PORT, Rig, make_rig


class NoisyPort:
    """Wraps a serial port: corrupts 1% of bytes and drops 1% of writes, both directions."""

    def __init__(self, inner, rng: random.Random, byte_error: float = 0.01, drop: float = 0.01) -> None:
        self._inner = inner
        self._rng = rng
        self._p = byte_error
        self._drop = drop
        self.corrupted = 0
        self.dropped = 0
        self.writes = 0

    @property
    def in_waiting(self) -> int:
        return int(self._inner.in_waiting)

    def _mangle(self, data: bytes) -> bytes:
        out = bytearray(data)
        for i in range(len(out)):
            if self._rng.random() < self._p:
                out[i] ^= 1 << self._rng.randrange(8)
                self.corrupted += 1
        return bytes(out)

    def read(self, size: int = 1, /) -> bytes:
        return self._mangle(self._inner.read(size))

    def write(self, b: bytes, /) -> int | None:
        self.writes += 1
        # 1% of writes lost, at random, and at least every 53rd, so every run loses some.
        if self._rng.random() < self._drop or self.writes % 53 == 0:
            self.dropped += 1
            return len(b)
        return self._inner.write(self._mangle(b))

    def close(self) -> None:
        self._inner.close()


def test_commands_complete_through_one_percent_corruption(rig: Rig) -> None:
    url = HIL_PORT or (rig.board.port if rig.board is not None else "")
    rig.client.close()
    noisy = NoisyPort(open_port(url), random.Random(7))
    client = DispenserClient(noisy)
    client.handshake(timeout=20)
    rig.client = client
    for _ in range(30):
        assert client.status().provisioned
        assert client.cassette_info().counts[0] == 200
    txid, _, res = rig.dispense((2, 1, 0, 0))
    assert res.stacked == (2, 1, 0, 0)
    assert client.reject(token=client.maint_token(rig.key, "reject")) == 3
    assert client.get_report(txid).rejected == 3
    stats = client.stats()
    assert noisy.corrupted > 0 and noisy.dropped > 0
    assert stats.link.retransmits > 0 or stats.link.crc_errors > 0
    if rig.board is not None:
        assert rig.board.mech.snapshot()["reject_bin"] == 3


def test_host_restart_mid_dispense_pays_once(rig: Rig) -> None:
    notes = (10, 0, 0, 0)
    txid, token = rig.token(notes)
    first: list[BaseException] = []

    def run() -> None:
        try:
            rig.client.dispense(token)
        except BaseException as exc:  # the host process "dies" below
            first.append(exc)

    board = rig.board
    loaded = sum(board.mech.snapshot()["cassettes"]) if board is not None else 0
    t = threading.Thread(target=run)
    t.start()
    if board is not None:
        # Not a sleep: the crash comes once the first note has left its cassette (the mechanism says so).
        deadline = time.monotonic() + 20
        while sum(board.mech.snapshot()["cassettes"]) == loaded:
            assert time.monotonic() < deadline, "the dispense never started picking"
            time.sleep(0.002)
    else:
        time.sleep(0.05)  # a real board has no control channel to watch: the best guess at "picking"
    rig.client.close()  # the host crashes while the notes are being picked
    t.join(5)
    rig.reconnect()
    deadline = time.monotonic() + 20
    while True:
        try:
            res = rig.client.dispense(token)  # the restarted host retries the same transaction
            break
        except (CommandFailed, LinkError) as exc:
            if isinstance(exc, CommandFailed):
                raise
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    assert res.stacked == notes
    assert rig.client.present(txid) == 10
    if rig.board is not None:
        s = rig.board.mech.snapshot()
        assert s["presenter"] == 10 and s["cassettes"][0] == 190 and s["reject_bin"] == 0


# ----- power cuts --------------------------------------------------------------------------------


def _transaction(rig: Rig, txid: bytes, token: bytes) -> None:
    """A full dispense the host drives to the end, surviving the board's reboot when it comes."""
    c = rig.client
    res = c.dispense(token)
    c.present(res.txid)
    assert rig.board is not None
    rig.board.mech.take()
    deadline = time.monotonic() + 5
    while c.status().state != m.STATE_IDLE and time.monotonic() < deadline:
        rig.board.mech.take()
        time.sleep(0.02)


def _settle(rig: Rig, txid: bytes, token: bytes) -> int:
    """After the cut: the host reconnects, retries the same token, then finishes as the device allows.

    Returns the notes the signed report says the customer received, or -1 where it says "unknown"."""
    assert rig.board is not None
    deadline = time.monotonic() + 20
    while True:
        try:
            rig.reconnect()
            break
        except LinkError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
    c = rig.client
    try:
        res = c.dispense(token)  # a retry: pays only if nothing of this transaction was ever picked
        if not res.duplicate:
            c.present(txid)
    except CommandFailed as exc:
        # The nonce died with the power: the device refuses the old token. That is correct.
        assert exc.code in (m.NO_COMMAND_NONCE, m.INVALID_TOKEN_NONCE), exc
    rig.board.mech.take()
    deadline = time.monotonic() + 5
    while c.status().state != m.STATE_IDLE and time.monotonic() < deadline:
        rig.board.mech.take()
        time.sleep(0.02)
    try:
        rep = c.get_report(txid)
    except CommandFailed as exc:
        assert exc.code == m.UNKNOWN_TRANSACTION  # the cut came before the token was accepted
        return 0
    assert rep.flags & m.REPORT_FLAG_FINAL
    if rep.present_status == m.PRESENT_UNKNOWN:
        return -1
    return rep.presented - rep.retracted if rep.present_status == m.PRESENT_PRESENTED else 0


def _check_books(rig: Rig, loaded: int) -> None:
    assert rig.board is not None
    mech = rig.board.mech
    assert mech.total() == loaded, mech.snapshot()
    assert mech.in_path() == 0 and mech.stacker == 0 and mech.presenter == 0, mech.snapshot()
    info = rig.client.cassette_info()
    assert list(info.counts) == mech.cassettes, (info, mech.snapshot())
    assert info.reject_bin == mech.reject_bin, (info, mech.snapshot())


@pytest.mark.sim_only
@pytest.mark.parametrize("mode", CUT_MODES)
def test_power_cut_at_every_step_of_a_dispense(tmp_path: Path, mode: str) -> None:
    """A cut at every flash operation (before it, or torn in the middle of the page: 30 of its bytes
    programmed, inside the record) and at every pin write of a dispense, present and take."""
    kind = "pin" if mode == "pin" else "flash"
    tear = 30 if mode == "flash-torn" else None
    notes = (2, 1, 0, 0)
    with make_rig(tmp_path / "calibrate") as rig:
        assert rig.board is not None
        txid, token = rig.token(notes)
        before = rig.board.flash_writes if kind == "flash" else rig.board.pin_writes
        _transaction(rig, txid, token)
        steps = (rig.board.flash_writes if kind == "flash" else rig.board.pin_writes) - before
    assert steps >= 5
    outcomes: dict[str, int] = {}
    # Every cut before the present sends that transaction's notes to the reject bin: load enough.
    load = [2000, 2000, 2000, 2000]
    with make_rig(tmp_path / "cuts", load=load) as rig:
        assert rig.board is not None
        for k in range(1, steps + 1):
            txid, token = rig.token(notes)
            taken_before = rig.board.mech.taken
            if tear is None:
                rig.board.cut_at(kind, k)
            else:
                assert isinstance(rig.board, SimBoard), "a torn write needs the unix-port board's flash"
                rig.board.cut_at(kind, k, tear=tear)
            try:
                _transaction(rig, txid, token)
            except (LinkError, DeviceReset, CommandFailed):
                pass
            if rig.board.armed:
                rig.board.disarm()  # this run took fewer steps than the calibration run
            try:
                reported = _settle(rig, txid, token)
            except AssertionError as exc:
                raise AssertionError(f"{mode} cut at step {k}/{steps}: {exc}") from exc
            got = rig.board.mech.taken - taken_before
            _check_books(rig, sum(load))
            if reported == -1:
                outcomes["unknown"] = outcomes.get("unknown", 0) + 1
            else:
                outcomes["exact"] = outcomes.get("exact", 0) + 1
            # Never paid twice: the customer got at most one transaction's notes per transaction.
            assert got <= sum(notes), f"step {k}: paid {got} notes for one {sum(notes)}-note transaction"
            if reported >= 0:
                assert reported == got, f"step {k}: report says {reported}, customer has {got}"
        if tear is not None:
            assert isinstance(rig.board, SimBoard) and rig.board.torn > 0
    print(f"\n{mode} power cuts: {steps} cut points, report outcomes {outcomes}")
    assert outcomes.get("exact", 0) >= steps * 0.8, outcomes


@pytest.mark.sim_only
def test_firmware_hang_mid_dispense_watchdog_resets_and_reconciles(rig: Rig) -> None:
    assert rig.board is not None
    board = rig.board
    txid, token = rig.token((20, 0, 0, 0))
    errors: list[BaseException] = []

    def run() -> None:
        try:
            rig.client.dispense(token)
        except (LinkError, DeviceReset, CommandFailed) as exc:
            errors.append(exc)

    t = threading.Thread(target=run)
    t.start()
    deadline = time.monotonic() + 5
    while board.mech.stacker < 3 and time.monotonic() < deadline:
        time.sleep(0.005)
    board.hang()  # a deadlock in the middle of picking: nobody feeds the watchdog any more
    t.join(15)
    assert errors, "the dispense cannot complete across a reset"
    deadline = time.monotonic() + 15
    while board.watchdog_resets == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert board.watchdog_resets == 1 and board.power_cuts == 0
    rig.reconnect()
    assert rig.client.counters()["watchdog_resets"] == 1
    rep = rig.client.get_report(txid)
    assert rep.flags & m.REPORT_FLAG_RECOVERED and rep.flags & m.REPORT_FLAG_FINAL
    assert rep.present_status == m.PRESENT_NOT_PRESENTED and rep.presented == 0
    assert rig.client.dispense(token).duplicate  # the host's retry moves nothing
    s = board.mech.snapshot()
    assert s["taken"] == 0 and s["stacker"] == 0 and s["in_path"] == 0
    assert s["reject_bin"] == 200 - s["cassettes"][0]  # every picked note is in the reject bin
    info = rig.client.cassette_info()
    assert info.counts[0] == s["cassettes"][0] and info.reject_bin == s["reject_bin"]
