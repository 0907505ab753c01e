"""The simulated board's control channel: JSON lines on loopback TCP, so another process (a demo, a
test on another machine's shell, an engineer) can drive the mechanics and the power.

Request: one JSON object per line, {"op": NAME, ...arguments}. Reply: {"ok": true, "state": {...}}
or {"ok": false, "error": "..."}. Unknown operations and malformed lines are refused and counted.
"""

from __future__ import annotations

import json
import socket
import socketserver
import threading
from collections.abc import Callable
from typing import Any, cast

from atm_sim.board import SimBoard


class ControlError(Exception):
    """A control request the board refused."""


def _int(req: dict[str, Any], key: str, default: int | None = None) -> int:
    value = req.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool):
        raise ControlError(f"'{key}' must be an integer")
    return value


def _operations(board: SimBoard) -> dict[str, Callable[[dict[str, Any]], object]]:
    mech = board.mech
    faults = mech.faults

    def load(req: dict[str, Any]) -> object:
        raw: object = req.get("counts")
        counts = cast(list[object], raw) if isinstance(raw, list) else []
        ints = [c for c in counts if isinstance(c, int) and not isinstance(c, bool) and c >= 0]
        if len(counts) != 4 or len(ints) != 4:
            raise ControlError("'counts' must be a list of 4 non-negative integers")
        mech.load(ints)
        return None

    def take(req: dict[str, Any]) -> object:
        notes = req.get("notes")
        return mech.take(None if notes is None else _int(req, "notes"))

    def double_pick(req: dict[str, Any]) -> object:
        faults.double_picks[_int(req, "cassette")] = _int(req, "count", 1)
        return None

    def pick_failure(req: dict[str, Any]) -> object:
        faults.pick_failures[_int(req, "cassette")] = _int(req, "count", 1)
        return None

    def set_flag(name: str) -> Callable[[dict[str, Any]], object]:
        def run(req: dict[str, Any]) -> object:
            value = req.get("on", True)
            if not isinstance(value, bool):
                raise ControlError("'on' must be true or false")
            with mech.lock:
                setattr(mech, name, value)
            return None

        return run

    def jam(req: dict[str, Any]) -> object:
        faults.jam_on_sensor = _int(req, "count", 1)
        return None

    def unplug(req: dict[str, Any]) -> object:
        power = req.get("power_off", False)
        if not isinstance(power, bool):
            raise ControlError("'power_off' must be true or false")
        if board.usb is None:
            raise ControlError("the board was not started with pluggable=True")
        board.unplug(power)
        return {"stable_port": board.stable_port}

    def replug(req: dict[str, Any]) -> object:
        if board.usb is None:
            raise ControlError("the board was not started with pluggable=True")
        return {"port": board.replug(), "stable_port": board.stable_port}

    return {
        "state": lambda req: None,
        "load": load,
        "take": take,
        "double_pick": double_pick,
        "pick_failure": pick_failure,
        "jam": jam,
        "clear_jam": lambda req: mech.clear_jam(),
        "door": set_flag("door_open"),
        "tamper": set_flag("tampered"),
        "power_cut": lambda req: board.power_cut(),
        "power_on": lambda req: board.power_on(),
        "hang": lambda req: board.hang(),
        "unplug": unplug,
        "replug": replug,
    }


class ControlServer:
    """Serves the control channel for one board on 127.0.0.1 (port 0: any free port)."""

    def __init__(self, board: SimBoard, port: int = 0) -> None:
        self.board = board
        self.refused = 0
        ops = _operations(board)
        server_self = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                for raw in self.rfile:
                    reply = server_self.execute(ops, raw)
                    self.wfile.write(json.dumps(reply).encode() + b"\n")

        self._server = socketserver.ThreadingTCPServer(("127.0.0.1", port), Handler)
        self._server.daemon_threads = True
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def execute(self, ops: dict[str, Callable[[dict[str, Any]], object]], raw: bytes) -> dict[str, Any]:
        try:
            req = json.loads(raw)
            if not isinstance(req, dict):
                raise ControlError("a request is a JSON object")
            req_d: dict[str, Any] = dict(req)  # pyright: ignore[reportUnknownArgumentType]
            op = req_d.get("op")
            if not isinstance(op, str) or op not in ops:
                raise ControlError(f"unknown op {op!r}; known: {sorted(ops)}")
            result = ops[op](req_d)
        except (ValueError, ControlError, IndexError, KeyError) as exc:
            self.refused += 1
            return {"ok": False, "error": str(exc)}
        reply: dict[str, Any] = {"ok": True, "state": self.board.mech.snapshot()}
        if result is not None:
            reply["result"] = result
        return reply

    def start(self) -> ControlServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def control(port: int, op: str, **args: object) -> dict[str, Any]:
    """Send one request to a board's control channel and return the reply."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(json.dumps({"op": op, **args}).encode() + b"\n")
        data = b""
        while not data.endswith(b"\n"):
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    reply: dict[str, Any] = json.loads(data)
    return reply
