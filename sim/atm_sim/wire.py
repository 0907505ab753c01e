"""A UART wire at a real baud rate between the host's pty and the board: 10 bit times per byte (8N1).

Without it the pty moves bytes as fast as the kernel copies them; with it, link benchmarks measure
what a real 115200 or 921600 baud line would give. Each direction is a virtual wire that is busy
for len(chunk) * 10 / baud seconds; a chunk is delivered when its last bit has arrived.
"""

from __future__ import annotations

import os
import select
import socket
import threading
import time


class PacedWire:
    """Relays bytes between a pty master (host side) and a socket (board side) at `baud`."""

    def __init__(self, host_fd: int, board_sock: socket.socket, baud: int) -> None:
        if baud <= 0:
            raise ValueError("baud must be positive")
        self.baud = baud
        self._host_fd = host_fd
        self._board = board_sock
        self._stop = threading.Event()
        self.bytes_to_board = 0
        self.bytes_to_host = 0
        self._threads = [
            threading.Thread(target=self._pump, args=(True,), daemon=True),
            threading.Thread(target=self._pump, args=(False,), daemon=True),
        ]

    def start(self) -> PacedWire:
        for t in self._threads:
            t.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def _pump(self, to_board: bool) -> None:
        src = self._host_fd if to_board else self._board.fileno()
        free_at = 0.0  # when this direction's wire has sent its last bit
        while not self._stop.is_set():
            ready, _, _ = select.select([src], [], [], 0.05)
            if not ready:
                continue
            try:
                chunk = os.read(src, 256)
            except (BlockingIOError, InterruptedError):
                continue
            except OSError:
                return
            if not chunk:
                return
            now = time.monotonic()
            free_at = max(now, free_at) + len(chunk) * 10 / self.baud
            delay = free_at - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            try:
                if to_board:
                    self._board.sendall(chunk)
                    self.bytes_to_board += len(chunk)
                else:
                    _write_all(self._host_fd, chunk)
                    self.bytes_to_host += len(chunk)
            except OSError:
                return


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            n = os.write(fd, view)
        except BlockingIOError:
            select.select([], [fd], [], 0.05)
            continue
        view = view[n:]
