"""ReconnectingDispenser: a dispenser whose serial port is reopened, with capped backoff, when it is lost."""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import TypeVar

from atm_host.link import results as r
from atm_host.link.client import HANDSHAKE_TIMEOUT_S, DispenserClient
from atm_host.link.errors import HandshakeError, LinkClosed, LinkError, LinkTimeout, PortError
from atm_host.link.events import EventBus, EventCallback, EventSubscription

log = logging.getLogger(__name__)

T = TypeVar("T")
Factory = Callable[[], DispenserClient]

# Errors that mean the port (or the client's reader thread) is gone: the client is dead, open a new one.
LOST: tuple[type[LinkError], ...] = (PortError, LinkClosed)
# Read-only commands the MCU answers at once: several timeouts of these in a row mean a dead link
# (e.g. the reader thread died without failing the port). A money command's timeout never counts.
QUICK = frozenset({"status", "cassette_info", "counters", "get_report", "get_nonce", "set_config"})


class LinkDown(PortError):  # noqa: N818 - named like its siblings (LinkClosed, LinkTimeout)
    """The dispenser's port is gone (unplugged, re-enumerated, I/O error); it is being reopened."""


def serial_factory(url: str, baudrate: int = 115200, handshake_s: float = HANDSHAKE_TIMEOUT_S) -> Factory:
    """A factory opening `url` (use a stable name: /dev/serial/by-id/..., a udev symlink) and handshaking."""

    def open_client() -> DispenserClient:
        return DispenserClient.connect(url, baudrate, timeout=handshake_s)

    return open_client


class ReconnectingDispenser:
    """The journey's Dispenser over a DispenserClient that is replaced whenever its port is lost.

    - A call on a lost link fails at once with a LinkError (LinkDown while reopening); nothing is ever
      retried here, least of all dispense/present/retract: the caller settles those with get_report.
    - A background thread reopens the port through `factory` with capped exponential backoff
      (`first_s` doubling to `max_s`); attempts, reopens and losses are counted (`link_counters()`).
    - Events of every client go to one bus: `event_queue()` subscribers keep receiving across reopens.
    - `info` is the current client's hello (a reflashed MCU shows its new firmware version).
    """

    def __init__(
        self,
        factory: Factory,
        *,
        first_s: float = 0.2,
        max_s: float = 5.0,
        timeouts_to_reopen: int = 3,
        name: str = "dispenser",
    ) -> None:
        if not 0 < first_s <= max_s:
            raise ValueError("backoff must satisfy 0 < first_s <= max_s")
        self._factory = factory
        self.first_s = first_s
        self.max_s = max_s
        self.timeouts_to_reopen = timeouts_to_reopen
        self.name = name
        self._cond = threading.Condition()
        self._client: DispenserClient | None = None
        self._unsubscribe: Callable[[], None] | None = None
        self._hello: r.Hello | None = None
        self._dead: list[DispenserClient] = []
        self._timeouts_in_row = 0
        self._last_error = "not opened yet"
        self._closed = False
        self.delays: deque[float] = deque(maxlen=32)  # the last waits between failed opens (diagnostics)
        self._n = {"opens": 0, "reopen_attempts": 0, "reopens": 0, "link_losses": 0, "open_failures": 0}
        self._bus = EventBus()
        self._thread = threading.Thread(target=self._reopen_loop, name="atm-link-reopen", daemon=True)
        self._thread.start()

    # ----- connection state ---------------------------------------------------------------------
    @property
    def connected(self) -> bool:
        with self._cond:
            return self._client is not None

    def wait_connected(self, timeout_s: float) -> bool:
        """Block until a client is open (True) or `timeout_s` passed (False)."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while self._client is None and not self._closed:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
            return self._client is not None

    def connect(self, timeout_s: float) -> DispenserClient:
        """Wait for the port to open; the current client (for set-up commands outside the protocol)."""
        if not self.wait_connected(timeout_s):
            raise self._down()
        return self.client

    @property
    def client(self) -> DispenserClient:
        """The client open now; LinkDown while the port is being reopened."""
        with self._cond:
            if self._closed:
                raise LinkClosed(f"{self.name}: closed")
            if self._client is None:
                raise self._down()
            return self._client

    def _down(self) -> LinkDown:
        return LinkDown(f"{self.name} link down ({self._last_error}); reopening the port")

    def link_counters(self) -> dict[str, int]:
        """Opens, reopen attempts, reopens, link losses, failed opens, and link_up (0/1)."""
        with self._cond:
            out = dict(self._n)
            out["link_up"] = int(self._client is not None)
            return out

    @property
    def last_error(self) -> str:
        with self._cond:
            return self._last_error

    def lose(self, reason: str = "dropped on request") -> None:
        """Declare the current link lost (a test, or a caller that knows better) and reopen it."""
        with self._cond:
            client = self._client
        if client is not None:
            self._lost(client, reason)

    # ----- the reopen thread --------------------------------------------------------------------
    def _reopen_loop(self) -> None:
        delay = self.first_s
        attempt = 0
        while True:
            with self._cond:
                while self._client is not None and not self._closed and not self._dead:
                    self._cond.wait()
                dead, self._dead = self._dead, []
                closed = self._closed
                waiting = self._client is None
            for old in dead:  # closing may wait for the old threads: never on a caller's thread
                old.close()
            if closed:
                return
            if not waiting:
                continue
            with self._cond:
                reopening = self._n["opens"] > 0
                if reopening:
                    self._n["reopen_attempts"] += 1
            attempt += 1
            try:
                client = self._factory()
            except Exception as exc:  # LinkError, OSError, anything a factory raises: try again later
                with self._cond:
                    self._n["open_failures"] += 1
                    self._last_error = str(exc) or type(exc).__name__
                if attempt & (attempt - 1) == 0:  # attempts 1, 2, 4, 8...: the log stays readable
                    log.warning(
                        "%s: open attempt %d failed: %s; next in %.1f s", self.name, attempt, exc, delay
                    )
                self.delays.append(delay)
                with self._cond:
                    self._cond.wait_for(lambda: self._closed, delay)
                delay = min(delay * 2, self.max_s)
                continue
            self._install(client, reopening)
            attempt = 0
            up_at = time.monotonic()
            with self._cond:
                while self._client is client and not self._closed:
                    self._cond.wait()
                # A link that stayed up a while starts the backoff afresh; a flapping one keeps backing off.
                if time.monotonic() - up_at >= self.max_s:
                    delay = self.first_s

    def _install(self, client: DispenserClient, reopening: bool) -> None:
        unsubscribe = client.subscribe(self._bus.publish)
        try:
            hello = client.info
        except HandshakeError:
            hello = None
        with self._cond:
            if self._closed:
                self._dead.append(client)
                unsubscribe()
                self._cond.notify_all()
                return
            self._client = client
            self._unsubscribe = unsubscribe
            self._hello = hello or self._hello
            self._timeouts_in_row = 0
            self._n["opens"] += 1
            if reopening:
                self._n["reopens"] += 1
            self._cond.notify_all()
        fw = hello.firmware if hello else "?"
        log.warning("%s: link %s (firmware %s)", self.name, "reopened" if reopening else "open", fw)

    def _lost(self, client: DispenserClient, reason: str) -> None:
        with self._cond:
            if self._client is not client:
                return  # already replaced
            self._client = None
            self._n["link_losses"] += 1
            self._last_error = reason
            if self._unsubscribe is not None:
                self._unsubscribe()
                self._unsubscribe = None
            self._dead.append(client)
            self._cond.notify_all()
        log.warning("%s: link lost (%s); reopening", self.name, reason)

    # ----- calls --------------------------------------------------------------------------------
    def _call(self, command: str, fn: Callable[[DispenserClient], T]) -> T:
        client = self.client
        try:
            out = fn(client)
        except LOST as exc:
            self._lost(client, str(exc))
            raise
        except LinkTimeout as exc:
            if command in QUICK and self.timeouts_to_reopen > 0:
                with self._cond:
                    self._timeouts_in_row += 1
                    dead = self._timeouts_in_row >= self.timeouts_to_reopen
                if dead:
                    self._lost(client, f"{self.timeouts_to_reopen} requests unanswered in a row ({exc})")
            raise
        with self._cond:
            self._timeouts_in_row = 0
        return out

    @property
    def info(self) -> r.Hello:
        """The current client's hello; the last one seen while the port is down."""
        with self._cond:
            client, hello = self._client, self._hello
        if client is not None:
            try:
                hello = client.info
            except HandshakeError:
                pass
            else:
                with self._cond:
                    self._hello = hello
        if hello is None:
            raise self._down()
        return hello

    def status(self, timeout: float | None = None) -> r.Status:
        return self._call("status", lambda c: c.status(timeout))

    def cassette_info(self, timeout: float | None = None) -> r.CassetteInfo:
        return self._call("cassette_info", lambda c: c.cassette_info(timeout))

    def get_nonce(self, timeout: float | None = None) -> r.Nonce:
        return self._call("get_nonce", lambda c: c.get_nonce(timeout))

    def dispense(self, token: bytes, timeout: float | None = None) -> r.DispenseResult:
        return self._call("dispense", lambda c: c.dispense(token, timeout))

    def present(self, txid: bytes, timeout: float | None = None) -> int:
        return self._call("present", lambda c: c.present(txid, timeout))

    def retract(self, txid: bytes, timeout: float | None = None) -> int:
        return self._call("retract", lambda c: c.retract(txid, timeout))

    def get_report(self, txid: bytes, timeout: float | None = None) -> r.Report:
        return self._call("get_report", lambda c: c.get_report(txid, timeout))

    def reset(self, timeout: float | None = None) -> int:
        return self._call("reset", lambda c: c.reset(timeout))

    def set_config(self, retract_timeout_ms: int, timeout: float | None = None) -> None:
        self._call("set_config", lambda c: c.set_config(retract_timeout_ms, timeout))

    def counters(self, timeout: float | None = None) -> dict[str, int]:
        return self._call("counters", lambda c: c.counters(timeout))

    # ----- events -------------------------------------------------------------------------------
    def event_queue(self, maxsize: int = 0) -> EventSubscription:
        """A queue of every event from now on, from whichever client is open (use `with`)."""
        return self._bus.queue(maxsize)

    def subscribe(self, callback: EventCallback) -> Callable[[], None]:
        """Call `callback(event)` for every event across reopens; returns the unsubscribe call."""
        return self._bus.subscribe(callback)

    # ----- housekeeping -------------------------------------------------------------------------
    def close(self) -> None:
        """Stop reopening and close the client (idempotent)."""
        with self._cond:
            if self._closed:
                return
            self._closed = True
            client, self._client = self._client, None
            if client is not None:
                self._dead.append(client)
            self._cond.notify_all()
        self._thread.join(timeout=10.0)
        with self._cond:
            dead, self._dead = self._dead, []
        for old in dead:
            old.close()
        self._bus.close()

    def __enter__(self) -> ReconnectingDispenser:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
