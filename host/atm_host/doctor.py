"""`python -m atm_host.doctor`: tells an engineer on site what is missing or misconfigured on this ATM.

Checks the camera, the dispenser's serial port, the MCU's firmware version and provisioned key, every
model's sha256, the broker's reachability (TCP, and TLS when a CA is given) and the clock. Prints one
line per check (OK / WARN / FAIL) and exits 1 when any check fails.
"""

import argparse
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from atm_host.vision.config import VisionConfig
from atm_host.vision.manifest import load_manifest, sha256_bytes
from atm_host.vision.runtime import entry_path

MIN_FIRMWARE = (0, 1, 0)  # oldest firmware this host speaks to
EARLIEST_SANE_TIME = 1_735_689_600  # 2025-01-01: a clock before this was never set (tokens would fail)


@dataclass(frozen=True)
class Check:
    """The result of one check."""

    name: str
    level: str  # OK, WARN, FAIL
    detail: str


def check_camera(spec: str) -> Check:
    """Open the camera and read one frame."""
    if spec == "none":
        return Check("camera", "WARN", "not checked (--camera none)")
    from atm_host.vision.errors import VisionError
    from atm_host.vision.sources import open_source

    try:
        src = open_source(spec)
        try:
            frame = src.read()
        finally:
            src.close()
    except (VisionError, OSError, ImportError) as exc:
        return Check("camera", "FAIL", f"{spec}: {exc}")
    h, w = frame.shape[:2]
    level = "OK" if w >= 1280 else "WARN"
    note = "" if w >= 1280 else " (QR codes need 720p: docs/qr-guidance.md)"
    return Check("camera", level, f"{spec}: {w}x{h} frame read{note}")


def check_dispenser(port: str, timeout_s: float = 5.0) -> list[Check]:
    """Serial port present, handshake, firmware version, device key provisioned, dispenser state."""
    if not port:
        return [Check("serial port", "FAIL", "no --port given")]
    if port.startswith("/dev/") and not Path(port).exists():
        return [Check("serial port", "FAIL", f"{port} does not exist (cable? udev rule? dialout group?)")]
    from atm_host.link import DispenserClient, LinkError

    try:
        client = DispenserClient.connect(port, timeout=timeout_s)
    except LinkError as exc:
        return [Check("serial port", "FAIL", f"{port}: no handshake: {exc}")]
    out = [Check("serial port", "OK", f"{port}: link up")]
    try:
        hello = client.hello()
        fw = hello.firmware_version
        level = "OK" if fw >= MIN_FIRMWARE else "FAIL"
        out.append(
            Check(
                "mcu firmware",
                level,
                f"{hello.firmware} (protocol {hello.protocol_version}), "
                f"device {hello.device_id.hex()}, boot #{hello.boot_count}",
            )
        )
        st = client.status()
        out.append(
            Check(
                "mcu key",
                "OK" if st.provisioned else "FAIL",
                "per-device key provisioned"
                if st.provisioned
                else "no device key: run the PROVISION step (docs/deployment.md)",
            )
        )
        problems = [
            n for n, bad in (("tamper", st.tamper), ("door open", st.door_open), ("locked", st.locked)) if bad
        ]
        out.append(
            Check(
                "dispenser",
                "FAIL" if problems or st.state_name == "fault" else "OK",
                f"state {st.state_name}" + (f"; {', '.join(problems)}" if problems else ""),
            )
        )
    except LinkError as exc:
        out.append(Check("mcu firmware", "FAIL", str(exc)))
    finally:
        client.close()
    return out


def check_models(config: VisionConfig) -> list[Check]:
    """Every model in the manifest exists and matches its sha256."""
    try:
        manifest = load_manifest(config.manifest)
    except Exception as exc:
        return [Check("models", "FAIL", str(exc))]
    out: list[Check] = []
    for name, entry in sorted(manifest.models.items()):
        path = entry_path(entry, config.model_dir, config.liveness.model_dir)
        try:
            digest = sha256_bytes(path.read_bytes())
        except OSError:
            out.append(
                Check(f"model {name}", "FAIL", f"{path} missing: run `python -m atm_host.vision models`")
            )
            continue
        ok = digest == entry.sha256
        out.append(
            Check(
                f"model {name}",
                "OK" if ok else "FAIL",
                f"sha256 {'ok' if ok else 'MISMATCH ' + digest[:12]} ({path.name})",
            )
        )
    return out


def check_broker(host: str, port: int, ca_file: str | None, timeout_s: float = 3.0) -> Check:
    """TCP connect to the broker; with a CA, a TLS handshake that verifies the broker's certificate."""
    try:
        with socket.create_connection((host, port), timeout=timeout_s) as sock:
            if ca_file:
                ctx = ssl.create_default_context(cafile=ca_file)
                with ctx.wrap_socket(sock, server_hostname=host) as tls:
                    return Check("broker", "OK", f"{host}:{port} TLS {tls.version()} certificate verified")
    except ssl.SSLError as exc:
        return Check("broker", "FAIL", f"{host}:{port} TLS: {exc}")
    except OSError as exc:
        return Check("broker", "FAIL", f"{host}:{port} not reachable: {exc}")
    level = "OK" if host in ("127.0.0.1", "localhost", "::1") else "WARN"
    return Check("broker", level, f"{host}:{port} reachable" + ("" if level == "OK" else " without TLS"))


def check_clock(now: Callable[[], float] = time.time) -> Check:
    """The clock is set (tokens expire in 90 s) and, where systemd says so, NTP-synchronised."""
    t = now()
    if t < EARLIEST_SANE_TIME:
        return Check("clock", "FAIL", f"clock reads {time.strftime('%Y-%m-%d', time.gmtime(t))}: never set")
    try:
        res = subprocess.run(
            ["timedatectl", "show", "-p", "NTPSynchronized", "--value"],
            capture_output=True,
            text=True,
            timeout=3,
            check=False,
        )
        synced = res.stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        synced = ""
    stamp = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(t))
    if synced == "yes":
        return Check("clock", "OK", f"{stamp}, NTP synchronised")
    if synced == "no":
        return Check("clock", "FAIL", f"{stamp}, NTP NOT synchronised (QR tokens allow 5 s of skew)")
    return Check("clock", "WARN", f"{stamp}; NTP state unknown (no timedatectl)")


def run_checks(args: argparse.Namespace) -> list[Check]:
    checks: list[Check] = [check_camera(args.camera)]
    checks += check_dispenser(args.port)
    checks += check_models(VisionConfig())
    checks.append(check_broker(args.broker_host, args.broker_port, args.ca))
    checks.append(check_clock())
    return checks


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="./atm doctor", description=__doc__)
    parser.add_argument("--camera", default="picamera2", help="picamera2, cv2:0, folder:PATH or none")
    parser.add_argument("--port", default="/dev/ttyAMA0", help="dispenser serial port or socket://host:port")
    parser.add_argument("--broker-host", default="127.0.0.1")
    parser.add_argument("--broker-port", type=int, default=8883)
    parser.add_argument("--ca", default=None, help="broker CA file: also checks the TLS handshake")
    args = parser.parse_args(argv)
    checks = run_checks(args)
    width = max(len(c.name) for c in checks)
    for c in checks:
        print(f"{c.level:4s}  {c.name:{width}s}  {c.detail}")
    failed = sum(c.level == "FAIL" for c in checks)
    print(f"{failed} check(s) failed" if failed else "all checks passed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
