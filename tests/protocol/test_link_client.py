"""DispenserClient against a small in-test device built on atm_wire.Link, over socket://."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator

import pytest
from atm_host.link import (
    CommandFailed,
    CommandRejected,
    DeviceReset,
    DispenserClient,
    Event,
    LinkClosed,
    LinkTimeout,
    MalformedMessage,
    ProtocolVersionMismatch,
)
from atm_host.link import signing as auth
from fake_device import DEVICE_ID, KEY, FakeDevice


@pytest.fixture
def device() -> Iterator[FakeDevice]:
    dev = FakeDevice()
    yield dev
    dev.close()


@pytest.fixture
def client(device: FakeDevice) -> Iterator[DispenserClient]:
    c = DispenserClient.connect(device.url, timeout=5)
    yield c
    c.close()


def test_connect_does_the_hello(client: DispenserClient, device: FakeDevice) -> None:
    info = client.info
    assert info.protocol_version == 1
    assert info.firmware == "0.3.1"
    assert info.device_id == DEVICE_ID
    assert info.n_cassettes == 4 and info.retract_timeout_ms == 30000 and info.boot_count == 1
    assert info.max_payload == 118 and info.max_notes == 60  # MAX_PAYLOAD; the presenter capacity
    assert device.received[0][0] == "hello" and device.received[0][2] == b"\x01"


def test_typed_commands(client: DispenserClient) -> None:
    status = client.status()
    assert status.state_name == "idle" and status.provisioned and status.uptime_s == 42
    counters = client.counters()
    assert counters["frames_rx"] == 0 and counters["watchdog_resets"] == 15
    assert len(counters) == len(set(counters.values()))
    n1, n2 = client.get_nonce(), client.get_nonce()
    assert len(n1.nonce) == 16 and n1.nonce != n2.nonce and n1.lifetime_ms == 60000


def test_request_ids_are_distinct(client: DispenserClient, device: FakeDevice) -> None:
    for _ in range(5):
        client.status()
    ids = [rid for _, rid, _ in device.received]
    assert len(set(ids)) == len(ids) and 0 not in ids


def test_dispense_present_events_and_signed_report(client: DispenserClient) -> None:
    seen: list[Event] = []
    unsubscribe = client.subscribe(seen.append)
    txid = os.urandom(16)
    nonce = client.get_nonce().nonce
    token = auth.sign_dispense(KEY, DEVICE_ID, nonce, txid, (5, 0, 1, 0))
    with client.event_queue() as events:
        result = client.dispense(token)
        assert result.txid == txid and result.stacked == (5, 0, 1, 0) and result.total_stacked == 6
        assert client.present(txid) == 6
        taken = events.wait_for(["items_taken", "items_retracted"], txid=txid, timeout=5)
    assert taken.name == "items_taken" and taken.fields == (txid, 6)
    report = client.get_report(txid)
    assert report.presented == 6 and report.stacked == (5, 0, 1, 0) and report.final and report.taken
    assert auth.verify_report(KEY, report.raw)
    assert not auth.verify_report(bytes(32), report.raw)
    deadline = time.monotonic() + 2
    while not seen and time.monotonic() < deadline:
        time.sleep(0.01)
    assert [e.name for e in seen] == ["items_taken"]
    unsubscribe()


def test_stale_nonce_token_fails_typed(client: DispenserClient) -> None:
    token = auth.sign_dispense(KEY, DEVICE_ID, bytes(16), os.urandom(16), (1, 0, 0, 0))
    with pytest.raises(CommandFailed) as info:
        client.dispense(token)
    assert info.value.name == "invalidTokenNonce" and info.value.code == 8


def test_rejected_failed_malformed_and_timeout(client: DispenserClient) -> None:
    with pytest.raises(CommandRejected) as rej:
        client.reject(token=bytes(56))
    assert (rej.value.code, rej.value.name) == (4, "busy")
    with pytest.raises(CommandFailed) as fail:
        client.count(0, token=bytes(56))
    assert fail.value.name == "jammed"
    with pytest.raises(MalformedMessage):
        client.open_shutter(token=bytes(56))
    t0 = time.monotonic()
    with pytest.raises(LinkTimeout):
        client.reset(timeout=0.3)
    assert time.monotonic() - t0 < 2
    assert client.status().state == 0  # still usable afterwards
    stats = client.stats()
    assert stats.rejected == 1 and stats.failed == 1 and stats.timeouts == 1


def test_argument_checks(client: DispenserClient) -> None:
    with pytest.raises(ValueError):
        client.dispense(b"short")
    with pytest.raises(ValueError):
        client.present(b"x")
    with pytest.raises(ValueError):
        client.denominate([1, 2, 3])


def test_device_reboot_fails_in_flight_with_device_reset(client: DispenserClient, device: FakeDevice) -> None:
    errors: list[BaseException] = []

    def hang() -> None:
        try:
            client.reset(timeout=10)
        except BaseException as exc:
            errors.append(exc)

    t = threading.Thread(target=hang)
    t.start()
    deadline = time.monotonic() + 5
    while not any(name == "reset" for name, _, _ in device.received):  # the reset is in flight
        assert time.monotonic() < deadline, "the reset never reached the device"
        time.sleep(0.005)
    device.reboot()
    t.join(timeout=5)
    assert len(errors) == 1 and isinstance(errors[0], DeviceReset)
    assert client.status().uptime_s == 42  # waits for the automatic re-handshake, then works
    assert client.info.boot_count == 2
    assert client.stats().device_resets == 1
    assert [name for name, _, _ in device.received].count("reset") == 1  # never re-sent


def test_protocol_version_mismatch() -> None:
    dev = FakeDevice(protocol_version=2)
    try:
        with pytest.raises(ProtocolVersionMismatch) as info:
            DispenserClient.connect(dev.url, timeout=3)
        assert info.value.device_version == 2
    finally:
        dev.close()


def test_corrupted_link_still_completes_every_command() -> None:
    dev = FakeDevice(corrupt=0.002, seed=7)  # ~0.2% of bytes: a sizable share of frames hit
    try:
        with DispenserClient.connect(dev.url, timeout=5) as c:
            for _ in range(40):
                assert c.status().uptime_s == 42
            assert c.stats().link.crc_errors > 0
    finally:
        dev.close()


def test_close_fails_later_calls(device: FakeDevice) -> None:
    c = DispenserClient.connect(device.url, timeout=5)
    c.close()
    c.close()
    with pytest.raises(LinkClosed):
        c.status()
