"""An emulated RP2040 board with the HIL rig's board interface (the same as atm_sim.board.SimBoard).

The chip is rp2040js (bridge.mjs, a Node process) running the shared MicroPython UF2 with the board
image of tools/atm_tools/image.py. A driver thread runs it in lockstep slices of emulated time: before
each slice the mechanics model is advanced to the chip's time and gives the input pin levels and the
ADC; after it, the pins the firmware sampled are read from the model (latched pulses are consumed as on
the simulated board) and the output changes are applied at their emulated instants. Emulated time never
runs ahead of the wall clock (an idle board is real time; a busy one is slower, as the emulator is).

UART0 is a pty: the host driver opens its path like a USB-serial adapter. Bytes cross the line at the
UART's configured rate in emulated time, both ways, through the 32-byte hardware FIFOs.
Power cuts at the k-th flash erase/program or pin change, a watchdog trip (the chip restarts with the
flash kept and machine.reset_cause() == WDT_RESET) and a firmware hang work as on the simulated board.
"""

from __future__ import annotations

import json
import math
import os
import select
import shutil
import subprocess
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Generator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, cast

from atm_tools import image as img
from atm_wire import link as wire_link

from atm_sim import mechanics as mc
from atm_sim.board import SimError, _raw_pty  # pyright: ignore[reportPrivateUsage]

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]
SLICE_NS = 500_000  # 0.5 ms of emulated time per lockstep exchange
LINE_BACKLOG = 64  # bytes taken from the host's pty ahead of the wire (the rest waits in the pty, as
# in a USB-serial adapter's buffer: a host writing faster than the line rate is held back)
INPUT_PINS = (
    mc.NOTE_SENSOR,
    mc.STACKER_ENTRY,
    mc.REJECT_ENTRY,
    mc.RETRACT_ENTRY,
    mc.SHUTTER_OPEN_SW,
    mc.SHUTTER_CLOSED_SW,
    mc.PRESENTER_SENSOR,
    mc.STACKER_SENSOR,
    mc.DOOR_SW,
    mc.TAMPER_SW,
)
CAUSE_POWER_ON, CAUSE_WDT_TIMER = 0, 1


def shared_dir() -> Path:
    """The shared MicroPython UF2 and bootrom (../shared/rp2040 beside the repo, or ATM_RP2040_DIR)."""
    return Path(os.environ.get("ATM_RP2040_DIR") or REPO.parent / "shared" / "rp2040").resolve()


def uf2_path() -> Path:
    found = sorted(shared_dir().glob("micropython-rpi_pico-*.uf2"))
    if not found:
        raise SimError(f"no MicroPython UF2 in {shared_dir()} (set ATM_RP2040_DIR)")
    return found[-1]


class ChipMechanics(mc.Mechanics):
    """The mechanics model with a side-effect-free look at an input level (for the lockstep slices)."""

    def peek(self, pin: int) -> int:
        q = self._pulses.get(pin)
        if q:
            return int(q[0][0])
        if pin == mc.NOTE_SENSOR:
            b = self.bundle
            return int(b is not None and b.stage in ("sensor", "stuck"))
        return self._level(pin)


class Bridge:
    """The Node process running the chip: one JSON request, one JSON answer."""

    def __init__(self, log: Path) -> None:
        if shutil.which("node") is None:
            raise SimError("node not found: run ./atm setup")
        if not (HERE / "node_modules" / "rp2040js").is_dir():
            raise SimError(f"rp2040js missing in {HERE}: run ./atm setup (npm ci there)")
        self._err = log.open("ab")
        self._proc = subprocess.Popen(
            ["node", str(HERE / "bridge.mjs")],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._err,
            env={**os.environ, "ATM_RP2040_DIR": str(shared_dir())},
            cwd=HERE,
        )

    def call(self, op: str, **kw: Any) -> dict[str, Any]:
        proc = self._proc
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(json.dumps({"op": op, **kw}).encode() + b"\n")
        proc.stdin.flush()
        line = proc.stdout.readline()
        if not line:
            raise SimError(f"the emulator exited (code {proc.poll()}); see its log")
        reply = cast(dict[str, Any], json.loads(line))
        if "error" in reply:
            raise SimError(f"emulator: {op}: {reply['error']}")
        return reply

    def close(self) -> None:
        if self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._err.close()


class RP2040Board:
    """One emulated dispenser board. Use as a context manager, or call start() and stop()."""

    def __init__(
        self,
        workdir: Path | None = None,
        unique_id: str = "e66038b7134f2a2f",
        seed: int = 1,
        auto_restart: bool = True,
        flash_times: str = "typ",
        realtime: bool = True,
        uf2: Path | None = None,
        uart_baud: int | None = None,
        usb: bool = False,
    ) -> None:
        self._own_dir = workdir is None
        self.workdir = Path(tempfile.mkdtemp(prefix="atm-rp2040-")) if workdir is None else workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.workdir / "firmware.log"
        self.mech = ChipMechanics(seed)
        self.unique_id = unique_id  # what machine.unique_id() returns (the flash's RUID answer)
        self.auto_restart = auto_restart
        self.flash_times = flash_times
        self.realtime = realtime
        self.wire = None  # the line is always paced here (at the UART's own rate)
        self.port = ""
        self.flash_writes = 0
        self.pin_writes = 0
        self.boots = 0
        self.watchdog_resets = 0
        self.power_cuts = 0
        self.emu_ns = 0  # emulated time since this power-up
        self.boot_emu_ns: list[int] = []  # emulated time of each boot's first transmitted byte
        self.stats: dict[str, Any] = {}
        self._bridge: Bridge | None = None
        self._master = -1
        self._slave = -1
        self._powered = False
        self._armed = False
        self._cut_hook: Callable[[], None] | None = None
        self._mech_base = 0.0  # mechanics seconds at this power-up (emulated time restarts at boot)
        self._wall0 = 0.0
        self._seen_tx = False
        self._rxq = 0  # bytes on the wire towards the chip, not yet arrived
        self._ops: list[tuple[Callable[[], object], threading.Event]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self._loaded = False
        self._uart_baud = uart_baud  # an image variant with another hwconfig._UART_BAUD (the bench)
        self.usb = usb  # the USB REPL (MicroPython's CDC) as a second pty, `usb_port`
        self.usb_port = ""
        self._usb_master = -1
        self._usb_slave = -1
        self._uf2 = uf2  # a complete UF2 (MicroPython + board image, as `./atm flash --uf2` makes)
        self._busy_ratio: deque[float] = deque(maxlen=400)  # wall s per emulated s of busy slices
        # Emulated time per lockstep exchange: the input pins (sensors) are set at a slice's start, so
        # a sensor edge reaches the chip up to one slice late. The benchmark's per-note rows use 0.1 ms.
        self.slice_ns = SLICE_NS

    # ----- set-up ----------------------------------------------------------------------------------
    def flash(self, fmt: bool = False) -> None:
        """Write the board image: the littlefs blocks (and, when `fmt` or new, the raw state region)."""
        if self._uf2 is not None:
            self._call("load", uf2=str(self._uf2), fs=None)  # what a drag-and-drop in BOOTSEL writes
            self._loaded = True
            return
        built = img.build(self.workdir / "image", uart_baud=self._uart_baud)
        data = built.littlefs
        if self._loaded and not fmt:
            data = data[: built.layout.raw_first_block * built.layout.block_size]  # keep the state
        part = self.workdir / "image" / "load.img"
        part.write_bytes(data)
        self._call("load", uf2=None if self._loaded else str(uf2_path()), fs=str(part))
        self._loaded = True

    def _call(self, op: str, **kw: Any) -> dict[str, Any]:
        if self._bridge is None:
            self._bridge = Bridge(self.workdir / "bridge.log")
            self._bridge.call("flashtime", mode=self.flash_times)
        return self._bridge.call(op, **kw)

    def start(self) -> RP2040Board:
        if not self._loaded:
            self.flash(fmt=True)
        self._master, self._slave = _raw_pty()
        self.port = os.ttyname(self._slave)
        if self.usb:
            self._usb_master, self._usb_slave = _raw_pty()
            self.usb_port = os.ttyname(self._usb_slave)
        self._boot(CAUSE_POWER_ON)
        self._thread = threading.Thread(target=self._drive, name="rp2040", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
        if self._bridge is not None:
            try:
                self.stats = self._bridge.call("stats")
            except SimError:
                pass
            self._bridge.close()
            self._bridge = None
        for fd in (self._master, self._slave, self._usb_master, self._usb_slave):
            if fd >= 0:
                try:
                    os.close(fd)
                except OSError:
                    pass
        self._master = self._slave = self._usb_master = self._usb_slave = -1
        if self._own_dir and os.environ.get("ATM_SIM_KEEP") is None:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> RP2040Board:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    @property
    def stable_port(self) -> str:
        return self.port

    # ----- power, watchdog, cuts (called from any thread; run by the driver thread) -----------------
    def _do(self, fn: Callable[[], object]) -> None:
        if self._thread is None or threading.current_thread() is self._thread:
            fn()
            return
        done = threading.Event()
        with self._lock:
            self._ops.append((fn, done))
        if not done.wait(30):
            raise SimError("the emulator's driver thread does not answer")

    def _boot(self, cause: int) -> None:
        self._mech_base += self.emu_ns / 1e9 + 0.001
        self.emu_ns = 0
        self._call("boot", cause=cause, uid=self.unique_id)
        self._powered = True
        self._seen_tx = False
        self._rxq = 0
        self._wall0 = time.monotonic()
        self.boots += 1
        self._drop_line_input()

    def _off(self) -> None:
        self._call("off")
        self._powered = False
        with self.mech.lock:
            self.mech.power_off()

    def power_cut(self) -> None:
        """Cut the power now."""

        def cut() -> None:
            self._off()
            self.power_cuts += 1

        self._do(cut)

    def power_on(self) -> None:
        self._do(lambda: None if self._powered else self._boot(CAUSE_POWER_ON))

    def hang(self) -> None:
        """Stop the core (a firmware deadlock): the clock and the watchdog go on."""
        self._do(lambda: self._powered and self._call("hang"))

    def cut_at(self, kind: str, k: int, hook: Callable[[], None] | None = None) -> None:
        """Arm a power cut at the k-th (1-based) 'pin' change or 'flash' erase/program from now."""
        if kind not in ("pin", "flash") or k < 1:
            raise ValueError("kind must be 'pin' or 'flash' and k >= 1")

        def arm() -> None:
            self._call("arm", kind=kind, k=k)
            self._armed, self._cut_hook = True, hook

        self._do(arm)

    def disarm(self) -> None:
        def disarm() -> None:
            self._call("disarm")
            self._armed = False

        self._do(disarm)

    @property
    def armed(self) -> bool:
        return self._armed

    def running(self) -> bool:
        return self._powered

    def bridge_stats(self) -> dict[str, Any]:
        """The emulator's counters (flash operations and time, UART bytes and overruns, cycles)."""
        out: dict[str, Any] = {}

        def get() -> None:
            out.update(self._call("stats"))

        self._do(get)
        return out

    @property
    def flash_programs(self) -> int:
        """Page programs the emulated flash took since the emulator started (as SimBoard's)."""
        return int(self.bridge_stats()["programs"])

    @property
    def flash_erases(self) -> int:
        """Sector erases the emulated flash took since the emulator started (as SimBoard's)."""
        return int(self.bridge_stats()["erases"])

    def profile(self, every: int) -> dict[str, Any]:
        """Sample the PC every `every` executed cycles (0 stops); returns what was sampled since the
        last call: {"samples", "pc": [[pc, count]], "irq": [[exception number, count]], "busy"}."""
        out: dict[str, Any] = {}

        def prof() -> None:
            out.update(self._call("prof", every=every))

        self._do(prof)
        return out

    @property
    def slowdown(self) -> float:
        """Real seconds per emulated second while the core is busy (p90 of recent busy slices, >= 1).

        An idle chip keeps up with the wall clock; a busy one runs this much slower than real time.
        The HIL rig scales the host's real-time link timers by it (docs/emulator.md)."""
        ratios = sorted(self._busy_ratio)
        if not ratios:
            return 1.0
        return max(1.0, ratios[int(0.9 * (len(ratios) - 1))])

    @contextmanager
    def host_timers(self) -> Generator[float]:
        """Scale the host link's real-time timer floors (atm_wire.link.RTO_MIN, RTO_INITIAL) in this
        process by `slowdown` while the block runs (following it as it grows); yields the factor.

        A busy emulated chip runs ~2-5x slower than real time while a host's timers run in real time:
        a round trip of 9 ms of chip time takes 20-45 ms of wall time, past the 25 ms RTO floor, and the
        host resends frames a real chip would have answered in time. Scaled, the host waits as long in
        chip time as it would for a real chip (docs/emulator.md). The chip's own link is untouched."""
        rto_min, rto_initial = wire_link.RTO_MIN, wire_link.RTO_INITIAL
        done = threading.Event()

        def scale() -> float:
            k = self.slowdown
            wire_link.RTO_MIN = max(wire_link.RTO_MIN, math.ceil(rto_min * k))
            wire_link.RTO_INITIAL = max(wire_link.RTO_INITIAL, math.ceil(rto_initial * k))
            return k

        def follow() -> None:  # the emulator slows down further when the machine gets busier
            while not done.wait(0.05):
                scale()

        k = scale()
        thread = threading.Thread(target=follow, name="rp2040-host-timers", daemon=True)
        thread.start()
        try:
            yield k
        finally:
            done.set()
            thread.join(1)
            wire_link.RTO_MIN, wire_link.RTO_INITIAL = rto_min, rto_initial

    def set_flash_times(self, mode: str) -> None:
        """'typ' or 'max' erase/program times of the W25Q16-class part, or 'zero'."""
        self._do(lambda: self._call("flashtime", mode=mode))

    # ----- the driver thread ---------------------------------------------------------------------------
    def _drop_line_input(self) -> None:
        try:
            while os.read(self._master, 4096):
                pass
        except (BlockingIOError, OSError):
            pass

    def _mech_now(self, t_ns: int) -> float:
        return self._mech_base + t_ns / 1e9

    def _drive(self) -> None:
        try:
            while not self._stop.is_set():
                with self._lock:
                    ops, self._ops = self._ops, []
                for fn, done in ops:
                    try:
                        fn()
                    finally:
                        done.set()
                if not self._powered:
                    time.sleep(0.005)
                    self._drop_line_input()
                    continue
                self._slice()
        except BaseException as exc:  # the rig sees it on its next call
            self._error = exc
            with self._lock:
                for _, done in self._ops:
                    done.set()
            raise

    def _slice(self) -> None:
        lead = self.emu_ns / 1e9 - (time.monotonic() - self._wall0)
        if self.realtime and lead > 0:
            select.select([self._master], [], [], lead)
        wall0 = time.monotonic()
        rx = b""
        if self._rxq < LINE_BACKLOG:
            try:
                rx = os.read(self._master, LINE_BACKLOG - self._rxq)
            except (BlockingIOError, OSError):
                rx = b""
        mech = self.mech
        t0 = self._mech_now(self.emu_ns)
        with mech.lock:
            mech.advance(t0)
            levels = 0
            for pin in INPUT_PINS:
                if mech.peek(pin):
                    levels |= 1 << pin
            adc = mech.adc(mc.THICKNESS_ADC, t0) >> 4  # the model speaks read_u16 counts; the ADC has 12 bits
        usb_in = b""
        if self._usb_master >= 0:
            try:
                usb_in = os.read(self._usb_master, 4096)
            except (BlockingIOError, OSError):
                usb_in = b""
        r = self._call(
            "run", ns=self.slice_ns, rx=rx.hex(), adc=[adc, 0, 0, 0], cdc=usb_in.hex(), **{"in": levels}
        )
        tx = bytes.fromhex(r["tx"])
        if tx:
            if not self._seen_tx:
                self.boot_emu_ns.append(int(r["t"]))
            self._seen_tx = True
            try:
                os.write(self._master, tx)
            except OSError:
                pass
        if r.get("cdc"):
            with self.log_path.open("a", encoding="latin-1") as f:
                f.write(r["cdc"])
            if self._usb_master >= 0:
                try:
                    os.write(self._usb_master, str(r["cdc"]).encode("latin-1"))
                except OSError:
                    pass
        outs = cast(list[list[int]], r["out"])
        with mech.lock:
            sampled = int(r["rd"])
            for pin in INPUT_PINS:
                if sampled & (1 << pin):
                    mech.read(pin, t0)
            for t_ns, pin, level in outs:
                mech.write(pin, level, self._mech_now(t_ns))
            self.emu_ns = int(r["t"])
            mech.advance(self._mech_now(self.emu_ns))
        self.pin_writes += len(outs)
        if int(r.get("busy", 0)) * 8 >= 0.9 * self.slice_ns:  # 8 ns per cycle at 125 MHz: a busy slice
            self._busy_ratio.append((time.monotonic() - wall0) / (self.slice_ns / 1e9))
        self.flash_writes = int(r.get("fw", self.flash_writes))
        self._rxq = int(r.get("rxq", 0))
        ev = r["ev"]
        if ev == "cut":
            self._armed = False
            self._off()
            self.power_cuts += 1
            hook, self._cut_hook = self._cut_hook, None
            if hook is not None:
                hook()
            if self.auto_restart:
                self._boot(CAUSE_POWER_ON)
        elif ev in ("wdt", "reset"):
            if ev == "wdt":
                self.watchdog_resets += 1
            self._off()
            self._boot(CAUSE_WDT_TIMER)
