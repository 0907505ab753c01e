"""ReconnectingDispenser against a fake factory whose clients fail the way a serial port does.

The fake port answers like DispenserClient over a real port: opening a path that is not there fails
with PortError(ENOENT) (pyserial's SerialException wrapped by open_port), a pulled cable fails the
call in flight and every later one with PortError(EIO), a dead reader thread shows as timeouts.
"""

from __future__ import annotations

import errno
import os
import threading
import time
from collections.abc import Callable, Iterator
from typing import cast

import pytest
from atm_host.journey.ports import Dispenser, LinkCounters
from atm_host.link import results as r
from atm_host.link.client import DispenserClient
from atm_host.link.errors import LinkClosed, LinkError, LinkTimeout, PortError
from atm_host.link.events import EventCallback
from atm_host.link.reconnect import LinkDown, ReconnectingDispenser
from atm_wire import PROTOCOL_VERSION, names
from atm_wire import messages as m

WAIT_S = 10.0


def hello(firmware: tuple[int, int, int] = (1, 0, 0), boot: int = 1) -> r.Hello:
    return r.Hello(PROTOCOL_VERSION, firmware, b"\x01" * 8, 0, boot, 4, 118, 30000, 60)


class Port:
    """The physical port: present or not, and the device behind it (its firmware)."""

    def __init__(self) -> None:
        self.present = True
        self.firmware: tuple[int, int, int] = (1, 0, 0)
        self.boot = 1
        self.opens = 0
        self.open_failures = 0
        self.clients: list[FakeClient] = []
        self.lock = threading.Lock()

    def open(self) -> DispenserClient:
        with self.lock:
            if not self.present:
                self.open_failures += 1
                err = OSError(errno.ENOENT, os.strerror(errno.ENOENT), "/dev/atm-dispenser")
                raise PortError(f"cannot open /dev/atm-dispenser: {err}") from err
            self.opens += 1
            client = FakeClient(self, hello(self.firmware, self.boot))
            self.clients.append(client)
        return cast(DispenserClient, client)

    def unplug(self) -> None:
        with self.lock:
            self.present = False
            for c in self.clients:
                c.dead = True


class FakeClient:
    """A DispenserClient whose port can die under it (EIO) or whose reader thread can stop."""

    def __init__(self, port: Port, hello: r.Hello) -> None:
        self.port = port
        self._hello = hello
        self.dead = False
        self.deaf = False  # the reader thread died: requests go out, answers never come back
        self.closed = False
        self.calls: list[str] = []
        self.callbacks: list[EventCallback] = []

    @property
    def info(self) -> r.Hello:
        return self._hello

    def _do(self, name: str) -> None:
        self.calls.append(name)
        if self.closed:
            raise LinkClosed("client closed")
        if self.dead:
            raise PortError(f"read failed: {OSError(errno.EIO, os.strerror(errno.EIO))}")
        if self.deaf:
            raise LinkTimeout(f"{name}: no acknowledge from the device")

    def status(self, timeout: float | None = None) -> r.Status:
        self._do("status")
        return r.Status(m.STATE_IDLE, 0, 0, 0, m.STATUS_FLAG_PROVISIONED, 0, 0, 1)

    def cassette_info(self, timeout: float | None = None) -> r.CassetteInfo:
        self._do("cassette_info")
        return r.CassetteInfo((100, 50, 20, 10), (1, 2, 3, 4), (0, 0, 0, 0), 0, 0)

    def get_nonce(self, timeout: float | None = None) -> r.Nonce:
        self._do("get_nonce")
        return r.Nonce(bytes(16), 180000)

    def dispense(self, token: bytes, timeout: float | None = None) -> r.DispenseResult:
        self._do("dispense")
        return r.DispenseResult(bytes(16), (1, 0, 0, 0), (0, 0, 0, 0), 0)

    def present(self, txid: bytes, timeout: float | None = None) -> int:
        self._do("present")
        return 1

    def retract(self, txid: bytes, timeout: float | None = None) -> int:
        self._do("retract")
        return 1

    def get_report(self, txid: bytes, timeout: float | None = None) -> r.Report:
        self._do("get_report")
        raise AssertionError("not used")

    def reset(self, timeout: float | None = None) -> int:
        self._do("reset")
        return 0

    def set_config(self, retract_timeout_ms: int, timeout: float | None = None) -> None:
        self._do("set_config")

    def counters(self, timeout: float | None = None) -> dict[str, int]:
        self._do("counters")
        return {}

    def subscribe(self, callback: EventCallback) -> Callable[[], None]:
        self.callbacks.append(callback)
        return lambda: self.callbacks.remove(callback) if callback in self.callbacks else None

    def emit(self, name: str) -> None:
        code = names.EVENT_BY_NAME[name][1]
        for cb in list(self.callbacks):
            cb(r.Event(name, code, 0, (bytes(16), 1), b""))

    def close(self) -> None:
        self.closed = True


@pytest.fixture
def port() -> Port:
    return Port()


@pytest.fixture
def make(port: Port) -> Iterator[Callable[..., ReconnectingDispenser]]:
    made: list[ReconnectingDispenser] = []

    def build(
        first_s: float = 0.01, max_s: float = 0.04, timeouts_to_reopen: int = 3
    ) -> ReconnectingDispenser:
        d = ReconnectingDispenser(
            port.open, first_s=first_s, max_s=max_s, timeouts_to_reopen=timeouts_to_reopen
        )
        made.append(d)
        return d

    yield build
    for d in made:
        d.close()


def current(port: Port) -> FakeClient:
    return port.clients[-1]


def wait_for(cond: Callable[[], bool]) -> None:
    deadline = time.monotonic() + WAIT_S
    while not cond():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.005)


def test_it_is_the_journeys_dispenser_and_counts_for_telemetry(
    make: Callable[..., ReconnectingDispenser],
) -> None:
    d = make()
    as_port: Dispenser = d  # checked statically: the journey can drive it
    assert isinstance(as_port, LinkCounters)


def test_open_fails_with_enoent_for_a_while_then_succeeds(
    make: Callable[..., ReconnectingDispenser], port: Port
) -> None:
    port.present = False
    d = make()
    wait_for(lambda: port.open_failures >= 3)
    with pytest.raises(LinkDown, match="No such file"):
        d.status()  # fails at once with the link's own error type, naming the cause
    assert isinstance(LinkDown("x"), PortError)
    port.present = True
    assert d.wait_connected(WAIT_S)
    assert d.status().state == m.STATE_IDLE
    n = d.link_counters()
    assert n["opens"] == 1 and n["reopens"] == 0 and n["open_failures"] >= 3 and n["link_up"] == 1


def test_backoff_doubles_and_is_capped(make: Callable[..., ReconnectingDispenser], port: Port) -> None:
    port.present = False
    d = make(first_s=0.005, max_s=0.02)
    wait_for(lambda: len(d.delays) >= 5)
    assert list(d.delays)[:5] == [0.005, 0.01, 0.02, 0.02, 0.02]
    with pytest.raises(ValueError):
        ReconnectingDispenser(port.open, first_s=1.0, max_s=0.5)  # type: ignore[arg-type]


def test_eio_mid_call_fails_fast_then_the_port_is_reopened(
    make: Callable[..., ReconnectingDispenser], port: Port
) -> None:
    d = make()
    assert d.wait_connected(WAIT_S)
    first = current(port)
    port.unplug()
    with pytest.raises(PortError, match="Input/output error"):
        d.status()
    for _ in range(5):  # every later call fails at once while the port is gone
        with pytest.raises(LinkDown):
            d.cassette_info()
    wait_for(lambda: first.closed)  # the dead client is closed (on the reopen thread)
    wait_for(lambda: port.open_failures >= 2)
    port.present = True
    assert d.wait_connected(WAIT_S)
    assert d.status().state == m.STATE_IDLE and current(port) is not first
    n = d.link_counters()
    assert n["link_losses"] == 1 and n["reopens"] == 1 and n["reopen_attempts"] >= 3


@pytest.mark.parametrize("command", ["dispense", "present", "retract"])
def test_money_commands_are_never_retried(
    make: Callable[..., ReconnectingDispenser], port: Port, command: str
) -> None:
    d = make()
    assert d.wait_connected(WAIT_S)
    first = current(port)
    port.unplug()
    call: dict[str, Callable[[], object]] = {
        "dispense": lambda: d.dispense(bytes(80)),
        "present": lambda: d.present(bytes(16)),
        "retract": lambda: d.retract(bytes(16)),
    }
    with pytest.raises(PortError):
        call[command]()
    port.present = True
    assert d.wait_connected(WAIT_S)
    d.status()
    assert first.calls == [command]
    assert command not in current(port).calls  # the caller settles it with get_report, not a resend


def test_event_subscribers_keep_receiving_across_a_reopen(
    make: Callable[..., ReconnectingDispenser], port: Port
) -> None:
    d = make()
    assert d.wait_connected(WAIT_S)
    got: list[str] = []
    d.subscribe(lambda ev: got.append(ev.name))
    with d.event_queue() as events:
        current(port).emit("items_presented")
        assert events.get(WAIT_S).name == "items_presented"
        port.unplug()
        with pytest.raises(PortError):
            d.status()
        port.present = True
        assert d.wait_connected(WAIT_S)
        current(port).emit("items_taken")
        assert events.wait_for(["items_taken"], timeout=WAIT_S).name == "items_taken"
    wait_for(lambda: got == ["items_presented", "items_taken"])
    assert port.clients[0].callbacks == []  # unsubscribed from the dead client


def test_info_is_the_new_hello_after_a_reflash(
    make: Callable[..., ReconnectingDispenser], port: Port
) -> None:
    d = make()
    assert d.wait_connected(WAIT_S)
    assert d.info.firmware == "1.0.0"
    port.unplug()
    with pytest.raises(PortError):
        d.status()
    assert d.info.firmware == "1.0.0"  # the last hello while the port is down
    port.firmware, port.boot = (1, 1, 0), 2
    port.present = True
    assert d.wait_connected(WAIT_S)
    assert d.info.firmware == "1.1.0" and d.info.boot_count == 2


def test_a_dead_reader_thread_is_detected_by_repeated_timeouts(
    make: Callable[..., ReconnectingDispenser], port: Port
) -> None:
    d = make(timeouts_to_reopen=3)
    assert d.wait_connected(WAIT_S)
    first = current(port)
    first.deaf = True
    for _ in range(5):  # a money command timing out proves nothing about the link: not counted
        with pytest.raises(LinkTimeout):
            d.dispense(bytes(80))
    assert d.link_counters()["link_losses"] == 0
    for _ in range(3):
        with pytest.raises(LinkTimeout):
            d.status()
    wait_for(lambda: current(port) is not first and d.connected)
    assert d.status().state == m.STATE_IDLE and d.link_counters()["link_losses"] == 1


def test_one_answer_resets_the_timeout_count(make: Callable[..., ReconnectingDispenser], port: Port) -> None:
    d = make(timeouts_to_reopen=3)
    assert d.wait_connected(WAIT_S)
    c = current(port)
    for _ in range(4):
        c.deaf = True
        for _ in range(2):
            with pytest.raises(LinkTimeout):
                d.counters()
        c.deaf = False
        d.status()
    assert d.link_counters()["link_losses"] == 0 and current(port) is c


def test_close_stops_reopening_and_fails_calls(
    make: Callable[..., ReconnectingDispenser], port: Port
) -> None:
    port.present = False
    d = make()
    wait_for(lambda: port.open_failures >= 1)
    d.close()
    with pytest.raises(LinkClosed):
        d.status()
    failures = port.open_failures
    port.present = True
    assert not d.wait_connected(0.3)  # waits on the link's condition: nothing reopens a closed link
    assert port.open_failures == failures and port.opens == 0
    d.close()  # idempotent


def test_lose_forces_a_reopen(make: Callable[..., ReconnectingDispenser], port: Port) -> None:
    d = make()
    c = d.connect(WAIT_S)
    d.lose("operator asked")
    wait_for(lambda: d.connected and current(port) is not cast(FakeClient, c))
    assert d.link_counters()["reopens"] == 1


def test_any_factory_error_is_retried(make: Callable[..., ReconnectingDispenser]) -> None:
    """A factory may raise what pyserial raises (OSError, SerialException, a handshake error)."""
    errors: list[Exception] = [OSError(errno.ENXIO, "No such device or address"), LinkError("no SYNACK")]
    good = Port()

    def factory() -> DispenserClient:
        if errors:
            raise errors.pop(0)
        return good.open()

    d = ReconnectingDispenser(factory, first_s=0.005, max_s=0.01)
    try:
        assert d.wait_connected(WAIT_S)
        assert d.link_counters()["open_failures"] == 2
    finally:
        d.close()
