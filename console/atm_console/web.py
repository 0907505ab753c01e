"""The web console: a Starlette app serving the page, a JSON API and a Server-Sent Events stream."""

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, MutableMapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio.to_thread
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from .auth import Session
from .core import Console
from .errors import AuthError, CommandError, NotSignedInError, SessionExpiredError
from .fleet import Json, dumps
from .svg import availability_svg

STATIC = Path(__file__).parent / "static"
COOKIE = "atm_console_session"
QUEUE_BATCHES = 100  # batches a slow browser may lag behind before it is dropped (it reconnects)
KEEPALIVE_S = 15.0
CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class SecurityHeaders:
    """Adds CSP, no-sniff, no-referrer and no-store to every response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers: list[tuple[bytes, bytes]] = list(message.get("headers", []))
                headers += [
                    (b"content-security-policy", CSP.encode()),
                    (b"x-content-type-options", b"nosniff"),
                    (b"referrer-policy", b"no-referrer"),
                    (b"x-frame-options", b"DENY"),
                    (b"cache-control", b"no-store"),
                ]
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)


class Hub:
    """Browsers connected to the stream; one batch per flush interval goes to each."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.clients: set[asyncio.Queue[str | None]] = set()
        self._last_totals = 0.0
        self.batches = 0

    def build(self) -> str | None:
        """The next batch as an SSE message, or None when nothing changed (runs in a worker thread)."""
        items = self.console.take_pending()
        now = time.monotonic()
        due = now - self._last_totals >= 1.0
        if due:  # the rows and the header's availability are computed at the same moment
            self.console.fleet.mark_quiet()
        atms = self.console.fleet.take_dirty()
        totals: Json | None = None
        if due:
            totals = self.console.fleet.totals()
            totals["broker_up"] = self.console.broker_up
            totals["browsers"] = len(self.clients)
            self._last_totals = now
        if not items and not atms and totals is None:
            return None
        batch: dict[str, Any] = {"atms": atms, "totals": totals, "sent_ms": int(time.time() * 1000)}
        for kind, data in items:
            batch.setdefault(kind + "s", []).append(data)
        self.batches += 1
        return f"event: batch\ndata: {dumps(batch)}\n\n"

    def broadcast(self, msg: str | None) -> None:
        for q in list(self.clients):
            try:
                q.put_nowait(msg)
            except asyncio.QueueFull:  # too slow: drop it; its EventSource reconnects with a snapshot
                while not q.empty():
                    q.get_nowait()
                q.put_nowait(None)
                self.clients.discard(q)

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.console.cfg.flush_s)
            msg = await anyio.to_thread.run_sync(self.build)
            if msg is not None:
                self.broadcast(msg)


def create_app(console: Console) -> Starlette:
    """The ASGI app; the lifespan runs the hub's flush loop."""
    hub = Hub(console)
    auth = console.auth

    def session_of(request: Request, touch: bool = True) -> Session:
        return auth.session(request.cookies.get(COOKIE), touch=touch)

    def post_session(request: Request) -> Session:
        if not request.headers.get("content-type", "").startswith("application/json"):
            raise AuthError("JSON body required")
        s = session_of(request)
        auth.check_csrf(s, request.headers.get("x-csrf-token"))
        return s

    def denied(exc: AuthError) -> JSONResponse:
        # 401: sign in (again); 403: signed in, but this request is refused (CSRF, validation).
        signed_out = isinstance(exc, NotSignedInError | SessionExpiredError)
        return JSONResponse({"error": str(exc)}, status_code=401 if signed_out else 403)

    async def json_body(request: Request) -> dict[str, Any]:
        try:
            body = json.loads(await request.body())
        except ValueError:
            return {}
        return body if isinstance(body, dict) else {}  # pyright: ignore[reportUnknownVariableType]

    async def index(request: Request) -> Response:
        try:
            session_of(request)
        except AuthError:
            return RedirectResponse("/login", status_code=303)
        return FileResponse(STATIC / "index.html")

    async def login_page(request: Request) -> Response:
        return FileResponse(STATIC / "login.html")

    async def login(request: Request) -> Response:
        if not request.headers.get("content-type", "").startswith("application/json"):
            return JSONResponse({"error": "JSON body required"}, status_code=415)
        body = await json_body(request)
        username, password = str(body.get("username", ""))[:64], str(body.get("password", ""))
        try:
            token, session = await anyio.to_thread.run_sync(auth.login, username, password)
        except AuthError as exc:
            console.store.audit(username or "-", "login", "console", "refused", str(exc))
            return JSONResponse({"error": str(exc)}, status_code=401)
        console.store.audit(username, "login", "console", "ok")
        resp = JSONResponse({"username": session.username, "csrf": session.csrf})
        resp.set_cookie(
            COOKIE,
            token,
            httponly=True,
            samesite="strict",
            secure=console.cfg.cookie_secure,
            path="/",
            max_age=12 * 3600,
        )
        return resp

    async def logout(request: Request) -> Response:
        try:
            s = post_session(request)
        except AuthError as exc:
            return denied(exc)
        auth.logout(request.cookies.get(COOKIE))
        console.store.audit(s.username, "logout", "console", "ok")
        resp = JSONResponse({"ok": True})
        resp.delete_cookie(COOKIE, path="/")
        return resp

    async def me(request: Request) -> Response:
        try:
            s = session_of(request)
        except AuthError as exc:
            return denied(exc)
        return JSONResponse(
            {"username": s.username, "csrf": s.csrf, "can_command": console.signer is not None}
        )

    async def stream(request: Request) -> Response:
        try:
            session_of(request)
        except AuthError as exc:
            return denied(exc)
        token = request.cookies.get(COOKIE)
        q: asyncio.Queue[str | None] = asyncio.Queue(maxsize=QUEUE_BATCHES)
        hub.clients.add(q)
        snapshot = await anyio.to_thread.run_sync(console.fleet.snapshot)
        snapshot["cmds"] = console.book.recent(limit=50)
        snapshot["totals"]["broker_up"] = console.broker_up

        async def events() -> AsyncIterator[str]:
            try:
                yield f"retry: 2000\nevent: snapshot\ndata: {dumps(snapshot)}\n\n"
                while True:
                    try:
                        msg = await asyncio.wait_for(q.get(), KEEPALIVE_S)
                    except TimeoutError:
                        try:  # an open tab does not keep a session alive: an idle session ends
                            auth.session(token, touch=False)
                        except AuthError:
                            yield "event: logout\ndata: {}\n\n"
                            return
                        yield ": keepalive\n\n"
                        continue
                    if msg is None:
                        return
                    yield msg
            finally:
                hub.clients.discard(q)

        return StreamingResponse(
            events(), media_type="text/event-stream", headers={"x-accel-buffering": "no"}
        )

    async def atm_detail(request: Request) -> Response:
        try:
            session_of(request)
        except AuthError as exc:
            return denied(exc)
        atm_id = request.path_params["atm_id"]
        detail = console.fleet.detail(atm_id)
        if detail is None:
            return JSONResponse({"error": "unknown ATM"}, status_code=404)
        detail["commands"] = console.book.recent(atm_id)
        return JSONResponse(detail)

    async def atm_svg(request: Request) -> Response:
        try:
            session_of(request)
        except AuthError as exc:
            return denied(exc)
        atm_id = request.path_params["atm_id"]
        detail = console.fleet.detail(atm_id)
        if detail is None:
            return Response("unknown ATM", status_code=404)
        svg = availability_svg(detail["availability_series"], f"{atm_id} availability")
        return Response(svg, media_type="image/svg+xml")

    async def fleet_svg(request: Request) -> Response:
        try:
            session_of(request)
        except AuthError as exc:
            return denied(exc)
        series = await anyio.to_thread.run_sync(console.fleet.fleet_series)
        return Response(availability_svg(series, "Fleet availability"), media_type="image/svg+xml")

    async def command(request: Request) -> Response:
        try:
            s = post_session(request)
        except AuthError as exc:
            return denied(exc)
        body = await json_body(request)
        raw = body.get("args", {})
        args: dict[str, Any] = raw if isinstance(raw, dict) else {}  # pyright: ignore[reportUnknownVariableType]
        try:
            sent = await anyio.to_thread.run_sync(
                console.send_command,
                s.username,
                request.path_params["atm_id"],
                str(body.get("action", "")),
                args,
            )
        except CommandError as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        return JSONResponse(sent.as_dict())

    async def ack(request: Request) -> Response:
        try:
            s = post_session(request)
        except AuthError as exc:
            return denied(exc)
        alarm = await anyio.to_thread.run_sync(
            console.acknowledge, s.username, request.path_params["alarm_id"]
        )
        if alarm is None:
            return JSONResponse({"error": "unknown alarm"}, status_code=404)
        return JSONResponse(alarm)

    async def audit(request: Request) -> Response:
        try:
            session_of(request)
        except AuthError as exc:
            return denied(exc)
        rows = console.store.audit_rows(limit=200)
        return JSONResponse([r.as_dict() for r in rows])

    async def stats(request: Request) -> Response:
        try:
            session_of(request)
        except AuthError as exc:
            return denied(exc)
        totals = await anyio.to_thread.run_sync(console.fleet.totals)
        totals["browsers"] = len(hub.clients)
        totals["batches"] = hub.batches
        return JSONResponse(totals)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncGenerator[None]:
        task = asyncio.create_task(hub.run())
        try:
            yield
        finally:
            hub.broadcast(None)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    app = Starlette(
        routes=[
            Route("/", index),
            Route("/login", login_page),
            Route("/api/login", login, methods=["POST"]),
            Route("/api/logout", logout, methods=["POST"]),
            Route("/api/me", me),
            Route("/api/stream", stream),
            Route("/api/stats", stats),
            Route("/api/audit", audit),
            Route("/api/fleet/availability.svg", fleet_svg),
            Route("/api/atm/{atm_id}", atm_detail),
            Route("/api/atm/{atm_id}/availability.svg", atm_svg),
            Route("/api/atm/{atm_id}/command", command, methods=["POST"]),
            Route("/api/alarms/{alarm_id}/ack", ack, methods=["POST"]),
            Mount("/static", StaticFiles(directory=STATIC)),
        ],
        lifespan=lifespan,
    )
    app.add_middleware(SecurityHeaders)  # pyright: ignore[reportArgumentType]
    app.state.hub = hub
    return app
