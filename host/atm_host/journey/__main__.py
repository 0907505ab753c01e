"""`python -m atm_host.journey --config /etc/atm/host.json`: the ATM host service (journey + screen).

Builds the real parts from one validated config: the dispenser link (serial port, reopened with backoff
whenever it is lost), the bank link (MQTT, TLS), the camera, the face pipeline, the journey and the
screen; tells systemd when it is ready and feeds systemd's watchdog while the journey thread is alive
(Type=notify, WatchdogSec=). A dispenser absent at start leaves the ATM out of service until it answers.
"""

import argparse
import logging
import os
import signal
import socket
import sys
import threading
from pathlib import Path

from atm_msg.schemas import Cassette
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from atm_host.banklink.client import BankLink
from atm_host.banklink.outbox import Outbox
from atm_host.banklink.settings import LinkSettings
from atm_host.link import LinkError
from atm_host.link.reconnect import ReconnectingDispenser, serial_factory
from atm_host.screen.server import ScreenInfo, ScreenServer
from atm_host.vision.config import VisionConfig
from atm_host.vision.errors import VisionError
from atm_host.vision.manifest import load_manifest, read_verified
from atm_host.vision.pipeline import FacePipeline
from atm_host.vision.runtime import entry_path
from atm_host.vision.sources import open_source

from .config import JourneyConfig
from .errors import JourneyConfigError
from .machine import Journey

log = logging.getLogger("atm_host.journey")


class HostConfig(BaseModel):
    """The host service's whole configuration (one JSON file, /etc/atm/host.json)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    serial_port: str = Field(
        default="/dev/ttyAMA0",
        description="Dispenser UART: a stable name (USB: the udev symlink /dev/atm-dispenser), or socket://.",
    )
    baudrate: int = Field(default=115200, description="UART speed (115200 or 921600).")
    reopen_first_s: float = Field(
        default=0.2, gt=0, le=10, description="A lost dispenser port is reopened after this, doubling..."
    )
    reopen_max_s: float = Field(default=5.0, gt=0, le=60, description="...up to this between attempts.")
    connect_wait_s: float = Field(
        default=10.0, ge=0, le=300, description="Wait this long at start for the dispenser before going on."
    )
    camera: str = Field(default="picamera2", description="picamera2, cv2:<index|file> or folder:<path>.")
    state_dir: Path = Field(default=Path("/var/lib/atm"), description="Outbox and pending reports live here.")
    screen_host: str = Field(default="127.0.0.1", description="Screen server address (kiosk on the Pi).")
    screen_port: int = Field(default=8080, ge=1, le=65535, description="Screen server port.")
    helpline: str = Field(
        default="", max_length=40, description="Customer helpline the screen shows (footer, out of service)."
    )
    bank: LinkSettings = Field(description="Broker address, TLS files and this ATM's id.")
    journey: JourneyConfig = Field(default_factory=JourneyConfig, description="Journey timeouts and presets.")
    vision: VisionConfig = Field(default_factory=VisionConfig, description="Models, threads, quality gate.")


def load(path: Path) -> HostConfig:
    try:
        return HostConfig.model_validate_json(path.read_bytes())
    except OSError as exc:
        raise JourneyConfigError(f"host config {path}: {exc}") from exc
    except ValidationError as exc:
        raise JourneyConfigError(f"host config {path} is invalid: {exc}") from exc


def sd_notify(state: str) -> None:
    """Tell systemd (Type=notify) about readiness and watchdog kicks; a no-op outside systemd."""
    addr = os.environ.get("NOTIFY_SOCKET")
    if not addr:
        return
    if addr.startswith("@"):
        addr = "\0" + addr[1:]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.sendto(state.encode(), addr)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m atm_host.journey", description=__doc__)
    parser.add_argument("--config", type=Path, default=Path("/etc/atm/host.json"))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        cfg = load(args.config)
    except JourneyConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    cfg.state_dir.mkdir(parents=True, exist_ok=True)
    if cfg.reopen_max_s < cfg.reopen_first_s:
        print("error: reopen_max_s must be >= reopen_first_s", file=sys.stderr)
        return 2
    try:  # every model present with its sha256 (liveness loads lazily: check it now), then load
        vc = cfg.vision
        for entry in load_manifest(vc.manifest).models.values():
            read_verified(entry_path(entry, vc.model_dir, vc.liveness.model_dir), entry.sha256)
        pipe = FacePipeline(cfg.vision)
    except VisionError as exc:  # exit 2: systemd does not restart (RestartPreventExitStatus=2)
        print(f"error: {exc}", file=sys.stderr)
        return 2
    dispenser = ReconnectingDispenser(
        serial_factory(cfg.serial_port, cfg.baudrate), first_s=cfg.reopen_first_s, max_s=cfg.reopen_max_s
    )
    try:
        info = dispenser.connect(cfg.connect_wait_s).cassette_info()
        cassettes = [
            Cassette(denomination=d, count=c) for d, c in zip(info.denominations, info.counts, strict=True)
        ]
    except LinkError as exc:  # the journey starts out of service and comes back when the port opens
        log.error("dispenser %s not answering at start: %s", cfg.serial_port, exc)
        cassettes = [Cassette(denomination=1, count=0, status="missing") for _ in range(4)]
    link = BankLink(cfg.bank, Outbox(cfg.state_dir / "outbox.db"), cassettes)
    link.start()
    camera = open_source(cfg.camera)
    journey = Journey(
        cfg.journey,
        camera,
        dispenser,
        link,
        pipe,
        pending_path=cfg.state_dir / "pending.json",
    )
    real = [c.denomination for c in cassettes if c.status != "missing"]
    shown = ScreenInfo(cfg.bank.atm_id, cfg.helpline, min(real) if real else 0)
    screen = ScreenServer(journey, cfg.screen_host, cfg.screen_port, shown).start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda signum, frame: stop.set())
    journey.start()
    sd_notify("READY=1")
    log.info("ATM %s in operation; screen on %s", cfg.bank.atm_id, screen.url)
    try:
        while not stop.wait(2.0):
            if journey.alive:
                sd_notify("WATCHDOG=1")  # a hung journey stops the kicks: systemd restarts the service
    except KeyboardInterrupt:
        pass
    finally:
        sd_notify("STOPPING=1")
        screen.stop()
        journey.stop()
        link.stop()
        camera.close()
        dispenser.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
