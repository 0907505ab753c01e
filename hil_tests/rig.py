"""The test rig: a board (simulated, emulated RP2040, or real at HIL_PORT), a host client, and helpers.

Targets: HIL_TARGET=sim (default: the unix-port MicroPython board), HIL_TARGET=rp2040 (the real rp2
MicroPython on the emulated RP2040), or HIL_PORT=/dev/ttyACM0 for a real board.
"""

from __future__ import annotations

import os
import random
import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import serial
from atm_host.link import DispenserClient, LinkError
from atm_host.link.client import WRITE_TIMEOUT_S, open_port
from atm_host.link.results import DispenseResult
from atm_host.link.signing import sign_dispense, sign_replenish
from atm_host.link.transport import READ_TIMEOUT_S
from atm_sim.board import SimBoard
from atm_sim.rp2040.board import RP2040Board
from atm_wire import messages as m
from atm_wire import names

TEST_KEY = bytes.fromhex(os.environ.get("HIL_KEY", "00112233445566778899aabbccddeeff" * 2))
DENOMS = (100, 50, 20, 10)
LOAD = [200, 200, 200, 200]
HIL_PORT = os.environ.get("HIL_PORT", "")
HIL_TARGET = "real" if HIL_PORT else os.environ.get("HIL_TARGET", "sim")
TARGETS = ("sim", "rp2040")
Board = SimBoard | RP2040Board
# Power-cut modes of the every-step tests: before a flash operation, torn in it (`tear` bytes written,
# the unix-port board's flash only), at a pin write. The emulated chip's flash cut is itself a torn
# one (a program leaves half its bytes, docs/emulator.md), so its "flash" mode is the torn case.
CUT_MODES = ("flash", "pin") if HIL_TARGET == "rp2040" else ("flash", "flash-torn", "pin")
# The target of the test being run (the conftest sets it per test: a test may run on both simulators).
current_target = [HIL_TARGET]


@contextmanager
def chip_time(board: Board | None) -> Iterator[float]:
    """Against the emulated chip, the host link's real-time timer floors scaled by its measured
    slowdown (RP2040Board.host_timers, docs/emulator.md); other targets run in real time."""
    if isinstance(board, RP2040Board):
        with board.host_timers() as scale:
            yield scale
    else:
        yield 1.0


@dataclass
class Rig:
    client: DispenserClient
    board: Board | None
    key: bytes = TEST_KEY
    device_id: bytes = b""
    txids: list[bytes] = field(default_factory=list[bytes])

    def new_txid(self) -> bytes:
        txid = secrets.token_bytes(16)
        self.txids.append(txid)
        return txid

    def token(self, notes: tuple[int, int, int, int], txid: bytes | None = None) -> tuple[bytes, bytes]:
        txid = self.new_txid() if txid is None else txid
        nonce = self.client.get_nonce().nonce
        return txid, sign_dispense(self.key, self.device_id, nonce, txid, notes)

    def dispense(self, notes: tuple[int, int, int, int]) -> tuple[bytes, bytes, DispenseResult]:
        txid, token = self.token(notes)
        return txid, token, self.client.dispense(token)

    def reconnect(self) -> None:
        self.client.close()
        self.client = connect(self.board)


def recover_after_cut(rig: Rig, up_s: float = 20.0, idle_s: float = 10.0) -> None:
    """After a power cut: reconnect once the board answers again, then wait for boot recovery to finish."""
    deadline = time.monotonic() + up_s
    while True:
        try:
            rig.reconnect()
            break
        except LinkError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)  # poll: the board is still booting
    deadline = time.monotonic() + idle_s
    while rig.client.status().state != m.STATE_IDLE:
        assert time.monotonic() < deadline, rig.client.status()
        time.sleep(0.05)  # poll: recovery is moving notes


def connect(board: Board | None) -> DispenserClient:
    url = HIL_PORT if board is None else board.port
    return DispenserClient.connect(url, timeout=10.0 if not isinstance(board, RP2040Board) else 30.0)


def make_board(workdir: Path, seed: int = 1, target: str | None = None) -> Board | None:
    """The board of the current target (None for a real board at HIL_PORT), not yet started."""
    target = current_target[0] if target is None else target
    if target == "real":
        return None
    if target == "rp2040":
        return RP2040Board(workdir=workdir, seed=seed)
    if target != "sim":
        raise ValueError(f"HIL_TARGET must be sim or rp2040, not {target!r}")
    return SimBoard(workdir=workdir, seed=seed)


def provision_and_load(client: DispenserClient, key: bytes, counts: list[int]) -> None:
    info = client.hello()
    if not client.status().provisioned:
        client.provision(key)
    nonce = client.get_nonce().nonce
    client.replenish(sign_replenish(key, info.device_id, nonce, DENOMS, counts))


@contextmanager
def make_rig(tmp: Path, load: list[int] | None = None, seed: int = 1) -> Iterator[Rig]:
    counts = list(LOAD if load is None else load)
    board = make_board(tmp / "board", seed)
    client: DispenserClient | None = None
    rig: Rig | None = None
    try:
        if board is not None:
            board.mech.load(counts)
            board.start()
        client = connect(board)
        provision_and_load(client, TEST_KEY, counts)  # the boot and set-up measure the slowdown
        rig = Rig(client=client, board=board, device_id=client.info.device_id)
        with chip_time(board):
            yield rig
    finally:
        if rig is not None and rig.client is not client:
            rig.client.close()  # a test reconnected
        if client is not None:
            client.close()
        if board is not None:
            board.stop()  # also when the board never answered: no emulator or interpreter is left behind


def random_frames(rng: random.Random, count: int) -> Iterator[bytes]:
    """What a black box might send: random bytes, valid frames with random commands and tokens."""
    from atm_wire import frame

    codes = [e[1] for e in m.COMMANDS]
    for i in range(count):
        kind = i % 3
        if kind == 0:
            yield bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 80)))
        else:
            code = rng.choice(codes) if kind == 1 else names.COMMAND_BY_NAME["dispense"][1]
            body = bytes(rng.getrandbits(8) for _ in range(rng.choice((0, 2, 16, 80, 88))))
            payload = bytes((code, rng.getrandbits(8), rng.getrandbits(8))) + body
            yield frame.encode(rng.getrandbits(8), rng.getrandbits(8), frame.FLAG_DATA, payload[:110])


class ChipLine:
    """A raw port on the emulated chip's line whose write timeout follows the chip's slowdown: a write
    waits for the emulated line to drain (docs/emulator.md, "Host timers against a slow chip")."""

    def __init__(self, board: RP2040Board) -> None:
        self._board = board
        self._port = serial.serial_for_url(
            board.port, 115200, timeout=READ_TIMEOUT_S, write_timeout=WRITE_TIMEOUT_S
        )

    def write(self, data: bytes) -> int | None:
        scaled = WRITE_TIMEOUT_S * self._board.slowdown
        if scaled != self._port.write_timeout:
            self._port.write_timeout = scaled
        return self._port.write(data)

    def read(self, n: int = 1) -> bytes:
        return self._port.read(n)

    def close(self) -> None:
        self._port.close()


def open_raw(board: Board | None):
    """The board's line without a link on it (against the emulated chip: a ChipLine)."""
    if isinstance(board, RP2040Board):
        return ChipLine(board)
    return open_port(HIL_PORT if board is None else board.port)
