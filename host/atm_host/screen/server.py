"""The screen's HTTP server (stdlib, threaded): the kiosk page, state as JSON and SSE, camera JPEG, keypad.

The page only shows snapshots and forwards key presses; every decision stays in the journey.
Bound to loopback by default: the kiosk browser runs on the same Pi.
"""

import json
import logging
import threading
from dataclasses import asdict, dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Protocol

import cv2
import numpy as np

from atm_host.journey.states import Snapshot
from atm_host.vision.frame import Frame

from .page import PAGE

log = logging.getLogger("atm_host.screen")

KEEPALIVE_S = 1.0  # an SSE message at least this often: the countdown moves and dead clients are found
FRAME_WIDTH = 480  # camera guide width in pixels (a JPEG of ~20 KB)
MAX_BODY = 256  # bytes of a key press request


class JourneyView(Protocol):
    """What the screen needs from the journey (atm_host.journey.machine.Journey)."""

    @property
    def snapshot(self) -> Snapshot: ...

    def latest_frame(self) -> Frame | None: ...

    def key(self, key: str) -> None: ...


class ScreenError(Exception):
    """The screen server could not start."""


@dataclass(frozen=True)
class ScreenInfo:
    """What the screen shows besides the journey: which ATM this is, who to call, the note multiple."""

    atm_id: str = ""
    helpline: str = ""
    note_multiple: int = 0  # amounts are multiples of this (the smallest note); 0: not shown


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    @property
    def srv(self) -> "_Server":
        assert isinstance(self.server, _Server)
        return self.server

    def log_message(self, format: str, *args: object) -> None:
        log.debug("%s " + format, self.address_string(), *args)

    def _send(self, status: int, body: bytes, ctype: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        view = self.srv.view
        path = self.path.split("?", 1)[0]
        if path == "/":
            self._send(HTTPStatus.OK, PAGE.encode(), "text/html; charset=utf-8")
        elif path == "/info":
            self._send(HTTPStatus.OK, json.dumps(asdict(self.srv.info)).encode(), "application/json")
        elif path == "/state":
            self._send(HTTPStatus.OK, json.dumps(view.snapshot.as_dict()).encode(), "application/json")
        elif path == "/frame.jpg":
            jpeg = _jpeg(view.latest_frame())
            self._send(HTTPStatus.OK, jpeg, "image/jpeg")
        elif path == "/events":
            self._events()
        else:
            self._send(HTTPStatus.NOT_FOUND, b"not found", "text/plain")

    def do_POST(self) -> None:
        if self.path != "/key":
            self._send(HTTPStatus.NOT_FOUND, b"not found", "text/plain")
            return
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            self._send(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, b"too large", "text/plain")
            return
        try:
            body = json.loads(self.rfile.read(length) or b"{}")
            key = str(body["key"])[:16]
        except (ValueError, KeyError, TypeError):
            self._send(HTTPStatus.BAD_REQUEST, b'expected {"key": ...}', "text/plain")
            return
        self.srv.view.key(key)
        self._send(HTTPStatus.NO_CONTENT, b"", "text/plain")

    def _events(self) -> None:
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-store")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        changed = threading.Event()
        unsubscribe = self.srv.subscribe(changed)
        try:
            while not self.srv.stopping.is_set():
                snap = self.srv.view.snapshot
                data = json.dumps(snap.as_dict(), ensure_ascii=False)
                self.wfile.write(f"id: {snap.seq}\ndata: {data}\n\n".encode())
                self.wfile.flush()
                changed.wait(KEEPALIVE_S)
                changed.clear()
        except (BrokenPipeError, ConnectionResetError):
            pass
        finally:
            unsubscribe()


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, addr: tuple[str, int], view: JourneyView, info: ScreenInfo) -> None:
        super().__init__(addr, _Handler)
        self.view = view
        self.info = info
        self.stopping = threading.Event()
        self._lock = threading.Lock()
        self._waiters: list[threading.Event] = []

    def subscribe(self, ev: threading.Event) -> "_Unsub":
        with self._lock:
            self._waiters.append(ev)
        return _Unsub(self, ev)

    def notify(self) -> None:
        with self._lock:
            for ev in self._waiters:
                ev.set()

    def remove(self, ev: threading.Event) -> None:
        with self._lock:
            if ev in self._waiters:
                self._waiters.remove(ev)


class _Unsub:
    def __init__(self, server: _Server, ev: threading.Event) -> None:
        self.server, self.ev = server, ev

    def __call__(self) -> None:
        self.server.remove(self.ev)


def _jpeg(frame: Frame | None) -> bytes:
    if frame is None:
        frame = np.zeros((270, 480, 3), np.uint8)
    h, w = frame.shape[:2]
    small = cv2.resize(frame, (FRAME_WIDTH, max(1, h * FRAME_WIDTH // w)), interpolation=cv2.INTER_AREA)
    small = cv2.flip(small, 1)  # a mirror: the customer moves the way they see themselves move
    ok, buf = cv2.imencode(".jpg", small, [cv2.IMWRITE_JPEG_QUALITY, 70])
    return bytes(buf) if ok else b""


class ScreenServer:
    """Serves the kiosk page for one journey on host:port (port 0 picks a free one)."""

    def __init__(
        self, view: JourneyView, host: str = "127.0.0.1", port: int = 8080, info: ScreenInfo | None = None
    ) -> None:
        try:
            self._server = _Server((host, port), view, info or ScreenInfo())
        except OSError as exc:
            raise ScreenError(f"screen: cannot listen on {host}:{port}: {exc}") from exc
        self.host, self.port = self._server.server_address[0], int(self._server.server_address[1])
        self._thread = threading.Thread(target=self._server.serve_forever, name="screen", daemon=True)
        self._unsub: list[object] = []
        subscribe = getattr(view, "subscribe", None)
        if callable(subscribe):
            self._unsub.append(subscribe(self._changed))

    def _changed(self, snap: Snapshot) -> None:
        self._server.notify()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/"

    def start(self) -> "ScreenServer":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.stopping.set()
        self._server.notify()
        self._server.shutdown()
        self._server.server_close()
        for unsub in self._unsub:
            if callable(unsub):
                unsub()
