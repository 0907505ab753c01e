"""Delivers the device's events to subscribers: callbacks and queues, from a thread of its own."""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable

from atm_host.link.errors import LinkTimeout
from atm_host.link.results import Event

log = logging.getLogger(__name__)

EventCallback = Callable[[Event], None]


class EventSubscription:
    """A queue of events; use as a context manager so it is removed when done."""

    def __init__(self, bus: EventBus, maxsize: int = 0) -> None:
        self._bus = bus
        self.queue: queue.Queue[Event] = queue.Queue(maxsize)

    def get(self, timeout: float | None = None) -> Event:
        """Next event; LinkTimeout when none arrives in time."""
        try:
            return self.queue.get(timeout=timeout)
        except queue.Empty:
            raise LinkTimeout(f"no event within {timeout} s") from None

    def wait_for(self, names: Iterable[str], txid: bytes | None = None, timeout: float = 10.0) -> Event:
        """First event named in `names` (and for `txid`, when given); others are skipped."""
        wanted = set(names)
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise LinkTimeout(f"none of {sorted(wanted)} within {timeout:.1f} s")
            ev = self.get(left)
            if ev.name in wanted and (txid is None or ev.txid == txid):
                return ev

    def close(self) -> None:
        self._bus.remove_queue(self)

    def __enter__(self) -> EventSubscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class EventBus:
    """Queues events from the reader thread and hands them out in order, never blocking the reader."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._callbacks: list[EventCallback] = []
        self._queues: list[EventSubscription] = []
        self._pending: queue.Queue[Event | None] = queue.Queue()
        self.dropped = 0
        self._thread = threading.Thread(target=self._run, name="atm-link-events", daemon=True)
        self._thread.start()

    def subscribe(self, callback: EventCallback) -> Callable[[], None]:
        """Call `callback(event)` for every event (from the bus thread); returns the unsubscribe call."""
        with self._lock:
            self._callbacks.append(callback)

        def unsubscribe() -> None:
            with self._lock:
                if callback in self._callbacks:
                    self._callbacks.remove(callback)

        return unsubscribe

    def queue(self, maxsize: int = 0) -> EventSubscription:
        sub = EventSubscription(self, maxsize)
        with self._lock:
            self._queues.append(sub)
        return sub

    def remove_queue(self, sub: EventSubscription) -> None:
        with self._lock:
            if sub in self._queues:
                self._queues.remove(sub)

    def publish(self, event: Event) -> None:
        self._pending.put(event)

    def _run(self) -> None:
        while True:
            event = self._pending.get()
            if event is None:
                return
            with self._lock:
                callbacks = list(self._callbacks)
                queues = list(self._queues)
            for sub in queues:
                try:
                    sub.queue.put_nowait(event)
                except queue.Full:
                    self.dropped += 1
            for callback in callbacks:
                try:
                    callback(event)
                except Exception:  # a subscriber's bug must not stop event delivery to the others
                    log.exception("event callback failed on %s", event.name)

    def close(self) -> None:
        self._pending.put(None)
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout=1.0)
