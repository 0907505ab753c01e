"""The simulated board: the real firmware in a real MicroPython, wired to the mechanics model.

- Flash: a littlefs image file (848 KiB, like a Pico) that survives restarts; `flash()` formats it and
  copies the firmware into it, compiled with mpy-cross, as `mpremote cp` would.
- UART0: a pty. The interpreter gets the master end; the host opens the slave path with pyserial.
  The pty outlives the interpreter, so the host's port stays open across power cuts.
- Pluggable (`pluggable=True`): the UART goes through a simulated USB-serial adapter instead, so the
  port can be pulled out: `unplug()` closes the pty (the host sees EIO, the /dev/pts path disappears)
  while the firmware keeps running (or loses power with it: `unplug(power_off=True)`); `replug()` makes
  a new pty, at a new path, and re-points `stable_port`, a symlink like udev's /dev/serial/by-id names.
- Pins and ADC: a TCP "board bus" on loopback, served here from the mechanics model.
- Watchdog: kept here, outside the interpreter. A missed feed kills the process and restarts it with
  reset cause WDT_RESET; the flash image survives.
- Flash: the image file is the storage region of firmware/layout.py. littlefs (code only) sits in its
  first RAW_FIRST_BLOCK blocks; the journal's raw region is the rest, reached through a simulated
  rp2.Flash with NOR rules (mp/rp2.py): erase to 0xFF, program = AND, whole 256-byte pages.
- Power cuts: at any instant a test chooses, including exactly at the k-th pin write or the k-th
  flash erase or page program from now (the points where the firmware's state changes), before the
  operation or torn in its middle (`tear`: bytes written before the power fails).
"""

from __future__ import annotations

import os
import pty
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import termios
import threading
import time
import tty
from collections.abc import Callable
from pathlib import Path

from atm_sim.mechanics import Mechanics
from atm_sim.wire import PacedWire

REPO = Path(__file__).resolve().parents[2]
FIRMWARE_DIR = REPO / "firmware"
WIRE_DIR = REPO / "protocol" / "atm_wire"
MP_DIR = Path(__file__).resolve().parent / "mp"

OP_WRITE, OP_READ, OP_ADC = 0x57, 0x52, 0x41
OP_WDT_START, OP_WDT_FEED, OP_FLASH, OP_RESET_CAUSE, OP_TORN = 0x53, 0x44, 0x46, 0x43, 0x54
FLASH_FS, FLASH_PROGRAM, FLASH_ERASE = 0, 1, 2  # OP_FLASH's pin byte: what is about to be written
PWRON_RESET, WDT_RESET = 1, 3


class SimError(Exception):
    """The simulated board could not be built or started."""


def _raw_pty() -> tuple[int, int]:
    """A raw pty pair (no echo, no line discipline) with a non-blocking master."""
    master, slave = pty.openpty()
    tty.setraw(master)
    tty.setraw(slave)
    attrs = termios.tcgetattr(slave)
    attrs[3] &= ~termios.ECHO
    termios.tcsetattr(slave, termios.TCSANOW, attrs)
    os.set_blocking(master, False)
    return master, slave


class UsbSerialAdapter:
    """The USB-serial adapter between the board's UART (a socket) and the host (a pty), pluggable.

    Plugged: bytes are relayed both ways. Unplugged: there is no pty (the host's open port fails with
    EIO and its path is gone) and what the board transmits is lost, as on a real unplugged cable.
    `link` is the stable name (a symlink re-pointed at every plug, like udev's /dev/serial/by-id).
    """

    def __init__(self, board_side: socket.socket, link: Path) -> None:
        self._board = board_side
        self._board.setblocking(False)
        self.link = link
        self._master = -1
        self._slave = -1
        self.port = ""
        self.plugs = 0
        self.unplugs = 0
        self.bytes_lost = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._start_pump()

    @property
    def plugged(self) -> bool:
        return self._master >= 0

    def _start_pump(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._pump, args=(self._master, self._stop), name="usb-adapter", daemon=True
        )
        self._thread.start()

    def _stop_pump(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
        self._thread = None

    def plug(self) -> str:
        """Plug the cable in: a new pty (a new path), the stable link pointed at it; returns the path."""
        with self._lock:
            if self.plugged:
                return self.port
            self._stop_pump()
            self._master, self._slave = _raw_pty()
            self.port = os.ttyname(self._slave)
            tmp = self.link.with_name(self.link.name + ".new")
            tmp.unlink(missing_ok=True)
            tmp.symlink_to(self.port)
            tmp.replace(self.link)  # atomic: the name never points at nothing while plugged
            self.plugs += 1
            self._start_pump()
            return self.port

    def unplug(self) -> None:
        """Pull the cable: the pty is closed (host side: EIO, path gone) and the stable link removed."""
        with self._lock:
            if not self.plugged:
                return
            self._stop_pump()  # before closing: the pump must not touch a reused fd number
            self.link.unlink(missing_ok=True)
            for fd in (self._master, self._slave):
                try:
                    os.close(fd)
                except OSError:
                    pass
            self._master = self._slave = -1
            self.port = ""
            self.unplugs += 1
            self._start_pump()  # keeps draining the board's transmissions into nothing

    def close(self) -> None:
        self.unplug()
        with self._lock:
            self._stop_pump()

    def _pump(self, master: int, stop: threading.Event) -> None:
        board = self._board.fileno()
        while not stop.is_set():
            fds = [board] if master < 0 else [board, master]
            try:
                ready, _, _ = select.select(fds, [], [], 0.05)
            except (OSError, ValueError):
                return
            for fd in ready:
                try:
                    chunk = os.read(fd, 4096)
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError:
                    return
                if not chunk:
                    return
                if fd == board and master < 0:
                    self.bytes_lost += len(chunk)
                    continue
                try:
                    _write_all(master if fd == board else board, chunk, stop)
                except OSError:
                    return


def _write_all(fd: int, data: bytes, stop: threading.Event) -> None:
    view = memoryview(data)
    while view and not stop.is_set():
        try:
            n = os.write(fd, view)
        except BlockingIOError:
            select.select([], [fd], [], 0.05)
            continue
        view = view[n:]


def _tool(name: str) -> str:
    local = Path(sys.executable).parent / name
    if local.exists():
        return str(local)
    found = shutil.which(name)
    if found is None:
        raise SimError(f"{name} not found: run ./atm setup (it installs the pinned MicroPython tools)")
    return found


def flash_layout() -> dict[str, int]:
    """The const() values of firmware/layout.py; SimError if mp/flashdev.py disagrees with them."""
    values: dict[str, int] = {}
    for line in (FIRMWARE_DIR / "layout.py").read_text().splitlines():
        name, _, rest = line.partition(" = const(")
        if rest:
            values[name.strip()] = int(rest.split(")")[0], 0)
    dev = (MP_DIR / "flashdev.py").read_text()
    pairs = (("FS_BLOCKS", "FS_BLOCKS"), ("BLOCK_COUNT", "RAW_FIRST_BLOCK"), ("BLOCK_SIZE", "BLOCK_SIZE"))
    for name, key in pairs:
        if f"{name} = {values[key]}" not in dev:
            raise SimError(f"sim/atm_sim/mp/flashdev.py {name} disagrees with firmware/layout.py {key}")
    return values


def build_image_tree(dest: Path, compile_mpy: bool = True) -> Path:
    """Stage the board image (firmware/manifest.py: main.py, modules as .mpy, lib/atm_wire) for this
    board: the same builder and tree as the RP2040's (atm_tools.image), compiled for x64 here."""
    from atm_tools import image

    try:
        return image.build_tree(dest, march="x64", compile_mpy=compile_mpy)
    except image.ImageError as exc:
        raise SimError(str(exc)) from exc


class SimBoard:
    """One simulated dispenser board. Use as a context manager, or call start() and stop()."""

    def __init__(
        self,
        workdir: Path | None = None,
        unique_id: str = "e66038b7134f2a2f",
        heap: str = "192K",
        auto_restart: bool = True,
        seed: int = 1,
        baud: int | None = None,
        pluggable: bool = False,
    ) -> None:
        self._own_dir = workdir is None
        self.workdir = Path(tempfile.mkdtemp(prefix="atm-sim-")) if workdir is None else workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.image = self.workdir / "flash.img"
        self.unique_id = unique_id
        self.heap = heap
        self.auto_restart = auto_restart
        self.mech = Mechanics(seed)
        self.log_path = self.workdir / "firmware.log"
        self._proc: subprocess.Popen[bytes] | None = None
        self._master = -1
        self._slave = -1
        self.baud = baud  # None: the pty's own speed; else a PacedWire at this baud rate
        self.wire: PacedWire | None = None
        self._board_end: socket.socket | None = None  # the firmware's UART end, when paced or pluggable
        self.port = ""
        self.pluggable = pluggable
        self.usb: UsbSerialAdapter | None = None
        self._mid: tuple[socket.socket, socket.socket] | None = None  # paced wire <-> adapter, when both
        self._unplug_kind = ""
        self._unplug_left = 0
        self._unplug_power = False
        self._unplugged_power = False
        self._server: socket.socket | None = None
        self._stop = threading.Event()
        self._lock = threading.RLock()
        self._wdt_timeout = 0.0
        self._wdt_last = 0.0
        self._reset_cause = PWRON_RESET
        self._cut_kind = ""
        self._cut_left = 0
        self._cut_hook: Callable[[], None] | None = None
        self._cut_tear: int | None = None
        self.flash_programs = 0
        self.flash_erases = 0
        self.torn = 0
        self.flash_writes = 0
        self.pin_writes = 0
        self.boots = 0
        self.watchdog_resets = 0
        self.power_cuts = 0
        self._threads: list[threading.Thread] = []

    # ----- set-up ----------------------------------------------------------------------------------
    def flash(self, fmt: bool = False) -> None:
        """Copy the firmware into the flash image (format first when asked or when it is new)."""
        tree = build_image_tree(self.workdir / "image-tree")
        args = [_tool("micropython"), str(MP_DIR / "flashtool.py"), str(self.image), str(tree)]
        lay = flash_layout()
        size = lay["FS_BLOCKS"] * lay["BLOCK_SIZE"]
        if fmt or not self.image.exists() or self.image.stat().st_size != size:
            args.append("--format")  # new, or an image of another layout
        res = subprocess.run(args, check=False, capture_output=True, text=True, cwd=MP_DIR)
        if res.returncode != 0:
            raise SimError(f"flashing failed: {res.stdout}{res.stderr}")

    @property
    def stable_port(self) -> str:
        """The port's stable name (a symlink, like /dev/serial/by-id/...): what a reopening host opens."""
        if self.usb is None:
            return self.port
        return str(self.usb.link)

    def _open_pty(self) -> None:
        if self.pluggable:
            self._open_usb()
            return
        master, slave = _raw_pty()
        self._master, self._slave = master, slave
        self.port = os.ttyname(slave)
        if self.baud is not None:
            board_end, relay_end = socket.socketpair()
            board_end.setblocking(False)
            self._board_end = board_end
            self.wire = PacedWire(master, relay_end, self.baud).start()

    def _open_usb(self) -> None:
        """Board UART -> (paced wire) -> USB-serial adapter -> pty: the adapter can be unplugged."""
        board_end, relay_end = socket.socketpair()
        board_end.setblocking(False)
        self._board_end = board_end
        adapter_side = relay_end
        if self.baud is not None:
            wire_host, adapter_side = socket.socketpair()
            wire_host.setblocking(False)
            self._mid = (wire_host, adapter_side)
            self.wire = PacedWire(wire_host.fileno(), relay_end, self.baud).start()
        by_id = self.workdir / "dev" / "serial" / "by-id"
        by_id.mkdir(parents=True, exist_ok=True)
        link = by_id / f"usb-ATM_Sim_Dispenser_{self.unique_id}-if00"
        self.usb = UsbSerialAdapter(adapter_side, link)
        self.port = self.usb.plug()

    # ----- the cable ---------------------------------------------------------------------------------
    def unplug(self, power_off: bool = False) -> None:
        """Pull the USB cable: the host loses the port. The firmware keeps running unless `power_off`
        (a bus-powered board): then it stops mid-instruction like at a power cut."""
        if self.usb is None:
            raise SimError("unplug needs a board started with pluggable=True")
        with self._lock:
            if power_off:
                self._kill()
                self.power_cuts += 1
                self._unplugged_power = True
            self.usb.unplug()
            self.port = ""

    def replug(self) -> str:
        """Plug the cable back in: a new pty (new path), `stable_port` re-pointed, power back if it went
        with the cable (the board boots and reconciles). Returns the new pty path."""
        if self.usb is None:
            raise SimError("replug needs a board started with pluggable=True")
        with self._lock:
            self.port = self.usb.plug()
            if self._unplugged_power:
                self._unplugged_power = False
                self.power_on()
            return self.port

    @property
    def plugged(self) -> bool:
        return self.usb is None or self.usb.plugged

    def unplug_at(self, kind: str, k: int, power_off: bool = False) -> None:
        """Arm an unplug at the k-th (1-based) 'pin' write or 'flash' block write from now."""
        if kind not in ("pin", "flash") or k < 1:
            raise ValueError("kind must be 'pin' or 'flash' and k >= 1")
        if self.usb is None:
            raise SimError("unplug_at needs a board started with pluggable=True")
        with self._lock:
            self._unplug_kind, self._unplug_left, self._unplug_power = kind, k, power_off

    def _tick_unplug(self, kind: str) -> bool:
        """True when an armed unplug that also cut the power fired here (the write never completes)."""
        if self._unplug_kind != kind or self._unplug_left <= 0:
            return False
        self._unplug_left -= 1
        if self._unplug_left > 0:
            return False
        self._unplug_kind = ""
        self.unplug(self._unplug_power)
        return self._unplug_power

    def _uart_fd(self) -> int:
        return self._board_end.fileno() if self._board_end is not None else self._master

    def _drop_line_input(self) -> None:
        """Bytes the host sent while the board was off are lost, as on a real UART."""
        if self._board_end is None:
            termios.tcflush(self._master, termios.TCIOFLUSH)
            return
        try:
            while self._board_end.recv(4096):
                pass
        except BlockingIOError:
            pass

    def start(self) -> SimBoard:
        if not self.image.exists():
            self.flash(fmt=True)
        self._open_pty()
        srv = socket.socket()
        srv.bind(("127.0.0.1", 0))
        srv.listen(4)
        self._server = srv
        for target in (self._accept_loop, self._watchdog_loop):
            t = threading.Thread(target=target, daemon=True)
            t.start()
            self._threads.append(t)
        self._spawn(PWRON_RESET)
        return self

    def _spawn(self, cause: int) -> None:
        assert self._server is not None
        self._reset_cause = cause
        self._wdt_timeout = 0.0
        self._drop_line_input()
        env = {
            "ATM_SIM_BUS_PORT": str(self._server.getsockname()[1]),
            "ATM_SIM_UART_FD": str(self._uart_fd()),
            "ATM_SIM_FLASH": str(self.image),
            "ATM_SIM_UNIQUE_ID": self.unique_id,
            "PATH": os.environ.get("PATH", ""),
        }
        log = self.log_path.open("ab")
        self._proc = subprocess.Popen(
            [_tool("micropython"), "-X", f"heapsize={self.heap}", str(MP_DIR / "simboot.py")],
            env=env,
            pass_fds=(self._uart_fd(),),
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=MP_DIR,
        )
        log.close()
        self.boots += 1

    # ----- power -----------------------------------------------------------------------------------
    def _kill(self) -> None:
        """The board stops mid-instruction: motors stop, the flash keeps what was written."""
        with self._lock:
            proc = self._proc
            self._proc = None
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                proc.wait()
            self.mech.power_off()

    def power_cut(self) -> None:
        """Cut the power now."""
        with self._lock:
            self._kill()
            self.power_cuts += 1

    def hang(self) -> None:
        """Freeze the interpreter (as a firmware deadlock would): only the watchdog can bring it back."""
        with self._lock:
            if self._proc is not None and self._proc.poll() is None:
                self._proc.send_signal(signal.SIGSTOP)

    def power_on(self) -> None:
        with self._lock:
            if self._proc is None or self._proc.poll() is not None:
                self._spawn(PWRON_RESET)

    def cut_at(
        self, kind: str, k: int, hook: Callable[[], None] | None = None, tear: int | None = None
    ) -> None:
        """Arm a power cut at the k-th (1-based) 'pin' write or 'flash' operation (erase or page
        program) from now. `tear`: for a raw flash operation, the bytes it writes before the power
        fails (None: it never starts)."""
        if kind not in ("pin", "flash") or k < 1:
            raise ValueError("kind must be 'pin' or 'flash' and k >= 1")
        with self._lock:
            self._cut_kind, self._cut_left, self._cut_hook = kind, k, hook
            self._cut_tear = tear

    def disarm(self) -> None:
        with self._lock:
            self._cut_kind, self._cut_left = "", 0

    @property
    def armed(self) -> bool:
        return self._cut_left > 0

    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def stop(self) -> None:
        self._stop.set()
        self._kill()
        if self._server is not None:
            self._server.close()
        if self.wire is not None:
            self.wire.stop()
        if self.usb is not None:
            self.usb.close()
        for sock in self._mid or ():
            sock.close()
        if self._board_end is not None:
            self._board_end.close()
        for fd in (self._master, self._slave):
            if fd >= 0:
                try:
                    os.close(fd)
                except OSError:
                    pass
        self._master = self._slave = -1
        if self._own_dir and os.environ.get("ATM_SIM_KEEP") is None:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> SimBoard:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    # ----- the board bus ---------------------------------------------------------------------------
    def _accept_loop(self) -> None:
        assert self._server is not None
        while not self._stop.is_set():
            try:
                conn, _ = self._server.accept()
            except OSError:
                return
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            t = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            t.start()

    def _serve(self, conn: socket.socket) -> None:
        buf = bytearray(4)
        view = memoryview(buf)
        with conn:
            while not self._stop.is_set():
                got = 0
                try:
                    while got < 4:
                        n = conn.recv_into(view[got:], 4 - got)
                        if n == 0:
                            return
                        got += n
                except OSError:
                    return
                op, pin, value = buf[0], buf[1], buf[2] | (buf[3] << 8)
                reply = self._handle(op, pin, value)
                if reply is None:
                    return  # the power was cut here: the interpreter never sees an answer
                try:
                    conn.sendall(struct.pack("<H", reply))
                except OSError:
                    return

    def _tick_cut(self, kind: str) -> bool:
        if self._cut_kind != kind or self._cut_left <= 0:
            return False
        self._cut_left -= 1
        if self._cut_left > 0:
            return False
        self._cut_kind = ""
        hook = self._cut_hook
        self.power_cut()
        if hook is not None:
            hook()
        if self.auto_restart:
            self.power_on()
        return True

    def _handle(self, op: int, pin: int, value: int) -> int | None:
        now = time.monotonic()
        mech = self.mech
        with self._lock:
            if op == OP_WRITE:
                self.pin_writes += 1
                if self._tick_cut("pin") or self._tick_unplug("pin"):
                    return None
                mech.write(pin, value, now)
                return 0
            if op == OP_READ:
                return mech.read(pin, now)
            if op == OP_ADC:
                return mech.adc(pin, now)
            if op == OP_WDT_START:
                self._wdt_timeout = value / 1000.0
                self._wdt_last = now
                return 0
            if op == OP_WDT_FEED:
                self._wdt_last = now
                return 0
            if op == OP_FLASH:
                self.flash_writes += 1
                if pin == FLASH_PROGRAM:
                    self.flash_programs += 1
                elif pin == FLASH_ERASE:
                    self.flash_erases += 1
                tear = self._cut_tear
                if pin != FLASH_FS and tear is not None and self._cut_kind == "flash" and self._cut_left == 1:
                    # A torn operation: it writes `tear` bytes, then reports OP_TORN and the power fails.
                    self._cut_left = 0
                    self._cut_kind = "torn"
                    return min(tear, 4096) + 1
                if self._tick_cut("flash") or self._tick_unplug("flash"):
                    return None
                return 0
            if op == OP_TORN:
                self.torn += 1
                self._cut_kind, self._cut_left = "torn", 1
                self._tick_cut("torn")
                return None
            if op == OP_RESET_CAUSE:
                return self._reset_cause
        return 0

    def _watchdog_loop(self) -> None:
        while not self._stop.wait(0.05):
            with self._lock:
                proc = self._proc
                expired = (
                    proc is not None
                    and self._wdt_timeout > 0
                    and time.monotonic() - self._wdt_last > self._wdt_timeout
                )
                if expired:
                    self._kill()
                    self.watchdog_resets += 1
                    self._spawn(WDT_RESET)
                elif proc is not None and proc.poll() is not None and self.auto_restart:
                    # The interpreter exited by itself (machine.reset() or a crash): reboot it.
                    self._proc = None
                    self._spawn(PWRON_RESET)
