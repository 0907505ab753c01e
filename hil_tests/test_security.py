"""Black-box and compromised-host attacks: forged, replayed, stale-nonce, wrong-device tokens, noise."""

from __future__ import annotations

import random
import struct
import time
from typing import Any

import pytest
from atm_host.link import CommandFailed
from atm_host.link.signing import sign_dispense
from atm_wire import frame, names
from atm_wire import messages as m

from hil_tests.rig import Rig, open_raw, random_frames


def _notes_moved(rig: Rig) -> int:
    if rig.board is None:
        return 0
    s = rig.board.mech.snapshot()
    return 800 - sum(s["cassettes"])  # type: ignore[arg-type]


def _processed(port: Any, within_s: float = 30.0) -> None:
    """Return once the device has dealt with every byte written to `port` before: it takes its UART in
    order, so a status request sent now (after a SYN: whatever state the bytes left) is answered last."""
    req_id = random.SystemRandom().randrange(1, 0x10000)
    status = names.COMMAND_BY_NAME["status"][1]
    port.write(frame.encode(0, 0, frame.FLAG_SYN))
    port.write(frame.encode(0, 0, frame.FLAG_DATA, struct.pack(m.HDR, status, req_id)))
    answered: list[int] = []
    expect = [0]

    def on_frame(buf: bytearray, length: int) -> None:
        payload = bytes(buf[frame.HEADER : length - frame.TRAILER])
        if not buf[3] & frame.FLAG_DATA:
            return
        if buf[1] == expect[0]:  # acknowledged, or the device's window fills with older answers
            expect[0] = (expect[0] + 1) & 0xFF
        port.write(frame.encode(1, expect[0], 0))
        if len(payload) >= m.HDR_SIZE:
            code, rid = struct.unpack_from(m.HDR, payload, 0)
            if rid == req_id and code in (m.MSG_ACKNOWLEDGE, m.MSG_COMPLETION):
                answered.append(code)

    parser = frame.FrameParser()
    deadline = time.monotonic() + within_s
    while not answered:
        assert time.monotonic() < deadline, "the device never answered the status request behind the frames"
        data = port.read(4096)
        parser.feed(data, len(data), on_frame)


def _fails(rig: Rig, token: bytes, code: int) -> None:
    with pytest.raises(CommandFailed) as exc:
        rig.client.dispense(token)
    assert exc.value.code == code, exc.value


def test_forged_replayed_stale_and_wrong_device_tokens_move_nothing(rig: Rig) -> None:
    txid = rig.new_txid()
    # Forged: signed with a key the bank never gave this device.
    nonce = rig.client.get_nonce().nonce
    _fails(rig, sign_dispense(b"\x42" * 32, rig.device_id, nonce, txid, (5, 0, 0, 0)), m.INVALID_TOKEN_HMAC)
    # Wrong device: a genuine key, but the token names another dispenser.
    nonce = rig.client.get_nonce().nonce
    _fails(rig, sign_dispense(rig.key, b"\x01" * 8, nonce, txid, (5, 0, 0, 0)), m.INVALID_TOKEN)
    # Stale nonce: a nonce that was superseded by a newer one.
    old = rig.client.get_nonce().nonce
    rig.client.get_nonce()
    _fails(rig, sign_dispense(rig.key, rig.device_id, old, txid, (5, 0, 0, 0)), m.INVALID_TOKEN_NONCE)
    # No nonce outstanding at all (the last one was consumed by the attempt above).
    _fails(rig, sign_dispense(rig.key, rig.device_id, old, txid, (5, 0, 0, 0)), m.NO_COMMAND_NONCE)
    assert _notes_moved(rig) == 0
    # A genuine token works once (and clears the run of bad ones); replaying it moves nothing more.
    txid2, token, res = rig.dispense((1, 0, 0, 0))
    assert res.total_stacked == 1
    again = rig.client.dispense(token)
    assert again.duplicate and again.stacked == (1, 0, 0, 0)
    rig.client.reject(token=rig.client.maint_token(rig.key, "reject"))
    # After the transaction, a replay still only returns the recorded outcome.
    assert rig.client.dispense(token).duplicate
    assert _notes_moved(rig) == 1
    # A tampered amount on a genuine token (a compromised host asking for more).
    nonce = rig.client.get_nonce().nonce
    tampered = bytearray(sign_dispense(rig.key, rig.device_id, nonce, txid, (1, 0, 0, 0)))
    tampered[40] = 9  # notes of cassette 0
    _fails(rig, bytes(tampered), m.INVALID_TOKEN_HMAC)
    assert _notes_moved(rig) == 1
    counters = rig.client.counters()
    assert counters["invalid_tokens"] >= 5
    del txid2


def test_fraud_lockout_after_repeated_bad_tokens(rig: Rig) -> None:
    txid = rig.new_txid()
    codes = []
    for _ in range(6):
        nonce = rig.client.get_nonce().nonce
        with pytest.raises(CommandFailed) as exc:
            rig.client.dispense(sign_dispense(b"\x13" * 32, rig.device_id, nonce, txid, (1, 0, 0, 0)))
        codes.append(exc.value.code)
    assert codes[:4] == [m.INVALID_TOKEN_HMAC] * 4 and m.FRAUD_ATTEMPT in codes[4:]
    # Even a genuine token is refused while the lock holds.
    with pytest.raises(CommandFailed) as exc:
        rig.dispense((1, 0, 0, 0))
    assert exc.value.code == m.FRAUD_ATTEMPT
    assert rig.client.status().locked
    assert rig.client.counters()["fraud_attempts"] >= 1
    assert _notes_moved(rig) == 0


@pytest.mark.sim_only
def test_black_box_random_frames_move_no_notes(rig: Rig) -> None:
    """10,000 frames a black box might send, straight onto the dispenser's UART.

    A black box that knows the protocol opens with a SYN and numbers its frames as the link expects
    (a frame out of sequence only makes the device resynchronise): every command reaches the firmware."""
    assert rig.board is not None
    rig.client.close()
    port = open_raw(rig.board)
    rng = random.Random(2026)
    port.write(frame.encode(0, 0, frame.FLAG_SYN))
    seq = 0
    for sent, raw in enumerate(random_frames(rng, 10_000), start=1):
        chunk = raw
        if sent % 500 == 0:
            port.write(frame.encode(0, 0, frame.FLAG_SYN))  # whatever state the noise left: start again
            seq = 0
        if len(raw) >= frame.MIN_FRAME and raw[0] == len(raw) and raw[3] == frame.FLAG_DATA:
            chunk = frame.encode(seq, 0, frame.FLAG_DATA, raw[frame.HEADER : -frame.TRAILER])
            seq = (seq + 1) & 0xFF
        port.write(chunk)
        if sent % 200 == 0:
            time.sleep(0.01)  # let the board drain its UART buffer, as a real line would pace it
            port.read(4096)
    _processed(port)  # a barrier: the device has dealt with all 10,000 frames (not a 0.3 s sleep)
    port.close()
    rig.reconnect()
    assert _notes_moved(rig) == 0
    snap = rig.board.mech.snapshot()
    assert snap["stacker"] == 0 and snap["presenter"] == 0 and snap["reject_bin"] == 0
    c = rig.client.counters()
    # Every attempt is counted somewhere: rejected frames, refused commands or refused tokens.
    assert c["crc_errors"] + c["bytes_dropped"] > 0
    assert c["unknown_commands"] + c["malformed_commands"] + c["invalid_tokens"] > 0
    st = rig.client.status()
    assert st.state in (m.STATE_IDLE, m.STATE_FAULT)


@pytest.mark.sim_only
def test_door_and_tamper_raise_events_and_block_dispensing(rig: Rig) -> None:
    assert rig.board is not None
    with rig.client.event_queue() as events:
        rig.board.mech.door_open = True
        ev = events.wait_for(["tamper"], timeout=5)
        assert ev.fields[0] == 1
        with pytest.raises(CommandFailed) as exc:
            rig.dispense((1, 0, 0, 0))
        assert exc.value.code == m.DOOR_OPEN
        rig.board.mech.door_open = False
        rig.board.mech.tampered = True
        ev = events.wait_for(["tamper"], timeout=5)
        assert ev.fields == (0, 1)
    assert rig.client.status().tamper
    assert _notes_moved(rig) == 0


# ----- lock-out counts every bad attempt (docs/threat-model.md, "Lock-out") ---------------------


def test_wrong_device_id_consumes_the_nonce(rig: Rig) -> None:
    txid = rig.new_txid()
    nonce = rig.client.get_nonce().nonce
    _fails(rig, sign_dispense(rig.key, b"\x01" * 8, nonce, txid, (1, 0, 0, 0)), m.INVALID_TOKEN)
    # The nonce was spent by the refused token: a genuine one against it is refused too.
    _fails(rig, sign_dispense(rig.key, rig.device_id, nonce, txid, (1, 0, 0, 0)), m.NO_COMMAND_NONCE)
    assert _notes_moved(rig) == 0


def test_bad_note_counts_are_checked_after_the_token_and_lock(rig: Rig) -> None:
    txid = rig.new_txid()
    codes = []
    for _ in range(6):
        nonce = rig.client.get_nonce().nonce
        with pytest.raises(CommandFailed) as exc:
            # Forged (wrong key) and asking for nothing: the MAC is checked first, then the counts.
            rig.client.dispense(sign_dispense(b"\x13" * 32, rig.device_id, nonce, txid, (0, 0, 0, 0)))
        codes.append(exc.value.code)
    assert codes[:4] == [m.INVALID_TOKEN_HMAC] * 4 and m.FRAUD_ATTEMPT in codes[4:], codes
    assert rig.client.status().locked
    assert rig.client.counters()["invalid_tokens"] >= 6


def test_genuine_token_with_impossible_counts_spends_its_nonce(rig: Rig) -> None:
    txid = rig.new_txid()
    nonce = rig.client.get_nonce().nonce
    _fails(rig, sign_dispense(rig.key, rig.device_id, nonce, txid, (61, 0, 0, 0)), m.INVALID_DATA)
    _fails(rig, sign_dispense(rig.key, rig.device_id, nonce, txid, (1, 0, 0, 0)), m.NO_COMMAND_NONCE)
    assert rig.client.counters()["invalid_tokens"] >= 2
    assert _notes_moved(rig) == 0


def test_forged_tokens_on_a_finished_txid_count_towards_the_lock(rig: Rig) -> None:
    txid, token, res = rig.dispense((1, 0, 0, 0))
    assert res.total_stacked == 1
    rig.client.reject(token=rig.client.maint_token(rig.key, "reject"))
    codes = []
    for _ in range(6):
        nonce = rig.client.get_nonce().nonce
        with pytest.raises(CommandFailed) as exc:
            rig.client.dispense(sign_dispense(b"\x66" * 32, rig.device_id, nonce, txid, (1, 0, 0, 0)))
        codes.append(exc.value.code)
    assert codes[:4] == [m.INVALID_TOKEN_HMAC] * 4 and m.FRAUD_ATTEMPT in codes[4:], codes
    assert rig.client.status().locked
    assert rig.client.dispense(token).duplicate  # the genuine retry still gets its recorded answer
    assert _notes_moved(rig) == 1
