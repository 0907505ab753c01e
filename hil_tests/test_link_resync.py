"""The host link resynchronises by itself: an injected SYN, or a second program opening the port."""

from __future__ import annotations

import time

import pytest
from atm_host.link import DispenserClient, LinkError

from hil_tests.rig import Rig, open_raw

SYN = bytes.fromhex("07000002f5af7e")  # the 7-byte link reset request of docs/protocol.md


def _works_again(rig: Rig, within_s: float = 10.0) -> int:
    """Status until it answers (a request in flight at the reset may fail once); returns the failures."""
    deadline = time.monotonic() + within_s
    failures = 0
    while True:
        try:
            rig.client.status(timeout=2.0)
            break
        except LinkError:
            failures += 1
            if time.monotonic() > deadline:
                raise
    for _ in range(20):
        assert rig.client.status(timeout=2.0).provisioned
    return failures


def test_injected_syn_frame_does_not_wedge_the_host(rig: Rig) -> None:
    assert rig.client.status().provisioned
    other = open_raw(rig.board)  # another handle on the same line: it writes, it never reads
    try:
        resyncs = rig.client.stats().link.resyncs  # the host's own counters: no request on the line
        other.write(SYN)
        # Not a sleep: the device took the SYN once its SYNACK, which the host never asked for, has made
        # the host resynchronise (so the first case really is a SYN on a quiet line, before any request).
        deadline = time.monotonic() + 10
        while rig.client.stats().link.resyncs == resyncs:
            assert time.monotonic() < deadline, "the host never saw the device's SYNACK"
            time.sleep(0.01)
        _works_again(rig)
        other.write(SYN)  # while requests are in flight this time
        _works_again(rig)
    finally:
        other.close()
    assert rig.client.stats().link.resyncs >= 1
    assert rig.client.cassette_info().counts[0] == 200


@pytest.mark.sim_only
def test_second_opener_does_not_leave_the_host_dead(rig: Rig) -> None:
    assert rig.board is not None
    assert rig.client.status().provisioned
    for _ in range(3):
        try:
            second = DispenserClient.connect(rig.board.port, timeout=2.0)
        except LinkError:
            continue  # the first host may have read the second one's answers: it may fail, fine
        try:
            second.status(timeout=1.0)
        except LinkError:
            pass
        finally:
            second.close()
    _works_again(rig)
