"""DispenserClient: the typed, thread-safe request API of the cash dispenser over one serial link."""

from __future__ import annotations

import logging
import struct
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import serial
from atm_wire import PROTOCOL_VERSION
from atm_wire import messages as m

from atm_host.link import results as r
from atm_host.link.errors import (
    CommandFailed,
    CommandRejected,
    DeviceReset,
    HandshakeError,
    LinkClosed,
    LinkError,
    LinkTimeout,
    MalformedMessage,
    PortError,
    ProtocolVersionMismatch,
)
from atm_host.link.events import EventBus, EventCallback, EventSubscription
from atm_host.link.signing import maint_token
from atm_host.link.timeouts import ACK_TIMEOUT_S, command_timeout, dispense_timeout
from atm_host.link.transport import READ_TIMEOUT_S, LinkStats, Port, SerialLink
from atm_host.link.wire import (
    COMMAND_BY_NAME,
    EVENT_BY_CODE,
    Acknowledge,
    CommandSpec,
    Completion,
    Field,
    completion_name,
    decode,
    encode_command,
    pack_args,
)

log = logging.getLogger(__name__)

HANDSHAKE_TIMEOUT_S = 5.0  # SYN/SYNACK + hello; the SYN is retried with the backed-off RTO meanwhile
WRITE_TIMEOUT_S = 2.0  # a write that blocks this long means the port (or the USB CDC host side) is stuck
DISPENSE_TOKEN_SIZE = struct.calcsize(m.DISPENSE_TOKEN_FMT)


@dataclass(frozen=True)
class ClientStats:
    """The host end's counters: the link layer's plus the request layer's."""

    link: LinkStats
    requests: int
    timeouts: int
    rejected: int
    failed: int
    device_resets: int
    malformed: int
    unmatched: int
    events: int
    events_dropped: int


class _Pending:
    """One request waiting for its acknowledge and completion."""

    __slots__ = ("ack", "completion", "error", "req_id", "spec")

    def __init__(self, spec: CommandSpec, req_id: int) -> None:
        self.spec = spec
        self.req_id = req_id
        self.ack: Acknowledge | None = None
        self.completion: Completion | None = None
        self.error: LinkError | None = None


def open_port(url: str, baudrate: int = 115200) -> Port:
    """Open a real port, a pty path, socket://host:port or loop:// with the reader's short timeout."""
    try:
        return serial.serial_for_url(
            url, baudrate=baudrate, timeout=READ_TIMEOUT_S, write_timeout=WRITE_TIMEOUT_S
        )
    except (serial.SerialException, OSError, ValueError) as exc:
        raise PortError(f"cannot open {url}: {exc}") from exc


class DispenserClient:
    """Talks to one dispenser. Every method may be called from any thread; each blocks until done.

    Requests in flight when the device re-synchronises the link (it rebooted) fail with DeviceReset;
    the client then repeats the hello by itself and later requests wait for it to finish.
    """

    def __init__(self, port: Port, *, window: int = 8, ack_timeout_s: float = ACK_TIMEOUT_S) -> None:
        self._cond = threading.Condition()
        self._pending: dict[int, _Pending] = {}
        self._next_id = 0
        self._ack_timeout_s = ack_timeout_s
        self._ready = threading.Event()
        self._hello: r.Hello | None = None
        self._fatal: LinkError | None = None
        self._closed = False
        self._handshaken = False
        self._reset_gen = 0
        self._rehello: threading.Thread | None = None
        self._n = {"requests": 0, "timeouts": 0, "rejected": 0, "failed": 0}
        self._n.update({"device_resets": 0, "malformed": 0, "unmatched": 0, "events": 0})
        self._bus = EventBus()
        self._link = SerialLink(port, self._on_payload, self._on_reset, self._on_error, window)

    @classmethod
    def connect(
        cls,
        url: str,
        baudrate: int = 115200,
        *,
        timeout: float = HANDSHAKE_TIMEOUT_S,
        window: int = 8,
        ack_timeout_s: float = ACK_TIMEOUT_S,
    ) -> DispenserClient:
        """Open `url`, do the SYN handshake and the hello; the result is ready for requests."""
        client = cls(open_port(url, baudrate), window=window, ack_timeout_s=ack_timeout_s)
        try:
            client.handshake(timeout)
        except BaseException:
            client.close()
            raise
        return client

    # ----- handshake ----------------------------------------------------------------------------
    def handshake(self, timeout: float = HANDSHAKE_TIMEOUT_S) -> r.Hello:
        """SYN -> SYNACK, then hello with our protocol version; ProtocolVersionMismatch on a mismatch."""
        deadline = time.monotonic() + timeout
        self._link.handshake(timeout)
        hello = self._hello_until(deadline)
        with self._cond:
            self._handshaken = True
        return hello

    def _hello_until(self, deadline: float) -> r.Hello:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise HandshakeError("no hello from the device in time")
            try:
                return self._do_hello(left)
            except DeviceReset:
                continue  # the device rebooted under us: it has re-synchronised, ask again
            except LinkTimeout as exc:
                raise HandshakeError(f"hello: {exc}") from exc
            except (CommandRejected, CommandFailed, MalformedMessage) as exc:
                raise HandshakeError(f"hello refused: {exc}") from exc

    def _do_hello(self, timeout: float) -> r.Hello:
        data = self._request("hello", pack_args(COMMAND_BY_NAME["hello"], PROTOCOL_VERSION), timeout, False)
        hello = r.parse_hello(data)
        if hello.protocol_version != PROTOCOL_VERSION:
            raise ProtocolVersionMismatch(PROTOCOL_VERSION, hello.protocol_version)
        with self._cond:
            self._hello = hello
            self._ready.set()
        return hello

    @property
    def info(self) -> r.Hello:
        """The device's latest hello (refreshed after every re-handshake)."""
        with self._cond:
            if self._hello is None:
                raise HandshakeError("not connected")
            return self._hello

    def _on_reset(self) -> None:
        """Reader thread: the device sent SYN (it booted, or its watchdog fired)."""
        with self._cond:
            self._reset_gen += 1
            for p in self._pending.values():
                if p.error is None and p.completion is None:
                    p.error = DeviceReset(f"{p.spec.name}: the device reset the link; outcome unknown")
            self._cond.notify_all()
            if not self._handshaken or self._closed:
                return
            self._n["device_resets"] += 1
            self._ready.clear()
            if self._rehello is None:
                self._rehello = threading.Thread(
                    target=self._rehello_loop, name="atm-link-rehello", daemon=True
                )
                self._rehello.start()
        log.warning("device reset the link; repeating the hello")

    def _rehello_loop(self) -> None:
        while True:
            with self._cond:
                if self._closed or self._fatal is not None:
                    self._rehello = None
                    self._ready.set()
                    return
                gen = self._reset_gen
            try:
                self._hello_until(time.monotonic() + HANDSHAKE_TIMEOUT_S)
            except ProtocolVersionMismatch as exc:
                with self._cond:
                    self._fatal = exc
            except LinkError as exc:
                log.warning("re-handshake failed (%s); retrying", exc)
                time.sleep(0.05)
                continue
            with self._cond:
                if gen == self._reset_gen or self._fatal is not None:
                    self._rehello = None
                    self._ready.set()
                    return

    def _on_error(self, error: Exception) -> None:
        """Reader thread: the port failed; every request now fails with that error."""
        fatal = error if isinstance(error, LinkError) else PortError(str(error))
        with self._cond:
            self._fatal = fatal
            for p in self._pending.values():
                p.error = PortError(str(fatal))
            self._cond.notify_all()
            self._ready.set()

    # ----- incoming -----------------------------------------------------------------------------
    def _on_payload(self, payload: bytes) -> None:
        try:
            msg = decode(payload)
        except MalformedMessage as exc:
            with self._cond:
                self._n["malformed"] += 1
            log.warning("dropped a message: %s", exc)
            return
        if isinstance(msg, Acknowledge | Completion):
            with self._cond:
                p = self._pending.get(msg.req_id)
                if p is None:
                    self._n["unmatched"] += 1
                elif msg.command != p.spec.code:
                    p.error = MalformedMessage(f"{p.spec.name}: answer names command 0x{msg.command:02x}")
                elif isinstance(msg, Acknowledge):
                    p.ack = msg
                else:
                    p.completion = msg
                self._cond.notify_all()
            return
        spec = EVENT_BY_CODE[msg.code]
        try:
            event = r.parse_event(spec.name, spec.code, spec.fmt, msg.req_id, msg.data)
        except MalformedMessage as exc:
            with self._cond:
                self._n["malformed"] += 1
            log.warning("dropped an event: %s", exc)
            return
        with self._cond:
            self._n["events"] += 1
        self._bus.publish(event)

    # ----- requests -----------------------------------------------------------------------------
    def _check(self) -> None:
        if self._fatal is not None:
            raise self._fatal
        if self._closed:
            raise LinkClosed("client closed")

    def _request(self, name: str, body: bytes, timeout: float, wait_ready: bool = True) -> bytes:
        spec = COMMAND_BY_NAME[name]
        deadline = time.monotonic() + timeout
        if wait_ready and not self._ready.wait(timeout):
            with self._cond:
                self._check()
            raise LinkTimeout(f"{name}: the device did not finish its re-handshake within {timeout:.1f} s")
        with self._cond:
            self._check()
            self._next_id = self._next_id % 0xFFFF + 1  # 1..65535: 0 marks events no command caused
            req_id = self._next_id
            pending = _Pending(spec, req_id)
            self._pending[req_id] = pending
            self._n["requests"] += 1
        try:
            self._link.send(encode_command(spec, req_id, body), max(0.0, deadline - time.monotonic()))
            completion = self._wait(pending, deadline)
        finally:
            with self._cond:
                self._pending.pop(req_id, None)
        if completion.code != m.SUCCESS:
            with self._cond:
                self._n["failed"] += 1
            raise CommandFailed(name, completion.code, completion_name(completion.code), completion.data)
        return completion.data

    def _wait(self, p: _Pending, deadline: float) -> Completion:
        name = p.spec.name
        with self._cond:
            ack_deadline = min(deadline, time.monotonic() + self._ack_timeout_s)
            while p.ack is None and p.completion is None:
                if p.error is not None:
                    raise p.error
                left = ack_deadline - time.monotonic()
                if left <= 0:
                    self._n["timeouts"] += 1
                    raise LinkTimeout(f"{name}: no acknowledge from the device")
                self._cond.wait(left)
            if p.ack is not None and p.ack.result != m.SUCCESS:
                self._n["rejected"] += 1
                raise CommandRejected(name, p.ack.result, completion_name(p.ack.result))
            while p.completion is None:
                if p.error is not None:
                    raise p.error
                left = deadline - time.monotonic()
                if left <= 0:
                    self._n["timeouts"] += 1
                    raise LinkTimeout(f"{name}: acknowledged but not completed in time; re-query the device")
                self._cond.wait(left)
            return p.completion

    def request(self, name: str, *fields: Field, timeout: float | None = None) -> bytes:
        """Any command by name with its fields; returns the completion data. Typed methods are preferred."""
        spec = COMMAND_BY_NAME[name]
        return self._request(
            name, pack_args(spec, *fields), command_timeout(name) if timeout is None else timeout
        )

    def _call(self, name: str, *fields: Field, timeout: float | None = None) -> tuple[CommandSpec, bytes]:
        return COMMAND_BY_NAME[name], self.request(name, *fields, timeout=timeout)

    # ----- typed commands -----------------------------------------------------------------------
    def hello(self, timeout: float | None = None) -> r.Hello:
        """Ask the hello again (it is done by connect and after every device reset)."""
        return self._do_hello(command_timeout("hello") if timeout is None else timeout)

    def status(self, timeout: float | None = None) -> r.Status:
        spec, data = self._call("status", timeout=timeout)
        return r.parse_status(spec.completion_fmt, data)

    def get_nonce(self, timeout: float | None = None) -> r.Nonce:
        spec, data = self._call("get_nonce", timeout=timeout)
        nonce, lifetime_ms = struct.unpack(spec.completion_fmt, _exact(spec, data))
        return r.Nonce(nonce, lifetime_ms)

    def denominate(self, notes: Sequence[int], timeout: float | None = None) -> int:
        """Check that `notes` (per cassette) can be dispensed; returns the amount they make."""
        spec, data = self._call("denominate", *_notes(notes), timeout=timeout)
        (amount,) = struct.unpack(spec.completion_fmt, _exact(spec, data))
        return int(amount)

    def dispense(self, token: bytes, timeout: float | None = None) -> r.DispenseResult:
        """Dispense against a bank-signed token (atm_wire.auth.sign_dispense) into the stacker.

        Never re-send a dispense after LinkTimeout or DeviceReset: ask get_report(txid) instead.
        """
        spec = COMMAND_BY_NAME["dispense"]
        if len(token) != DISPENSE_TOKEN_SIZE:
            raise ValueError(f"dispense token is {len(token)} bytes, expected {DISPENSE_TOKEN_SIZE}")
        fields = struct.unpack(m.DISPENSE_TOKEN_FMT, token)
        notes = sum(int(n) for n in fields[3:7])
        data = self._request("dispense", token, dispense_timeout(notes) if timeout is None else timeout)
        return r.parse_dispense(spec.completion_fmt, data)

    def present(self, txid: bytes, timeout: float | None = None) -> int:
        """Open the shutter on the stacked notes of `txid`; returns the notes presented."""
        return self._count_result("present", _txid(txid), timeout=timeout)

    def retract(self, txid: bytes, timeout: float | None = None) -> int:
        """Pull presented notes of `txid` back into the retract bin; returns the notes retracted."""
        return self._count_result("retract", _txid(txid), timeout=timeout)

    def reject(self, *, token: bytes, timeout: float | None = None) -> int:
        """Move the stacker's notes to the reject bin; returns how many. Needs a maintenance token
        (signing.maint_token(key, device_id, nonce, "reject"))."""
        return self._count_result("reject", *_maint(token), timeout=timeout)

    def count(self, cassette: int, *, token: bytes, timeout: float | None = None) -> int:
        """Count the notes of one cassette (0-based) by moving them into the reject bin; returns the
        count. Needs a maintenance token for this cassette (maint_token(..., "count", cassette))."""
        return self._count_result("count", cassette, *_maint(token), timeout=timeout)

    def maint_token(self, key: bytes, name: str, *fields: int, timeout: float | None = None) -> bytes:
        """Sign a maintenance command with the device key against a fresh nonce (the engineer's tool:
        the host of a customer ATM never holds the key)."""
        nonce = self.get_nonce(timeout=timeout).nonce
        return maint_token(key, self.info.device_id, nonce, name, *fields)

    def reset(self, timeout: float | None = None) -> int:
        """Home the mechanics; returns the notes cleared from the transport."""
        return self._count_result("reset", timeout=timeout)

    def _count_result(self, name: str, *fields: Field, timeout: float | None) -> int:
        spec, data = self._call(name, *fields, timeout=timeout)
        (n,) = struct.unpack(spec.completion_fmt, _exact(spec, data))
        return int(n)

    def open_shutter(self, *, token: bytes, timeout: float | None = None) -> None:
        """Open the shutter with nothing presented: needs a maintenance token."""
        spec, data = self._call("open_shutter", *_maint(token), timeout=timeout)
        _exact(spec, data)

    def close_shutter(self, timeout: float | None = None) -> None:
        spec, data = self._call("close_shutter", timeout=timeout)
        _exact(spec, data)

    def cassette_info(self, timeout: float | None = None) -> r.CassetteInfo:
        spec, data = self._call("cassette_info", timeout=timeout)
        return r.parse_cassettes(spec.completion_fmt, data, "cassette_info")

    def replenish(self, token: bytes, timeout: float | None = None) -> r.CassetteInfo:
        """Load new cassette contents against a bank-signed token (atm_wire.auth.sign_replenish)."""
        spec = COMMAND_BY_NAME["replenish"]
        data = self._request("replenish", token, command_timeout("replenish") if timeout is None else timeout)
        return r.parse_cassettes(spec.completion_fmt, data, "replenish")

    def get_report(self, txid: bytes, timeout: float | None = None) -> r.Report:
        """The signed present-status report of `txid` (its `raw` bytes go to the bank)."""
        _, data = self._call("get_report", _txid(txid), timeout=timeout)
        return r.parse_report(data)

    def provision(self, key: bytes, timeout: float | None = None) -> None:
        """One-time install of the device's 32-byte HMAC key."""
        if len(key) != m.KEY_LEN:
            raise ValueError(f"key is {len(key)} bytes, expected {m.KEY_LEN}")
        spec, data = self._call("provision", key, timeout=timeout)
        _exact(spec, data)

    def counters(self, timeout: float | None = None) -> dict[str, int]:
        """The device's health counters by name (atm_wire.messages.COUNTER_NAMES)."""
        _, data = self._call("counters", timeout=timeout)
        return r.parse_counters(data)

    def set_config(self, retract_timeout_ms: int, timeout: float | None = None) -> None:
        """Set how long presented notes wait for the customer before they are retracted."""
        spec, data = self._call("set_config", retract_timeout_ms, timeout=timeout)
        _exact(spec, data)

    # ----- events -------------------------------------------------------------------------------
    def subscribe(self, callback: EventCallback) -> Callable[[], None]:
        """Call `callback(event)` for every event, on the event thread; returns the unsubscribe call."""
        return self._bus.subscribe(callback)

    def event_queue(self, maxsize: int = 0) -> EventSubscription:
        """A queue of every event from now on (use `with`, or call close())."""
        return self._bus.queue(maxsize)

    # ----- housekeeping -------------------------------------------------------------------------
    def stats(self) -> ClientStats:
        link = self._link.stats()
        with self._cond:
            n = dict(self._n)
        return ClientStats(link=link, events_dropped=self._bus.dropped, **n)

    def close(self) -> None:
        """Fail what is in flight with LinkClosed, stop the threads and close the port (idempotent)."""
        with self._cond:
            if self._closed:
                return
            self._closed = True
            for p in self._pending.values():
                if p.error is None:
                    p.error = LinkClosed(f"{p.spec.name}: client closed")
            self._cond.notify_all()
            self._ready.set()
        self._link.close()
        self._bus.close()

    def __enter__(self) -> DispenserClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _exact(spec: CommandSpec, data: bytes) -> bytes:
    need = struct.calcsize(spec.completion_fmt)
    if len(data) != need:
        raise MalformedMessage(f"{spec.name}: completion data is {len(data)} bytes, expected {need}")
    return data


def _maint(token: bytes) -> tuple[bytes, bytes, bytes]:
    if len(token) != m.MAINT_TOKEN_LEN:
        raise ValueError(f"maintenance token is {len(token)} bytes, expected {m.MAINT_TOKEN_LEN}")
    return token[: m.ID_LEN], token[m.ID_LEN : m.ID_LEN + m.NONCE_LEN], token[m.ID_LEN + m.NONCE_LEN :]


def _txid(txid: bytes) -> bytes:
    if len(txid) != m.TXID_LEN:
        raise ValueError(f"txid is {len(txid)} bytes, expected {m.TXID_LEN}")
    return txid


def _notes(notes: Sequence[int]) -> tuple[int, int, int, int]:
    if len(notes) != m.N_CASSETTES:
        raise ValueError(f"give {m.N_CASSETTES} note counts, one per cassette (got {len(notes)})")
    a, b, c, d = (int(n) for n in notes)
    return (a, b, c, d)
