"""The board's control channel and the host CLI, against the simulated board running the firmware."""

from __future__ import annotations

import pytest
from atm_host import cli
from atm_sim.board import SimBoard
from atm_sim.control import ControlServer, control

from hil_tests.rig import TEST_KEY, Rig


@pytest.mark.sim_only
def test_control_channel_drives_the_mechanics(rig: Rig) -> None:
    assert isinstance(rig.board, SimBoard)  # the control server serves the unix-port sim board
    ctl = ControlServer(rig.board).start()
    try:
        assert control(ctl.port, "state")["state"]["cassettes"] == [200, 200, 200, 200]
        bad = control(ctl.port, "fly")
        assert not bad["ok"] and "unknown op" in bad["error"]
        assert not control(ctl.port, "take", notes="all")["ok"]
        assert ctl.refused == 2
        assert control(ctl.port, "double_pick", cassette=1, count=1)["ok"]
        txid, _, res = rig.dispense((0, 2, 0, 0))
        assert res.stacked == (0, 2, 0, 0)
        assert control(ctl.port, "state")["state"]["reject_bin"] == 2
        rig.client.present(txid)
        reply = control(ctl.port, "take", notes=1)
        assert reply["result"] == 1 and reply["state"]["taken"] == 1
        assert control(ctl.port, "door", on=True)["state"] is not None
        assert rig.client.status().door_open
    finally:
        ctl.stop()


@pytest.mark.sim_only
def test_cli_status_and_dispense(rig: Rig, capsys: pytest.CaptureFixture[str]) -> None:
    assert rig.board is not None
    port = rig.board.port
    rig.client.close()
    assert cli.main(["--port", port, "status"]) == 0
    assert "idle" in capsys.readouterr().out
    assert cli.main(["--port", port, "set-config", "--retract-timeout-ms", "1000"]) == 0
    key = TEST_KEY.hex()
    rc = cli.main(["--port", port, "dispense", "--notes", "1,1,0,0", "--key-hex", key, "--wait", "10"])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "retract" in out.lower()
    assert rig.board.mech.snapshot()["retract_bin"] == 2  # nobody took the notes: retracted, counted
    # A token signed with the wrong key: the CLI reports the device's refusal and exits non-zero.
    assert cli.main(["--port", port, "dispense", "--notes", "1,0,0,0", "--key-hex", "11" * 32]) == 4
    captured = capsys.readouterr()
    assert "invalidTokenHMAC" in captured.err
