"""Maintenance commands (count, reject, open_shutter) move nothing without a maintenance token."""

from __future__ import annotations

import struct
import time
from pathlib import Path

import pytest
from atm_host import cli
from atm_host.link import CommandFailed
from atm_host.link.signing import maint_token
from atm_wire import messages as m

from hil_tests.rig import Rig


def _moved(rig: Rig) -> int:
    info = rig.client.cassette_info()
    return 800 - sum(info.counts) + info.reject_bin


def test_black_box_count_and_reject_without_token_move_nothing(rig: Rig) -> None:
    c = rig.client
    # The commands as a black box sends them today: `count` with only its cassette byte, `reject` and
    # `open_shutter` bare. They reach the firmware (through the host's own link) and are refused.
    before = c.counters()["malformed_commands"]
    for code, body in ((0x09, b"\x00"), (0x08, b""), (0x0B, b"")):
        c._link.send(struct.pack(m.HDR, code, 0xFFF0) + body, 5.0)  # pyright: ignore[reportPrivateUsage]
    deadline = time.monotonic() + 5
    while c.counters()["malformed_commands"] < before + 3:
        assert time.monotonic() < deadline, c.counters()
        time.sleep(0.05)
    # Tokens it can make: forged with a guessed key, or none at all (no nonce outstanding).
    nonce = c.get_nonce().nonce
    forged = maint_token(b"\x55" * 32, rig.device_id, nonce, "count", 0)
    with pytest.raises(CommandFailed) as exc:
        c.count(0, token=forged)
    assert exc.value.code == m.INVALID_TOKEN_HMAC
    with pytest.raises(CommandFailed) as exc:
        c.count(0, token=forged)  # the nonce is spent
    assert exc.value.code == m.NO_COMMAND_NONCE
    with pytest.raises(CommandFailed) as exc:
        c.open_shutter(token=bytes(m.MAINT_TOKEN_LEN))
    assert exc.value.code == m.INVALID_TOKEN
    assert _moved(rig) == 0
    if rig.board is not None:
        snap = rig.board.mech.snapshot()
        assert snap["cassettes"] == [200, 200, 200, 200] and snap["reject_bin"] == 0
    assert c.status().shutter == m.SHUTTER_CLOSED
    assert c.counters()["invalid_tokens"] >= 2


def test_a_token_is_for_one_command_and_its_arguments(rig: Rig) -> None:
    c = rig.client
    nonce = c.get_nonce().nonce
    for_cassette_1 = maint_token(rig.key, rig.device_id, nonce, "count", 1)
    with pytest.raises(CommandFailed) as exc:
        c.count(0, token=for_cassette_1)  # the MAC covers the cassette byte
    assert exc.value.code == m.INVALID_TOKEN_HMAC
    nonce = c.get_nonce().nonce
    for_reject = maint_token(rig.key, rig.device_id, nonce, "reject")
    with pytest.raises(CommandFailed) as exc:
        c.open_shutter(token=for_reject)  # the MAC covers the command code
    assert exc.value.code == m.INVALID_TOKEN_HMAC
    assert _moved(rig) == 0
    # The engineer's genuine token counts the cassette into the reject bin, counted and journalled.
    assert c.count(3, token=c.maint_token(rig.key, "count", 3)) == 200
    info = c.cassette_info()
    assert info.counts[3] == 0 and info.reject_bin == 200
    assert c.counters()["maint_commands"] == 1


def test_genuine_reject_and_open_shutter(rig: Rig) -> None:
    c = rig.client
    txid, _, res = rig.dispense((2, 0, 0, 0))
    assert res.total_stacked == 2
    assert c.reject(token=c.maint_token(rig.key, "reject")) == 2
    rep = c.get_report(txid)
    assert rep.rejected == 2 and rep.present_status == m.PRESENT_NOT_PRESENTED
    c.open_shutter(token=c.maint_token(rig.key, "open_shutter"))
    assert c.status().shutter == m.SHUTTER_OPEN
    c.close_shutter()  # the safe direction needs no token


def test_host_recovery_commands_stay_open_but_bounded(rig: Rig) -> None:
    """reset (the journey's recovery) and set_config (after every boot) need no token, but set_config
    cannot change the wait while a bundle is presented and reset cannot touch presented notes."""
    c = rig.client
    c.set_config(5000)
    txid, _, _ = rig.dispense((1, 0, 0, 0))
    assert c.present(txid) == 1
    with pytest.raises(CommandFailed) as exc:
        c.set_config(1000)
    assert exc.value.code == m.SEQUENCE_ERROR
    with pytest.raises(CommandFailed) as exc:
        c.reset()
    assert exc.value.code == m.SEQUENCE_ERROR
    c.retract(txid)
    assert c.reset() == 0


@pytest.mark.sim_only
def test_cli_count_with_a_key_file(rig: Rig, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert rig.board is not None
    key_file = tmp_path / "device.key"
    key_file.write_text(rig.key.hex() + "\n")
    key_file.chmod(0o600)
    port = rig.board.port
    rig.client.close()
    assert cli.main(["--port", port, "count", "--cassette", "2", "--key-file", str(key_file)]) == 0
    assert "200" in capsys.readouterr().out
    wrong = tmp_path / "wrong.key"
    wrong.write_text("11" * 32)
    assert cli.main(["--port", port, "count", "--cassette", "1", "--key-file", str(wrong)]) == 4
    assert "invalidTokenHMAC" in capsys.readouterr().err
    assert rig.board.mech.snapshot()["cassettes"] == [200, 200, 0, 200]
